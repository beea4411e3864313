"""Boxes in pixels: after a fetch, each ok image's boxes get pixel coordinates
of the upright image (decoded size, rotated by the release's Rotation), in
Arrow over whole tables (see schemas/boxes.py for the frame)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.boxes import BOX_STRUCT, UPRIGHT_FIELDS
from oibeam.schemas.fetch import OK
from oibeam.transforms.common.arrow_util import combine

_PX = ("x_min_px", "x_max_px", "y_min_px", "y_max_px")


def _ints(column, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(values with nulls as 0, valid mask) of an integer column."""
    values = combine(column)
    valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False))
    filled = np.asarray(pc.fill_null(values, 0).to_numpy(zero_copy_only=False))
    return filled.astype(np.int64).reshape(n), valid.reshape(n)


def upright_boxes(
    x_min, x_max, y_min, y_max, width, height, rotation
) -> tuple[np.ndarray, ...]:
    """Vectorised schemas.boxes.upright_box: fractions of the stored image ->
    pixels of the image rotated counterclockwise by `rotation` degrees."""
    x0, x1 = x_min * width, x_max * width
    y0, y1 = y_min * height, y_max * height
    cases = [
        (rotation == 90, (y0, y1, width - x1, width - x0)),
        (rotation == 180, (width - x1, width - x0, height - y1, height - y0)),
        (rotation == 270, (height - y1, height - y0, x0, x1)),
    ]
    out = [a.astype(np.float64) for a in (x0, x1, y0, y1)]
    for where, values in cases:
        for i, v in enumerate(values):
            out[i] = np.where(where, v, out[i])
    return tuple(out)


def with_upright_boxes(images: pa.Table) -> pa.Table:
    """An images table with status columns -> the same with `upright_width`,
    `upright_height` and the boxes' `*_px` fields filled for ok images."""
    n = images.num_rows
    width, has_width = _ints(images["width"], n)
    height, has_height = _ints(images["height"], n)
    if "Rotation" in images.column_names:
        rotation, _ = _ints(images["Rotation"], n)
    else:
        rotation = np.zeros(n, dtype=np.int64)
    ok = np.asarray(
        pc.fill_null(pc.equal(combine(images["status"]), OK), False).to_numpy(
            zero_copy_only=False
        )
    )
    sized = ok & has_width & has_height
    turned = np.isin(rotation, (90, 270))
    upright = {
        "upright_width": np.where(turned, height, width),
        "upright_height": np.where(turned, width, height),
    }
    for field in UPRIGHT_FIELDS:
        values = pa.array(upright[field.name], field.type, mask=~sized)
        if field.name in images.column_names:
            i = images.schema.get_field_index(field.name)
            images = images.set_column(i, field, values)
        else:
            images = images.append_column(field, values)
    if "boxes" not in images.column_names:
        return images
    i = images.schema.get_field_index("boxes")
    return images.set_column(
        i,
        images.schema.field(i),
        _pixel_boxes(images["boxes"], width, height, rotation, sized),
    )


def _pixel_boxes(column, width, height, rotation, sized) -> pa.Array:
    nested = combine(column)
    if nested.null_count == len(nested):
        return nested
    items = pc.list_flatten(nested)
    parent = np.asarray(pc.list_parent_indices(nested).to_numpy())
    coords = [
        np.asarray(pc.fill_null(items.field(f), 0.0).to_numpy(zero_copy_only=False))
        for f in ("x_min", "x_max", "y_min", "y_max")
    ]
    px = upright_boxes(*coords, width[parent], height[parent], rotation[parent])
    unknown = ~sized[parent]
    fields = {f.name: items.field(f.name) for f in BOX_STRUCT}
    for name, values in zip(_PX, px, strict=True):
        fields[name] = pa.array(values, pa.float64(), mask=unknown)
    rebuilt = pa.StructArray.from_arrays(
        [fields[f.name] for f in BOX_STRUCT], fields=list(BOX_STRUCT)
    )
    lengths = np.asarray(
        pc.fill_null(pc.list_value_length(nested), 0).to_numpy(zero_copy_only=False)
    )
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), rebuilt, mask=nested.is_null()
    )
