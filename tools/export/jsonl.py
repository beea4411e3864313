"""Per-image JSON Lines: jsonl/images.jsonl, one object per ok image in
ImageID order.

Keys, in this order, each only when the run has the column and the value is
not null: ImageID, Subset, path (shards/<shard>/<member>; with --image-paths
files, the file: files/<subset>/..., relative to the export directory), shard,
member, offset and size (of the member's bytes in the tar, to seek), with
--image-paths files file_width and file_height (and box *_px in the file's
pixels), the release's
columns (URLs, OriginalSize, OriginalMD5 as given, Rotation, license and
attribution), extra release columns, what the fetch found (checked, format,
mode, width, height, exif_orientation, display_*, upright_*), labels (every
row: label, display_name, source, confidence and, when the run has it,
inferred_from) and boxes. Columns that describe the fetch attempt rather than
the image (attempts, elapsed_ms, ...) are left out, so a rerun gives the same
bytes.
"""

from __future__ import annotations

import json

import pyarrow as pa

from oibeam.schemas.fetch import STATUS_COLUMNS
from oibeam.schemas.releases import IMAGE_COLUMNS
from oibeam.tools.export.base import INDEX_COLUMNS, PATH, Exporter, WrittenExport

FILE = "images.jsonl"
_FIRST = ("ImageID", "Subset", PATH, *INDEX_COLUMNS)
_FETCHED = (
    "checked",
    "format",
    "mode",
    "width",
    "height",
    "exif_orientation",
    "display_width",
    "display_height",
    "upright_width",
    "upright_height",
)
_NESTED = ("labels", "boxes")
# Columns of the images table that are not written.
_LEFT_OUT = frozenset(STATUS_COLUMNS) - set(_FETCHED)


def _dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def jsonl_columns(schema: pa.Schema, added: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The image columns written, in key order, for a run's images schema;
    `added` (columns an export adds to each batch) follow the index columns."""
    first = (*_FIRST, *added)
    release = [c for c in IMAGE_COLUMNS if c not in first]
    known = set(first) | set(release) | set(_FETCHED) | set(_NESTED) | _LEFT_OUT
    extras = [c for c in schema.names if c not in known]
    return tuple(
        c
        for c in (*first, *release, *extras, *_FETCHED, *_NESTED)
        if c in schema.names or c in (PATH, *INDEX_COLUMNS, *added)
    )


class ImagesJsonl(Exporter):
    """Writes jsonl/images.jsonl."""

    name = "jsonl"

    def __init__(self, schema: pa.Schema, added: tuple[str, ...] = ()) -> None:
        super().__init__()
        self._keys = jsonl_columns(schema, added)
        self.columns = tuple(c for c in self._keys if c in schema.names)

    def start(self, directory: str) -> None:
        self._file = self.open(f"{directory}/{FILE}")

    def write(self, table: pa.Table) -> None:
        columns = {k: table[k].to_pylist() for k in self._keys}
        lines = []
        for i in range(table.num_rows):
            row = {k: v[i] for k, v in columns.items() if v[i] is not None}
            lines.append(_dumps(row))
        if lines:
            self._file.write("\n".join(lines) + "\n", len(lines))

    def finish(self) -> list[WrittenExport]:
        return self.commit_all()
