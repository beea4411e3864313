"""`--format files`: the ok images as plain files, read out of the tar shards.

    files/<subset>/<ImageID>.<ext>           --layout flat: every ok image
    files/<subset>/<folder>/<ImageID>.<ext>  --layout labels: one folder per
                                             positive label (the training
                                             lists' rule), a symlink to
                                             ../<ImageID>.<ext> (the flat file,
                                             which every image then has) or,
                                             with --label-files copy, a copy
    files/labels.tsv                         folder<TAB>mid<TAB>display name
    files/failed.tsv                         ImageID<TAB>reason of each ok image
                                             that has no file (cannot decode)
    files/settings.json                      what the files were made with

An image's bytes are its member's, unchanged, unless it must be turned upright
or resized (files_image): then a JPEG. A label folder is the mid as `m_0abc`
for a mid `/m/0abc`, any other label `_` + its percent-encoding: a name in
one path segment, never `.` or `..`, one folder per label.

Resumable and deterministic (files_store): each file is written under a
temporary name and renamed (a symlink too), so a name holds a whole file or
nothing. A rerun with the same settings (settings.json: the options, the run's
manifest digest, the versions of Pillow and libjpeg) keeps the files already
there and writes the missing ones; with other settings it first removes every
file. Files this export did not make (an earlier layout, a killed run's
temporary files) are removed at the end, and empty folders with them.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import urllib.parse
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from PIL import Image, features

from oibeam.tools.export.base import (
    Exporter,
    ExportError,
    WrittenExport,
    merge_names,
    subset_name,
)
from oibeam.tools.export.files_image import (
    Resize,
    needs_render,
    render,
    turn,
    turned_size,
)
from oibeam.tools.export.files_store import FileTree, ShardMembers
from oibeam.tools.export.files_views import Placed
from oibeam.tools.export.training_list import LabelRule, positive_labels
from oibeam.transforms.common import files

NAME = "files"
LAYOUTS = ("flat", "labels")
LABEL_FILES = ("symlink", "copy")
IMAGE_PATHS = ("members", "files")
SETTINGS = "settings.json"
FAILED = "failed.tsv"
LABELS = "labels.tsv"
_IMAGE_ID = re.compile(r"^[0-9a-f]{16}$")
_MID = re.compile(r"^/([a-z]+)/([0-9a-z_]+)$")
_EXTENSION = re.compile(r"^[a-z0-9]{1,5}$")
_LONGEST_FOLDER = 200  # bytes; a file name may have 255
_SETTINGS_VERSION = 1


@dataclass(frozen=True)
class FilesOptions:
    """The flags of --format files, and where COCO and JSONL point."""

    layout: str = "flat"
    label_files: str = "symlink"
    resize: Resize = field(default_factory=Resize)
    image_paths: str = "members"

    @classmethod
    def from_flags(cls, args) -> FilesOptions:
        """From the parsed flags of export_parser()."""
        longest, shortest = args.resize_longest, args.resize_shortest
        resize = Resize(
            longest or shortest,
            "shortest" if shortest else "longest",
            args.jpeg_quality,
        )
        return cls(args.layout, args.label_files, resize, args.image_paths)

    def __post_init__(self) -> None:
        for value, choices, flag in (
            (self.layout, LAYOUTS, "--layout"),
            (self.label_files, LABEL_FILES, "--label-files"),
            (self.image_paths, IMAGE_PATHS, "--image-paths"),
        ):
            if value not in choices:
                raise ValueError(f"{flag} must be one of {', '.join(choices)}")


def label_folder(label: str) -> str:
    """The folder of a label: one safe path segment, a different one for
    each label (`/m/0abc` -> `m_0abc`, anything else `_` + percent-encoded)."""
    found = _MID.match(label)
    if found:  # the first part has no `_`: the name reads back
        return f"{found.group(1)}_{found.group(2)}"
    encoded = "_" + urllib.parse.quote(label, safe="")
    if len(encoded) <= _LONGEST_FOLDER:
        return encoded
    # `%-` is never in an encoding: a shortened name is like no other.
    digest = hashlib.sha256(label.encode()).hexdigest()[:16]
    return f"{encoded[:150]}%-{digest}"


class _Source(NamedTuple):
    """What one ok image's row says about its bytes."""

    image_id: str
    subset: str
    shard: str
    member: str
    offset: int
    size: int
    width: int | None
    height: int | None
    turn: Image.Transpose | None


