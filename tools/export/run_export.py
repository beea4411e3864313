"""`oibeam export RUN_DIR --format F`: training lists, per-image JSONL, COCO
boxes and attribution, from the fetched and verified (`ok`) images of a run;
`files`, the images as plain files (see `files`); and `webdataset`, a
self-contained copy of the run (see `webdataset`).

load_run (ROOT/ID, or ROOT -> LATEST) -> OkImages.spill (ok rows bucketed by
ImageID; each format observes them) -> OkImages.batches (sorted, placed in the
shards) -> each format writes its files under OUT/<format>/ -> commit -> sweep
what an earlier export of the same format left. `files` writes each batch
first, so COCO and JSONL can point at its files (--image-paths files).

No Beam pipeline: every format is a few files written in ImageID order, one
sequential stream each, and the reader keeps memory bounded by buckets. The
webdataset copy streams the run's tars instead, on its own.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.fetch import OK
from oibeam.schemas.releases import SOURCE_KINDS
from oibeam.schemas.snapshot import MANIFEST
from oibeam.tools.export.attribution import Attribution
from oibeam.tools.export.base import Exporter, WrittenExport, sweep
from oibeam.tools.export.coco import NO_BOXES, CocoBoxes, NoBoxes
from oibeam.tools.export.files import NAME as FILES
from oibeam.tools.export.files import FilesExport, FilesOptions
from oibeam.tools.export.files_views import FILE_COLUMNS, coco_view, jsonl_view
from oibeam.tools.export.jsonl import ImagesJsonl
from oibeam.tools.export.reader import (
    BUCKET_ROWS,
    OkImages,
    RunFiles,
    load_run,
    trainable_labels,
)
from oibeam.tools.export.training_list import LabelRule, TrainingList
from oibeam.tools.export.webdataset import NAME as WEBDATASET
from oibeam.tools.export.webdataset import copy_run
from oibeam.tools.export.webdataset_shards import source_shards
from oibeam.tools.runs import Run, statuses_of
from oibeam.transforms.publish.publish_snapshot import manifest_digest

_LOG = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("tencent", "jsonl", "coco", "attribution")
# Formats `all` leaves out: asked for by name only (a copy of every image byte).
COPIES: tuple[str, ...] = (FILES, WEBDATASET)
EXPORTS_DIR = "exports"


@dataclass(frozen=True)
class ExportConfig:
    """What to export, from where, to where."""

    run: str
    output: str | None
    formats: tuple[str, ...]
    coco_required: bool  # asked for by name, not only through `all`
    source: str = "any"
    min_confidence: float = 0.0
    trainable_only: bool = False
    bucket_rows: int = BUCKET_ROWS
    files: FilesOptions = field(default_factory=FilesOptions)

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in (*FORMATS, *COPIES)]
        if unknown or not self.formats:
            choices = ", ".join((*FORMATS, *COPIES, "all"))
            raise ValueError(f"--format must be among {choices}")
        if self.source not in SOURCE_KINDS:
            raise ValueError(f"--label-source must be one of {', '.join(SOURCE_KINDS)}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError("--min-confidence must be within [0, 1]")
        if self.bucket_rows < 1:
            raise ValueError("--bucket-rows must be at least 1")
        if self.files.image_paths == FILES and FILES not in self.formats:
            raise ValueError(
                "--image-paths files needs --format files in the same command"
            )

    @classmethod
    def asked(
        cls,
        run: str,
        formats: list[str],
        output: str | None = None,
        **rules,
    ) -> ExportConfig:
        """The config for --format values as given (`all`: every format but
        the copies, COCO only if the run has boxes)."""
        asked = list(dict.fromkeys(formats))
        chosen = FORMATS if "all" in asked else tuple(f for f in FORMATS if f in asked)
        return cls(
            run=run,
            output=output,
            formats=chosen + tuple(f for f in COPIES if f in asked),
            coco_required="coco" in asked,
            **rules,
        )


@dataclass
class ExportOutcome:
    """What an export did, for the summary."""

    run: str
    output: str
    ok: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    written: list[WrittenExport] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        skipped = sum(self.skipped.values())
        lines = [
            f"exported {self.ok:,} ok images of {self.run} to {self.output}"
            + (
                f"; skipped {skipped:,} not ok ("
                + ", ".join(f"{k} {v:,}" for k, v in sorted(self.skipped.items()))
                + ")"
                if skipped
                else ""
            )
        ]
        names = [w.path.removeprefix(f"{self.output}/") for w in self.written]
        width = max((len(n) for n in names), default=0)
        for name, w in zip(names, self.written, strict=True):
            detail = f", {w.detail}" if w.detail else ""
            lines.append(f"  {name:<{width}}  {w.rows:,} {w.unit}{detail}")
        if self.removed:
            lines.append(
                f"removed {len(self.removed)} stale file(s) of an earlier export"
            )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _label_rule(config: ExportConfig, run: RunFiles) -> LabelRule:
    allowed = trainable_labels(run.directory) if config.trainable_only else None
    return LabelRule(config.source, config.min_confidence, allowed)


def _files_export(config: ExportConfig, run: RunFiles) -> FilesExport:
    with FileSystems.open(f"{run.directory}/{MANIFEST}") as f:
        digest = manifest_digest(f.read())
    labels = config.files.layout == "labels"
    rule = _label_rule(config, run) if labels else None
    tars = tuple(path for _, path, _ in source_shards(Run.load(run.directory)))
    return FilesExport(config.files, run.directory, digest, rule, tars)


def _exporters(config: ExportConfig, run: RunFiles) -> list[Exporter]:
    """The formats' exporters, `files` first (the others may point at it)."""
    made: list[Exporter] = []
    if FILES in config.formats:
        made.append(_files_export(config, run))
    to_files = config.files.image_paths == FILES
    for name in config.formats:
        if name == "tencent":
            made.append(TrainingList(_label_rule(config, run)))
        elif name == "jsonl":
            made.append(ImagesJsonl(run.schema, FILE_COLUMNS if to_files else ()))
        elif name == "coco":
            made.append(CocoBoxes(run.snapshot_id))
        elif name == "attribution":
            made.append(Attribution())
    return made


