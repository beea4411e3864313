"""COCO and JSONL pointing at the files of `--format files` (--image-paths
files): a batch of ok images as the written files describe it, so every size
and box pixel is one of the file at `path`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.boxes import BOX_STRUCT
from oibeam.tools.export.base import PATH
from oibeam.tools.export.files_image import boxes_in_file
from oibeam.transforms.common.arrow_util import combine

FILE_COLUMNS = ("file_width", "file_height")  # added to JSONL
_FRACTIONS = ("x_min", "x_max", "y_min", "y_max")
_PX = ("x_min_px", "x_max_px", "y_min_px", "y_max_px")


class Placed:
    """Per row of a batch: its file (relative to the export directory, None
    without one), the file's size, and the turn that made it upright."""

    def __init__(self, n: int) -> None:
        self.paths: list[str | None] = [None] * n
        self.widths: list[int | None] = [None] * n
        self.heights: list[int | None] = [None] * n
        self.turns: list = [None] * n

    def has_file(self) -> np.ndarray:
        return np.array([p is not None for p in self.paths], dtype=bool)

    def boxes(self, column) -> pa.Array:
        """The `boxes` column with `*_px` in pixels of each image's file
        (null without a file); the fractions as they are."""
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
            for f in _FRACTIONS
        ]
        width = np.array([w or 0 for w in self.widths], np.float64)[parent]
        height = np.array([h or 0 for h in self.heights], np.float64)[parent]
        turns = np.array([str(t) for t in self.turns], dtype=object)[parent]
        px = [np.zeros(len(parent)) for _ in _PX]
        for op in set(self.turns):
            where = turns == str(op)
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
        lengths = pc.list_value_length(nested).fill_null(0).to_numpy()
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        return pa.ListArray.from_arrays(
            pa.array(offsets, pa.int32()), rebuilt, mask=nested.is_null()
        )


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.schema.get_field_index(name), name, values)
    return table.append_column(name, values)


def jsonl_view(table: pa.Table, placed: Placed) -> pa.Table:
    """`path` the file, FILE_COLUMNS its size, box `*_px` in its pixels; an
    image without a file has no path."""
    table = _set(table, PATH, pa.array(placed.paths, pa.string()))
    table = _set(table, FILE_COLUMNS[0], pa.array(placed.widths, pa.int32()))
    table = _set(table, FILE_COLUMNS[1], pa.array(placed.heights, pa.int32()))
    if "boxes" in table.column_names:
        table = _set(table, "boxes", placed.boxes(table["boxes"]))
    return table


def coco_view(table: pa.Table, placed: Placed) -> pa.Table:
    """Only the images with a file: the file's size as the upright size, no
    rotation left to apply, box pixels in the file."""
    table = jsonl_view(table, placed)
    table = _set(table, "upright_width", table[FILE_COLUMNS[0]])
    table = _set(table, "upright_height", table[FILE_COLUMNS[1]])
    table = _set(table, "Rotation", pa.array([0] * table.num_rows, pa.int16()))
    return table.filter(pa.array(placed.has_file()))
