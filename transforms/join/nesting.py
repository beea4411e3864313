"""Lists per image: an image's labels or boxes nested into one list cell, and
the boxes of a bucket checked, sorted and counted (pure Arrow/NumPy, no Beam)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.boxes import BOX_STRUCT, FLAG_FIELDS
from oibeam.schemas.tables import BOX_COUNTS, KEY
from oibeam.transforms.join.rejections import error_rows


def display_names(label_values: pa.Array, classes: pa.Table) -> pa.Array:
    """The display name of each label (null when --classes does not name it)."""
    if not classes.num_rows:
        return pa.nulls(len(label_values), pa.string())
    where = pc.index_in(label_values, value_set=classes["LabelName"])
    return pc.take(classes["DisplayName"], where).combine_chunks()


def nested(keys: np.ndarray, ikeys: np.ndarray, items: pa.Array) -> pa.ListArray:
    """A list per image key of the `items` rows (sorted by key) with that key."""
    starts = np.searchsorted(keys, ikeys, side="left").astype(np.int32)
    offsets = np.append(starts, np.int32(len(keys)))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), items)


def known_boxes(boxes: pa.Table, ikeys: np.ndarray, range_columns):
    """(boxes of known images sorted for nesting, [unknown_image errors])."""
    bkeys = boxes[KEY].to_numpy()
    if len(ikeys):
        pos = np.minimum(np.searchsorted(ikeys, bkeys), len(ikeys) - 1)
        orphan = ikeys[pos] != bkeys
    else:
        orphan = np.ones(len(bkeys), dtype=bool)
    errors = []
    if orphan.any():
        errors.append(
            error_rows(
                boxes,
                np.flatnonzero(orphan),
                None,
                "unknown_image",
                "no image row has this ImageID",
                range_columns,
            )
        )
        boxes = boxes.filter(pa.array(~orphan))
    order = [KEY, "LabelName", "Source", "YMin", "XMin", "YMax", "XMax"]
    return boxes.sort_by([(c, "ascending") for c in order]), errors


def nested_boxes(boxes: pa.Table, ikeys: np.ndarray, classes) -> pa.ListArray:
    labels = boxes["LabelName"].combine_chunks()
    values = {
        "label": labels,
        "display_name": display_names(labels, classes),
        "source": boxes["Source"].combine_chunks(),
        "confidence": boxes["Confidence"].combine_chunks(),
        "x_min": boxes["XMin"].combine_chunks(),
        "x_max": boxes["XMax"].combine_chunks(),
        "y_min": boxes["YMin"].combine_chunks(),
        "y_max": boxes["YMax"].combine_chunks(),
    }
    for column, name in FLAG_FIELDS.items():
        flag = boxes[column].combine_chunks()
        known = pc.and_(pc.is_valid(flag), pc.not_equal(flag, -1))
        values[name] = pc.if_else(known, pc.not_equal(flag, 0), None)
    items = pa.StructArray.from_arrays(
        [
            values[f.name] if f.name in values else pa.nulls(boxes.num_rows, f.type)
            for f in BOX_STRUCT
        ],
        fields=list(BOX_STRUCT),
    )
    return nested(boxes[KEY].to_numpy(), ikeys, items)


def box_counts(boxes: pa.Table) -> pa.Table:
    """Boxes and distinct images per label (an image lives in one bucket, so
    the sums over buckets are exact)."""
    if not boxes.num_rows:
        return BOX_COUNTS.empty_table()
    counts = boxes.group_by("LabelName", use_threads=False).aggregate(
        [(KEY, "count"), (KEY, "count_distinct")]
    )
    return pa.table(
        {
            "label": counts["LabelName"],
            "boxes": counts[f"{KEY}_count"],
            "images_with_boxes": counts[f"{KEY}_count_distinct"],
        },
        schema=BOX_COUNTS,
    ).sort_by("label")
