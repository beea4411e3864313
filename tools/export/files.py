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

Resumable and deterministic: each file is written under a temporary name and
renamed (a symlink too), so a name holds a whole file or nothing. A rerun
with the same settings (settings.json: the options, the run's manifest
digest, Pillow's and libjpeg's versions) keeps the files already there and
writes the missing ones; with other settings it first removes every file.
Files this export did not make (an earlier layout, a killed run's temporary
files) are removed at the end, and empty folders with them.
"""

from __future__ import annotations

import collections
import json
import os
import re
import urllib.parse
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from PIL import Image, features

from oibeam.schemas.boxes import BOX_STRUCT
from oibeam.tools.export.base import (
    PATH,
    Exporter,
    ExportError,
    WrittenExport,
    merge_names,
    subset_name,
)
from oibeam.tools.export.files_image import (
    Resize,
    boxes_in_file,
    needs_render,
    render,
    turn,
    turned_size,
)
from oibeam.tools.export.training_list import LabelRule, positive_labels
from oibeam.transforms.common import files
from oibeam.transforms.common.arrow_util import combine
from oibeam.transforms.common.write_files import commit, temporary_name
from oibeam.transforms.shard.locations import listed_path, run_relative

NAME = "files"
LAYOUTS = ("flat", "labels")
LABEL_FILES = ("symlink", "copy")
IMAGE_PATHS = ("members", "files")
SETTINGS = "settings.json"
FAILED = "failed.tsv"
LABELS = "labels.tsv"
FILE_COLUMNS = ("file_width", "file_height")  # added to JSONL with files paths
_IMAGE_ID = re.compile(r"^[0-9a-f]{16}$")
_MID = re.compile(r"^/([a-z]+)/([0-9a-z_]+)$")
_EXTENSION = re.compile(r"^[a-z0-9]{1,5}$")
_OPEN_SHARDS = 16
_PX = ("x_min_px", "x_max_px", "y_min_px", "y_max_px")


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
    return "_" + urllib.parse.quote(label, safe="")


@dataclass
class _Counts:
    written: int = 0
    kept: int = 0  # already there from an earlier run with the same settings
    links_written: int = 0
    links_kept: int = 0
    unlabelled: int = 0  # --label-files copy: no positive label, no file
    bytes: int = 0
    failed: collections.Counter = field(default_factory=collections.Counter)


class _Members:
    """Reads members at their offsets, a few shards kept open."""

    def __init__(self, run_directory: str) -> None:
        self._run = run_directory
        self._open: collections.OrderedDict = collections.OrderedDict()

    def read(self, shard: str, offset: int, size: int) -> bytes:
        handle = self._open.pop(shard, None)
        if handle is None:
            path = listed_path(self._run, run_relative(shard))
            handle = FileSystems.open(
                path, compression_type=CompressionTypes.UNCOMPRESSED
            )
            while len(self._open) >= _OPEN_SHARDS:
                self._open.popitem(last=False)[1].close()
        self._open[shard] = handle
        handle.seek(offset)
        data = handle.read(size)
        if len(data) != size:
            raise ExportError(
                f"{shard}: a member at {offset} runs past the end of the shard; "
                "run `oibeam verify` on the run"
            )
        return data

    def close(self) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()


def _listing(directory: str) -> dict[str, tuple[str, object]]:
    """Every file below `directory`: relative path -> ("file", size) or
    ("link", target)."""
    found: dict[str, tuple[str, object]] = {}
    if files.is_uri(directory):
        for m in FileSystems.match([f"{directory}/**"])[0].metadata_list:
            found[m.path[len(directory) + 1 :]] = ("file", m.size_in_bytes)
        return found
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, directory).replace(os.sep, "/")
            if os.path.islink(path):
                found[relative] = ("link", os.readlink(path))
            else:
                found[relative] = ("file", os.path.getsize(path))
    return found


def _values(table: pa.Table, name: str) -> list:
    if name in table.column_names:
        return table[name].to_pylist()
    return [None] * table.num_rows


class FilesExport(Exporter):
    """Writes files/ (see the module docstring); `placed` gives COCO and JSONL
    their view of each batch when they point at the files."""

    name = NAME
    columns = ("Subset", "width", "height", "Rotation", "exif_orientation")

    def __init__(
        self,
        options: FilesOptions,
        run_directory: str,
        manifest_digest: str,
        rule: LabelRule | None = None,
    ) -> None:
        super().__init__()
        self._options = options
        self._rule = rule or LabelRule()
        self._labels = options.layout == "labels"
        if self._labels:
            self.columns = (*self.columns, "labels")
        self._links = self._labels and options.label_files == "symlink"
        self._members = _Members(run_directory)
        self._settings = {
            "format": NAME,
            "version": 1,
            "run_manifest_sha256": manifest_digest,
            "layout": options.layout,
            "label_files": options.label_files if self._labels else None,
            "labels": asdict(self._rule) if self._labels else None,
            "resize": asdict(options.resize),
            "pillow": Image.__version__,
            "libjpeg": features.version("jpg"),
        }
        if self._rule.allowed is not None and self._labels:
            self._settings["labels"]["allowed"] = sorted(self._rule.allowed)
        self._names: dict[str, str | None] = {}
        self.counts = _Counts()
        self.removed: list[str] = []
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
        self._directory = directory
        self._existing = _listing(directory)
        settings = f"{directory}/{SETTINGS}"
        text = json.dumps(self._settings, indent=2, sort_keys=True) + "\n"
        old = self._existing.pop(SETTINGS, None)
        same = old is not None and files.exists(settings)
        if same:
            with FileSystems.open(settings) as f:
                same = f.read().decode("utf-8", "replace") == text
        if not same:  # other settings: no file of theirs may pass for ours
            if old is not None:
                files.delete([settings])
            self.removed += self._delete(list(self._existing))
            self._existing = {}
            output = self.open(settings, "file")
            output.write(text, 1)
            self.written_settings = output.commit()
            self._files.remove(output)
        else:
            self.written_settings = WrittenExport(
                NAME, settings, 1, len(text.encode()), "file"
            )
        for name in (FAILED, LABELS):
            self._existing.pop(name, None)

    def _delete(self, relative: list[str]) -> list[str]:
        paths = [f"{self._directory}/{r}" for r in sorted(relative)]
        for start in range(0, len(paths), 1000):
            files.delete(paths[start : start + 1000])
        return paths

    def _put(self, relative: str, data: bytes) -> None:
        path = f"{self._directory}/{relative}"
        temp = temporary_name(path)
        try:
            with files.create(temp) as handle:
                handle.write(data)
            if files.is_uri(path):
                commit(temp, path)
            else:
                os.replace(temp, path)
        except BaseException:
            if files.exists(temp):
                files.delete([temp])
            raise
        self.counts.bytes += len(data)

    def _link(self, relative: str, target: str) -> None:
        path = f"{self._directory}/{relative}"
        temp = temporary_name(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, temp)
        os.replace(temp, path)

    def _there(self, relative: str, expected: tuple[str, object] | None) -> bool:
        """Whether `relative` is already there as expected (None: any file)."""
        found = self._existing.pop(relative, None)
        if found is None:
            return False
        if expected is None:
            return found[0] == "file"
        return found == expected

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
        self.placed = self._write(table)

    def _write(self, table: pa.Table) -> _Placed:
        resize = self._options.resize
        ids = table["ImageID"].to_pylist()
        subsets = _values(table, "Subset")  # V1's earliest files have none
        shards, members = table["shard"].to_pylist(), table["member"].to_pylist()
        offsets, sizes = table["offset"].to_pylist(), table["size"].to_pylist()
        widths, heights = table["width"].to_pylist(), table["height"].to_pylist()
        rotations = _values(table, "Rotation")
        orientations = _values(table, "exif_orientation")
        placed = _Placed(table.num_rows)
        for i, folders in enumerate(self._folders(table)):
            image_id = ids[i]
            op = turn(rotations[i], orientations[i])
            placed.ops[i] = op
            if not _IMAGE_ID.match(image_id or ""):  # the reader refuses these too
                self._fail(image_id, "unsafe ImageID: not 16 hex digits")
                continue
            if widths[i] is None or heights[i] is None:
                self._fail(image_id, "no width and height in the images table")
                continue
            remake = needs_render(widths[i], heights[i], op, resize)
            ext = members[i].rsplit(".", 1)[-1].lower()
            if remake:
                ext = "jpg"
            elif not _EXTENSION.match(ext):
                ext = "bin"
            subset = subset_name(subsets[i])
            name = f"{image_id}.{ext}"
            if self._labels and not self._links:
                copies = [f"{subset}/{f}/{name}" for f in folders]
            else:
                copies = [f"{subset}/{name}"]
            links = [f"{subset}/{f}/{name}" for f in folders] if self._links else []
            if not copies:
                self.counts.unlabelled += 1
                continue
            size = None if remake else ("file", sizes[i])
            missing = [c for c in copies if not self._there(c, size)]
            if missing:
                data = self._members.read(shards[i], offsets[i], sizes[i])
                if remake:
                    target = resize.size(*turned_size(widths[i], heights[i], op))
                    try:
                        data = render(data, op, target, resize.quality)
                    except Exception as e:  # Pillow raises many kinds for bad bytes
                        self._fail(image_id, f"decode_error: {type(e).__name__}: {e}")
                        continue
                for relative in missing:
                    self._put(relative, data)
            self.counts.written += bool(missing)
            self.counts.kept += not missing
            for link in links:
                if self._there(link, ("link", f"../{name}")):
                    self.counts.links_kept += 1
                else:
                    self._link(link, f"../{name}")
                    self.counts.links_written += 1
            self._subsets[subset] += 1
            placed.paths[i] = f"{NAME}/{copies[0]}"
            upright = turned_size(widths[i], heights[i], op)
            placed.widths[i], placed.heights[i] = resize.size(*upright)
        return placed

    def _fail(self, image_id: str | None, reason: str) -> None:
        reason = " ".join(reason.split())
        self._failed.append((image_id or "", reason))
        self.counts.failed[reason.split(":", 1)[0]] += 1

    def finish(self) -> list[WrittenExport]:
        self._members.close()
        if self._labels:
            labels = self.open(f"{self._directory}/{LABELS}", "labels")
            for mid in sorted(self._names):
                name = " ".join((self._names[mid] or "").split())
                labels.write(f"{label_folder(mid)}\t{mid}\t{name}\n", 1)
        failed = self.open(f"{self._directory}/{FAILED}", "images")
        failed.write("ImageID\treason\n")
        for image_id, reason in self._failed:
            failed.write(f"{image_id}\t{reason}\n", 1)
        written = self.commit_all()
        self.removed += self._delete(list(self._existing))
        self._existing = {}
        if not files.is_uri(self._directory):
            _remove_empty_folders(self._directory)
        per_subset = [
            WrittenExport(NAME, f"{self._directory}/{s}", n, 0)
            for s, n in sorted(self._subsets.items())
        ]
        return [*per_subset, self.written_settings, *written]

    def discard(self) -> None:
        self._members.close()
        super().discard()

    def note(self) -> str:
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


def _remove_empty_folders(directory: str) -> None:
    for root, dirs, names in os.walk(directory, topdown=False):
        if root != directory and not dirs and not names:
            try:
                os.rmdir(root)
            except OSError:
                pass  # something appeared in it meanwhile


class _Placed:
    """Per row of a batch: its file (relative to the export directory, None
    without one), the file's size, and the turn that made it upright."""

    def __init__(self, n: int) -> None:
        self.paths: list[str | None] = [None] * n
        self.widths: list[int | None] = [None] * n
        self.heights: list[int | None] = [None] * n
        self.ops: list = [None] * n

    def has_file(self) -> np.ndarray:
        return np.array([p is not None for p in self.paths], dtype=bool)

    def boxes(self, column) -> pa.Array:
        """The `boxes` column with `*_px` in pixels of each image's file
        (null without a file)."""
        nested = combine(column)
        if nested.null_count == len(nested):
            return nested
        items = pc.list_flatten(nested)
        parent = np.asarray(pc.list_parent_indices(nested).to_numpy(), np.int64)
        fractions = [
            np.asarray(
                pc.fill_null(items.field(f), 0.0).to_numpy(zero_copy_only=False),
                np.float64,
            )
            for f in ("x_min", "x_max", "y_min", "y_max")
        ]
        width = np.array([w or 0 for w in self.widths], np.float64)[parent]
        height = np.array([h or 0 for h in self.heights], np.float64)[parent]
        px = [np.zeros(len(parent)) for _ in _PX]
        ops = np.array([str(o) for o in self.ops], dtype=object)[parent]
        for op in set(self.ops):
            where = ops == str(op)
            values = boxes_in_file(
                *(f[where] for f in fractions), op, width[where], height[where]
            )
            for k, v in enumerate(values):
                px[k][where] = v
        unknown = ~self.has_file()[parent]
        fields = {f.name: items.field(f.name) for f in BOX_STRUCT}
        for name, values in zip(_PX, px, strict=True):
            fields[name] = pa.array(values, pa.float64(), mask=unknown)
        rebuilt = pa.StructArray.from_arrays(
            [fields[f.name] for f in BOX_STRUCT], fields=list(BOX_STRUCT)
        )
        offsets = pc.list_value_length(nested).fill_null(0).to_numpy()
        offsets = np.concatenate([[0], np.cumsum(offsets)]).astype(np.int32)
        return pa.ListArray.from_arrays(
            pa.array(offsets, pa.int32()), rebuilt, mask=nested.is_null()
        )


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.schema.get_field_index(name), name, values)
    return table.append_column(name, values)


def jsonl_view(table: pa.Table, placed: _Placed) -> pa.Table:
    """JSONL pointing at the files: `path` the file, its size, boxes in its
    pixels; an image without a file has no path."""
    table = _set(table, PATH, pa.array(placed.paths, pa.string()))
    table = _set(table, FILE_COLUMNS[0], pa.array(placed.widths, pa.int32()))
    table = _set(table, FILE_COLUMNS[1], pa.array(placed.heights, pa.int32()))
    if "boxes" in table.column_names:
        table = _set(table, "boxes", placed.boxes(table["boxes"]))
    return table


def coco_view(table: pa.Table, placed: _Placed) -> pa.Table:
    """COCO pointing at the files: only images with a file, the file's size
    as the upright size and no rotation left to apply, boxes in its pixels."""
    table = jsonl_view(table, placed)
    table = _set(table, "upright_width", table[FILE_COLUMNS[0]])
    table = _set(table, "upright_height", table[FILE_COLUMNS[1]])
    table = _set(table, "Rotation", pa.array([0] * table.num_rows, pa.int32()))
    return table.filter(pa.array(placed.has_file()))