@dataclass
class _Counts:
    written: int = 0
    kept: int = 0  # already there from an earlier run with the same settings
    links_written: int = 0
    links_kept: int = 0
    unlabelled: int = 0  # --label-files copy: no positive label, no file
    failed: collections.Counter = field(default_factory=collections.Counter)


def _values(table: pa.Table, name: str) -> list:
    if name in table.column_names:
        return table[name].to_pylist()
    return [None] * table.num_rows


def _real(path: str) -> str:
    return path.rstrip("/") if files.is_uri(path) else os.path.realpath(path)


class FilesExport(Exporter):
    """Writes files/ (see the module docstring). After each `write`,
    `placed` says where each image of the batch went."""

    name = NAME
    columns = ("Subset", "width", "height", "Rotation", "exif_orientation")

    def __init__(
        self,
        options: FilesOptions,
        run_directory: str,
        manifest_digest: str,
        rule: LabelRule | None = None,
        protected: tuple[str, ...] = (),
    ) -> None:
        """`protected`: paths files/ must not hold (the run, its tars)."""
        super().__init__()
        self._options = options
        self._rule = rule or LabelRule()
        self._labels = options.layout == "labels"
        if self._labels:
            self.columns = (*self.columns, "labels")
        self._links = self._labels and options.label_files == "symlink"
        self._members = ShardMembers(run_directory)
        self._protected = (run_directory, *protected)
        labels = None
        if self._labels:
            labels = asdict(self._rule)
            if self._rule.allowed is not None:
                labels["allowed"] = sorted(self._rule.allowed)
        self._settings = {
            "format": NAME,
            "version": _SETTINGS_VERSION,
            "run_manifest_sha256": manifest_digest,
            "layout": options.layout,
            "label_files": options.label_files if self._labels else None,
            "labels": labels,
            "resize": asdict(options.resize),
            "pillow": Image.__version__,
            "libjpeg": features.version("jpg"),
            # Pillow's wheels bring libjpeg-turbo, whose output can change.
            "libjpeg_turbo": features.version_feature("libjpeg_turbo"),
        }
        self._names: dict[str, str | None] = {}
        self.counts = _Counts()
        self.removed: list[str] = []
        self.placed = Placed(0)
        self._failed: list[tuple[str, str]] = []
        self._subsets: collections.Counter = collections.Counter()

    def observe(self, table: pa.Table) -> None:
        if self._labels:
            positives = positive_labels(table["labels"], self._rule)
            merge_names(self._names, positives["label"], positives["display_name"])

    def start(self, directory: str) -> None:
        if self._links and files.is_uri(directory):
            raise ExportError(
                f"--layout labels: {directory} cannot hold symlinks; add "
                "--label-files copy (a copy per label folder)"
            )
        inside = _real(directory) + "/"
        for path in self._protected:
            if (_real(path) + "/").startswith(inside):
                raise ExportError(
                    f"--output: {directory} would hold {path}, which the export "
                    "reads (a rerun removes what it did not write there)"
                )
        self._tree = FileTree(directory)
        self._start_settings(f"{directory}/{SETTINGS}")
        for name in (FAILED, LABELS):  # written anew at the end
            self._tree.claim(name)

    def _start_settings(self, path: str) -> None:
        """Keeps the tree if its settings are these; else empties it first,
        then writes them (no file of other settings passes for ours)."""
        text = json.dumps(self._settings, indent=2, sort_keys=True) + "\n"
        if self._tree.claim(SETTINGS) is not None:
            with FileSystems.open(path) as f:
                if f.read().decode("utf-8", "replace") == text:
                    self.written_settings = WrittenExport(
                        NAME, path, 1, len(text.encode()), "file"
                    )
                    return
            files.delete([path])
        self.removed += self._tree.sweep()
        output = self.open(path, "file")
        output.write(text, 1)
        self.written_settings = output.commit()
        self._files.remove(output)

    def _sources(self, table: pa.Table) -> list[_Source]:
        columns = [
            table["ImageID"].to_pylist(),
            [subset_name(s) for s in _values(table, "Subset")],
            *(table[c].to_pylist() for c in ("shard", "member", "offset", "size")),
            _values(table, "width"),
            _values(table, "height"),
            [
                turn(r, o)
                for r, o in zip(
                    _values(table, "Rotation"),
                    _values(table, "exif_orientation"),
                    strict=True,
                )
            ],
        ]
        return [_Source(*row) for row in zip(*columns, strict=True)]

    def _folders(self, table: pa.Table) -> list[list[str]]:
        folders: list[list[str]] = [[] for _ in range(table.num_rows)]
        if self._labels:
            positives = positive_labels(table["labels"], self._rule)
            for row, label in zip(
                positives["row"].to_pylist(),
                positives["label"].to_pylist(),
                strict=True,
            ):
                folders[row].append(label_folder(label))
        return [sorted(f) for f in folders]

    def write(self, table: pa.Table) -> None:
        self.placed = Placed(table.num_rows)
        sources, folders = self._sources(table), self._folders(table)
        for i, (source, labels) in enumerate(zip(sources, folders, strict=True)):
            self.placed.turns[i] = source.turn
            path = self._place(source, labels)
            if path is not None:
                self.placed.paths[i] = f"{NAME}/{path}"
                upright = turned_size(source.width, source.height, source.turn)
                size = self._options.resize.size(*upright)
                self.placed.widths[i], self.placed.heights[i] = size

    def _place(self, source: _Source, folders: list[str]) -> str | None:
        """Writes one image's files and links (those not already there);
        returns its first file, None if it has none."""
        if not _IMAGE_ID.match(source.image_id or ""):  # the reader refuses too
            return self._fail(source, "unsafe ImageID: not 16 hex digits")
        if source.width is None or source.height is None:
            return self._fail(source, "no width and height in the images table")
        resize = self._options.resize
        remake = needs_render(source.width, source.height, source.turn, resize)
        ext = source.member.rsplit(".", 1)[-1].lower()
        ext = "jpg" if remake else ext if _EXTENSION.match(ext) else "bin"
        name = f"{source.image_id}.{ext}"
        if self._labels and not self._links:
            copies = [f"{source.subset}/{f}/{name}" for f in folders]
            if not copies:
                self.counts.unlabelled += 1
                return None
        else:
            copies = [f"{source.subset}/{name}"]
        expected = None if remake else ("file", source.size)
        missing = [c for c in copies if not self._tree.there(c, expected)]
        if missing:
            data = self._members.read(source.shard, source.offset, source.size)
            if remake:
                upright = turned_size(source.width, source.height, source.turn)
                target = resize.size(*upright)
                try:
                    data = render(data, source.turn, target, resize.quality)
                except Exception as e:  # Pillow raises many kinds for bad bytes
                    return self._fail(source, f"decode_error: {type(e).__name__}: {e}")
            for relative in missing:
                self._tree.put(relative, data)
            self.counts.written += 1
        else:
            self.counts.kept += 1
        if self._links:
            self._link_folders(source.subset, name, folders)
        self._subsets[source.subset] += 1
        return copies[0]

    def _link_folders(self, subset: str, name: str, folders: list[str]) -> None:
        for folder in folders:
            relative = f"{subset}/{folder}/{name}"
            if self._tree.there(relative, ("link", f"../{name}")):
                self.counts.links_kept += 1
            else:
                self._tree.link(relative, f"../{name}")
                self.counts.links_written += 1

    def _fail(self, source: _Source, reason: str) -> None:
        reason = " ".join(reason.split())
        self._failed.append((source.image_id or "", reason))
        self.counts.failed[reason.split(":", 1)[0]] += 1

    def finish(self) -> list[WrittenExport]:
        self._members.close()
        directory = self._tree.directory
        if self._labels:
            labels = self.open(f"{directory}/{LABELS}", "labels")
            for mid in sorted(self._names):
                name = " ".join((self._names[mid] or "").split())
                labels.write(f"{label_folder(mid)}\t{mid}\t{name}\n", 1)
        failed = self.open(f"{directory}/{FAILED}", "images")
        failed.write("ImageID\treason\n")
        for image_id, reason in self._failed:
            failed.write(f"{image_id}\t{reason}\n", 1)
        written = self.commit_all()
        self.removed += self._tree.sweep()
        per_subset = [
            WrittenExport(NAME, f"{directory}/{s}", n, 0)
            for s, n in sorted(self._subsets.items())
        ]
        return [*per_subset, self.written_settings, *written]

    def discard(self) -> None:
        self._members.close()
        super().discard()

    def note(self) -> str:
        """The counts for the summary: every ok image is in one of them."""
        c = self.counts
        parts = [f"{c.written:,} written", f"{c.kept:,} already there"]
        if self._links:
            parts.append(
                f"label links {c.links_written:,} written, "
                f"{c.links_kept:,} already there"
            )
        if c.unlabelled:
            parts.append(f"{c.unlabelled:,} with no positive label (no file)")
        failed = sum(c.failed.values())
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(c.failed.items()))
        parts.append(f"{failed:,} failed" + (f" ({reasons})" if failed else ""))
        return "files: " + ", ".join(parts)