def _without_coco(config: ExportConfig, outcome: ExportOutcome) -> None:
    """NoBoxes if coco was asked for by name; else a note that it was skipped."""
    if config.coco_required:
        raise NoBoxes(f"--format coco: {NO_BOXES}")
    outcome.notes.append(f"coco skipped: {NO_BOXES}")


def run_export(config: ExportConfig) -> ExportOutcome:
    """Writes every asked format; ExportError if the run cannot give them."""
    run = load_run(config.run)
    output = (config.output or f"{run.directory}/{EXPORTS_DIR}").rstrip("/")
    outcome = ExportOutcome(run.directory, output)
    formats = tuple(f for f in config.formats if f != WEBDATASET)
    if formats:
        _write_formats(dataclasses.replace(config, formats=formats), run, outcome)
    if WEBDATASET in config.formats:
        source = Run.load(run.directory)
        written, removed = copy_run(source, f"{output}/{WEBDATASET}")
        outcome.written += written
        outcome.removed += removed
        statuses = statuses_of(source.manifest)
        outcome.ok = statuses.get(OK, 0)
        outcome.skipped = {k: n for k, n in statuses.items() if k != OK and n}
    return outcome


def _write_formats(config: ExportConfig, run: RunFiles, outcome: ExportOutcome) -> None:
    """The formats written from the ok images in ImageID order (OkImages)."""
    output = outcome.output
    formats = config.formats
    if "coco" in formats and not run.has_boxes:
        _without_coco(config, outcome)
        formats = tuple(f for f in formats if f != "coco")
    config = dataclasses.replace(config, formats=formats)
    exporters = _exporters(config, run)
    columns = tuple(dict.fromkeys(c for e in exporters for c in e.columns))
    with OkImages(run, columns, config.bucket_rows) as images:

        def observe(table) -> None:
            for exporter in exporters:
                exporter.observe(table)

        images.spill(observe)
        outcome.ok, outcome.skipped = images.ok, dict(images.skipped)
        for exporter in list(exporters):
            # A boxes column of nulls: the run read no box files.
            if isinstance(exporter, CocoBoxes) and images.ok and not exporter.has_boxes:
                _without_coco(config, outcome)
                exporters.remove(exporter)
        try:
            for exporter in exporters:
                exporter.start(f"{output}/{exporter.name}")
            for batch in images.batches():
                _write_batch(exporters, batch, config.files.image_paths == FILES)
            finished = [(e, e.finish()) for e in exporters]
        except BaseException:
            for exporter in exporters:
                exporter.discard()
            raise
    for exporter, written in finished:
        outcome.written += written
        if isinstance(exporter, FilesExport):  # a tree, swept by itself
            outcome.removed += exporter.removed
            outcome.notes.append(exporter.note())
            continue
        outcome.removed += sweep(f"{output}/{exporter.name}", [w.path for w in written])
        if isinstance(exporter, TrainingList) and exporter.unlabelled:
            outcome.notes.append(
                f"{exporter.unlabelled:,} ok image(s) have no positive label under "
                "these options: they have no line in the training lists"
            )


def _write_batch(exporters: list[Exporter], batch, to_files: bool) -> None:
    """One batch to every format; with `to_files`, COCO and JSONL get the
    batch as the files just written describe it."""
    placed = None
    for exporter in exporters:
        if isinstance(exporter, FilesExport):
            exporter.write(batch)
            placed = exporter.placed if to_files else None
        elif placed is not None and isinstance(exporter, CocoBoxes):
            exporter.write(coco_view(batch, placed))
        elif placed is not None and isinstance(exporter, ImagesJsonl):
            exporter.write(jsonl_view(batch, placed))
        else:
            exporter.write(batch)
