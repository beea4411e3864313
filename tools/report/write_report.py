"""`oibeam report RUN_DIR`: RUN_DIR/report.html, one self-contained page of
plots and tables about a run of `oibeam tables`, `fetch` or `snapshot`.

Run -> label_stats (and label_counts) -> label sections; a fetched images table
(one pass over its record batches) -> fetch sections; the duplicates table
(and a pass over the images table) -> the leakage section with thumbnails from
the shards; -> render_page -> written under a temporary name and renamed (a
rerun replaces the page).
"""

from __future__ import annotations

import datetime

import pyarrow as pa

from oibeam.tools.report import charts, fetch_sections, label_sections
from oibeam.tools.report.fetch_facts import (
    IMAGE_COLUMNS,
    FetchFacts,
    FetchFactsAccumulator,
)
from oibeam.tools.report.label_facts import (
    LABEL_STATS_COLUMNS,
    LabelFacts,
    inferred_from_counts,
    label_facts,
)
from oibeam.tools.report.leakage_facts import leakage_facts
from oibeam.tools.report.leakage_section import leakage_section
from oibeam.tools.report.page import Paragraph, Section, render_page
from oibeam.tools.report.run_section import io_section, run_id, run_section, when
from oibeam.tools.runs import Run, resolve_run
from oibeam.transforms.common import files
from oibeam.transforms.common.write_files import write_text
from oibeam.transforms.stats.trainable import PRESETS, TrainableRule

REPORT = "report.html"
DEFAULT_TOP = 20


def run_rule(run: Run) -> TrainableRule:
    """The trainable rule the run recorded (v1 if it recorded none)."""
    fields = run.table_option("rule")
    if not fields:
        return PRESETS["v1"]
    return TrainableRule(**{k: fields[k] for k in TrainableRule.__dataclass_fields__})


def _scope(command: str, from_images: bool) -> str:
    if from_images:
        return (
            "the images this run selected, computed from the nested labels of "
            "tables/images (a fetch run writes no label_stats)"
        )
    if command == "snapshot":
        return (
            "every image of the release this snapshot read, not only the "
            "selected ones (tables/label_stats)"
        )
    return "every image this run read (tables/label_stats)"


def _with_names(stats: pa.Table, names: dict[str, str]) -> pa.Table:
    column = pa.array([names.get(m) for m in stats["label"].to_pylist()], pa.string())
    return stats.set_column(
        stats.schema.get_field_index("display_name"), "display_name", column
    )


def _fetch_facts(run: Run, rule: TrainableRule) -> FetchFacts | None:
    schema = run.schema("images")
    if schema is None or "status" not in schema.names:
        return None
    facts = FetchFactsAccumulator()
    for batch in run.batches("images", IMAGE_COLUMNS):
        facts.add(batch)
    return facts.facts(rule)


def _label_sections(
    run: Run,
    facts: LabelFacts,
    fetch: FetchFacts | None,
    rule: TrainableRule,
    scope: str,
    top: int,
) -> list[Section]:
    if not facts.count:
        return [
            Section("labels", "Labels", [Paragraph("The run has no labels.", "note")])
        ]
    names = dict(zip(facts.mids, facts.names, strict=True))
    inferred = inferred_from_counts(
        run.read("label_counts", ["label", "rows", "inferred_rows"])
    ) or (fetch.inferred if fetch else None)
    if inferred and not inferred.inferred and not run.table_option("expand_ancestors"):
        inferred = None  # no expansion asked for: nothing to say
    optional = [
        label_sections.boxes_section(facts),
        label_sections.inferred_section(inferred, names, top),
    ]
    return [
        label_sections.frequency_section(facts, scope, rule),
        label_sections.quality_section(facts),
        label_sections.trainable_section(facts, rule),
        label_sections.top_labels_section(facts, top),
        *(s for s in optional if s is not None),
    ]


def _fetch_sections(
    run: Run,
    fetch: FetchFacts,
    rule: TrainableRule,
    release_trainable: int | None,
    top: int,
) -> list[Section]:
    vocabulary = run.manifest.get("status_vocabulary", {})
    return [
        fetch_sections.status_section(fetch, vocabulary),
        fetch_sections.hosts_section(fetch),
        fetch_sections.files_section(fetch, top),
        fetch_sections.trainability_section(fetch, rule, release_trainable, top),
    ]


def build_page(run: Run, top: int = DEFAULT_TOP, generated: str | None = None) -> str:
    """The report page of `run` (HTML text); `generated` defaults to now."""
    manifest = run.manifest
    command = manifest.get("command", "run")
    rule = run_rule(run)
    fetch = _fetch_facts(run, rule)
    stats = run.read("label_stats", LABEL_STATS_COLUMNS)
    from_images = stats is None and fetch is not None
    if from_images:
        stats = _with_names(fetch.selected_stats, fetch.names)
    facts = label_facts(stats, rule) if stats is not None else None
    sections = [run_section(run.directory, manifest)]
    if facts is not None:
        scope = _scope(command, from_images)
        sections += _label_sections(run, facts, fetch, rule, scope, top)
    if fetch is not None:
        release_trainable = (
            None if from_images or facts is None else int(facts.trainable.sum())
        )
        sections += _fetch_sections(run, fetch, rule, release_trainable, top)
    sections.append(leakage_section(leakage_facts(run), manifest))
    sections.append(io_section(manifest))
    finished = when(manifest.get("finished")) or "?"
    generated = generated or datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"
    )
    return render_page(
        f"oibeam report: {run_id(run.directory, manifest)}",
        f"oibeam {command} · {run.directory} · finished {finished}",
        sections,
        generated,
    )


def write_report(run_dir: str, top: int = DEFAULT_TOP) -> str:
    """Writes RUN_DIR/report.html (RUN_DIR may be a snapshot ROOT: its LATEST);
    returns the page's path. NotARun if there is no complete run there."""
    run = Run.load(resolve_run(run_dir))
    path = f"{run.directory}/{REPORT}"
    charts.reuse(_parent_report(run))
    try:
        write_text(path, build_page(run, top) + charts.empty_note())
    finally:
        charts.reuse(None)
    return path


def _parent_report(run: Run) -> str | None:
    """The report page of the snapshot `run` refreshed, if it has one: its
    charts need not be drawn again when their inputs are the same."""
    parent = (run.manifest.get("snapshot") or {}).get("parent") or {}
    path = f"{parent['path']}/{REPORT}" if parent.get("path") else None
    if path is None or not files.exists(path):
        return None
    with files.open(path) as f:
        return f.read().decode("utf-8", errors="replace")
