"""Join the image, label and box rows of one ImageID bucket (pure Arrow/NumPy,
no Beam).

All sides are sorted by the uint64 ImageID key; labels within an image by
(LabelName, Source), boxes by (LabelName, Source, YMin, XMin, YMax, XMax).
Rejected here: a repeated ImageID in the images files (`duplicate_image`), a
repeated (ImageID, LabelName, Source) (`duplicate_label`), and a label or box
whose ImageID has no image row (`unknown_image`); the first row in file order
is kept. With a hierarchy closure, positive labels also imply their ancestors
(hierarchy.expand_ancestors). The output of a bucket is the same rows in the
same order on every run, whatever order its pieces arrived in.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.boxes import BOX_STRUCT, BOXES_FIELD, FLAG_FIELDS
from oibeam.schemas.tables import (
    BOX_COUNTS,
    ERRORS_INTERNAL,
    KEY,
    LABEL_STRUCT,
    LINE,
    REF_LINE,
    REF_SRC,
    SRC,
    boxes_internal_schema,
    images_internal_schema,
    images_schema,
    labels_internal_schema,
    labels_schema,
)
from oibeam.transforms.common.arrow_util import encode, ranks
from oibeam.transforms.common.image_keys import format_image_ids, parse_image_ids
from oibeam.transforms.read.csv_parse import csv_fields
from oibeam.transforms.read.hierarchy import expand_ancestors


@dataclass
class JoinedBucket:
    images: pa.Table  # images_schema
    labels: pa.Table  # labels_schema, sorted by (ImageID, LabelName, Source)
    errors: pa.Table  # ERRORS_INTERNAL
    rows_per_range: dict[int, int]  # kept rows per read range
    box_counts: pa.Table  # BOX_COUNTS of this bucket's boxes


def _in_file_order(tables: typing.Iterable[pa.Table], schema: pa.Schema) -> pa.Table:
    """Concatenates pieces so rows stand in (range, line) order for equal keys."""
    pieces = [t for t in tables if t.num_rows]
    if not pieces:
        return schema.empty_table()
    pieces.sort(key=lambda t: (t[SRC][0].as_py(), t[LINE][0].as_py()))
    return pa.concat_tables(pieces).combine_chunks()


def _first_of_runs(duplicate: np.ndarray) -> np.ndarray:
    """For each row, the index of the first row of its run of equal keys."""
    idx = np.where(~duplicate, np.arange(len(duplicate)), 0)
    return np.maximum.accumulate(idx) if len(idx) else idx


@dataclass(frozen=True)
class JoinSpec:
    """What every bucket of a run is joined with."""

    image_extras: tuple[str, ...] = ()  # extra image columns, kept as strings
    label_extras: tuple[str, ...] = ()
    # Each read range's columns in file order, to rebuild a rejected row's text.
    range_columns: dict[int, tuple[str, ...]] = field(default_factory=dict)
    with_boxes: bool = False  # the run reads box files (else `boxes` is null)
    closure: pa.Table | None = None  # (LabelName, Ancestor): expand ancestors


def join_bucket(
    images_tables: typing.Iterable[pa.Table],
    labels_tables: typing.Iterable[pa.Table],
    classes: pa.Table,
    spec: JoinSpec,
    boxes_tables: typing.Iterable[pa.Table] = (),
) -> JoinedBucket:
    """Joins the image, label and box rows of one bucket (pure; see module doc)."""
    images = _in_file_order(images_tables, images_internal_schema(spec.image_extras))
    labels = _in_file_order(labels_tables, labels_internal_schema(spec.label_extras))
    images, ikeys, errors = _first_of_each_image(images, spec.range_columns)
    labels, label_errors = _known_labels(labels, ikeys, spec.range_columns)
    errors += label_errors
    image_ids = format_image_ids(ikeys)
    flat = _labels_table(labels, images["Subset"], ikeys, classes, spec.label_extras)
    if spec.closure is not None and flat.num_rows:
        flat = _expanded(flat, spec.closure, classes, image_ids, images["Subset"])
        lkeys = parse_image_ids(flat["ImageID"].combine_chunks())[0]
    else:
        lkeys = labels.keys
    kept = [images, labels.table]
    if spec.with_boxes:
        boxes = _in_file_order(boxes_tables, boxes_internal_schema())
        boxes, box_errors = _known_boxes(boxes, ikeys, spec.range_columns)
        errors += box_errors
        kept.append(boxes)
        nested_boxes = _nested_boxes(boxes, ikeys, classes)
        box_counts = _box_counts(boxes)
    else:
        nested_boxes = pa.nulls(len(ikeys), BOXES_FIELD.type)
        box_counts = BOX_COUNTS.empty_table()
    return JoinedBucket(
        images=_images_table(
            images, image_ids, flat, lkeys, ikeys, nested_boxes, spec.image_extras
        ),
        labels=flat,
        errors=pa.concat_tables(errors) if errors else ERRORS_INTERNAL.empty_table(),
        rows_per_range=_rows_per_range(*kept),
        box_counts=box_counts,
    )


def _first_of_each_image(
    images: pa.Table, range_columns
) -> tuple[pa.Table, np.ndarray, list[pa.Table]]:
    """(images sorted by key, the first row of each ImageID kept; their keys;
    duplicate_image errors for the rest)."""
    ikeys = images[KEY].to_numpy()
    order = np.argsort(ikeys, kind="stable")  # file order within a key
    images, ikeys = images.take(pa.array(order)), ikeys[order]
    dup = np.zeros(len(ikeys), dtype=bool)
    dup[1:] = ikeys[1:] == ikeys[:-1]
    if not dup.any():
        return images, ikeys, []
    first = _first_of_runs(dup)
    error = _errors_for(
        images,
        np.flatnonzero(dup),
        first[dup],
        "duplicate_image",
        "ImageID given again; the first row is kept",
        range_columns,
    )
    return images.filter(pa.array(~dup)), ikeys[~dup], [error]


@dataclass
class _SortedLabels:
    """Label rows sorted by (ImageID, LabelName, Source), file order among
    equals, with their LabelName dictionary-encoded."""

    table: pa.Table
    keys: np.ndarray  # uint64 ImageID keys
    label_values: pa.Array  # distinct LabelNames
    label_codes: np.ndarray  # each row's index into label_values
    composite: np.ndarray  # equal for equal (ImageID, LabelName, Source)

    @classmethod
    def of(cls, labels: pa.Table) -> _SortedLabels:
        lkeys = labels[KEY].to_numpy()
        label_values, label_codes = encode(labels["LabelName"])
        source_values, source_codes = encode(labels["Source"])
        combo = ranks(label_values)[label_codes] * max(len(source_values), 1)
        combo += ranks(source_values)[source_codes]
        by_key = np.argsort(lkeys, kind="stable")
        sorted_keys = lkeys[by_key]
        run = np.zeros(len(by_key), dtype=np.int64)
        run[1:] = np.cumsum(sorted_keys[1:] != sorted_keys[:-1])
        composite = (run << 32) | combo[by_key]
        within = np.argsort(composite, kind="stable")
        order = by_key[within]
        return cls(
            labels.take(pa.array(order)),
            lkeys[order],
            label_values,
            label_codes[order],
            composite[within],
        )

    def filter(self, keep: np.ndarray) -> _SortedLabels:
        return _SortedLabels(
            self.table.filter(pa.array(keep)),
            self.keys[keep],
            self.label_values,
            self.label_codes[keep],
            self.composite[keep],
        )


def _known_labels(
    labels: pa.Table, ikeys: np.ndarray, range_columns
) -> tuple[_SortedLabels, list[pa.Table]]:
    """(sorted labels of known images, the first of each (ImageID, LabelName,
    Source) kept; unknown_image and duplicate_label errors for the rest)."""
    found = _SortedLabels.of(labels)
    lkeys, errors = found.keys, []
    if len(ikeys):
        pos = np.minimum(np.searchsorted(ikeys, lkeys), len(ikeys) - 1)
        orphan = ikeys[pos] != lkeys
    else:
        orphan = np.ones(len(lkeys), dtype=bool)
    dup = np.zeros(len(lkeys), dtype=bool)
    dup[1:] = found.composite[1:] == found.composite[:-1]
    if orphan.any():
        errors.append(
            _errors_for(
                found.table,
                np.flatnonzero(orphan),
                None,
                "unknown_image",
                "no image row has this ImageID",
                range_columns,
            )
        )
    dup &= ~orphan
    if dup.any():
        first = _first_of_runs(dup)
        errors.append(
            _errors_for(
                found.table,
                np.flatnonzero(dup),
                first[dup],
                "duplicate_label",
                "(ImageID, LabelName, Source) given again; the first row is kept",
                range_columns,
            )
        )
    return found.filter(~(orphan | dup)), errors


def _display_names(label_values: pa.Array, classes: pa.Table) -> pa.Array:
    """The display name of each label (null when --classes does not name it)."""
    if not classes.num_rows:
        return pa.nulls(len(label_values), pa.string())
    where = pc.index_in(label_values, value_set=classes["LabelName"])
    return pc.take(classes["DisplayName"], where).combine_chunks()


def _expanded(flat, closure, classes, image_ids, image_subsets) -> pa.Table:
    """The labels table plus inferred ancestor rows, their DisplayName and
    Subset filled in (other columns stay null in inferred rows)."""
    out = expand_ancestors(flat, closure)
    inferred = pc.is_valid(out["InferredFrom"])
    where = pc.index_in(out["ImageID"], value_set=image_ids)
    for name, values in (
        ("Subset", image_subsets.combine_chunks().take(where)),
        ("DisplayName", _display_names(out["LabelName"].combine_chunks(), classes)),
    ):
        i = out.schema.get_field_index(name)
        out = out.set_column(
            i, out.schema.field(i), pc.if_else(inferred, values, out[name])
        )
    return out


def _nested(keys: np.ndarray, ikeys: np.ndarray, items: pa.Array) -> pa.ListArray:
    """A list per image key of the `items` rows (sorted by key) with that key."""
    starts = np.searchsorted(keys, ikeys, side="left").astype(np.int32)
    offsets = np.append(starts, np.int32(len(keys)))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), items)


def _images_table(images, image_ids, labels, lkeys, ikeys, boxes, extras):
    """The images table: every image column, its labels and boxes nested."""
    items = pa.StructArray.from_arrays(
        [
            labels["LabelName"].combine_chunks(),
            labels["DisplayName"].combine_chunks(),
            labels["Source"].combine_chunks(),
            labels["Confidence"].combine_chunks(),
            labels["InferredFrom"].combine_chunks(),
        ],
        fields=list(LABEL_STRUCT),
    )
    schema = images_schema(extras)
    columns = []
    for column in schema:
        if column.name == "ImageID":
            columns.append(image_ids)
        elif column.name == "labels":
            columns.append(_nested(lkeys, ikeys, items))
        elif column.name == "boxes":
            columns.append(boxes)
        else:
            columns.append(images[column.name])
    return pa.Table.from_arrays(columns, schema=schema)


def _known_boxes(boxes: pa.Table, ikeys: np.ndarray, range_columns):
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
            _errors_for(
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


def _nested_boxes(boxes: pa.Table, ikeys: np.ndarray, classes) -> pa.ListArray:
    labels = boxes["LabelName"].combine_chunks()
    values = {
        "label": labels,
        "display_name": _display_names(labels, classes),
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
    return _nested(boxes[KEY].to_numpy(), ikeys, items)


def _box_counts(boxes: pa.Table) -> pa.Table:
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


def _labels_table(
    labels: _SortedLabels,
    image_subsets: pa.ChunkedArray,
    ikeys: np.ndarray,
    classes: pa.Table,
    extras: tuple[str, ...],
) -> pa.Table:
    """The labels table (labels_schema): each row with its display name and
    its image's Subset; InferredFrom null."""
    names = _display_names(labels.label_values, classes)
    pos = np.searchsorted(ikeys, labels.keys)  # every label's image is known
    columns = {
        "ImageID": format_image_ids(labels.keys),
        "DisplayName": names.take(pa.array(labels.label_codes)),
        "Subset": image_subsets.take(pa.array(pos)),
        "InferredFrom": pa.nulls(len(labels.keys), pa.string()),
    }
    schema = labels_schema(extras)
    return pa.Table.from_arrays(
        [
            columns[f.name] if f.name in columns else labels.table[f.name]
            for f in schema
        ],
        schema=schema,
    )


def _rows_per_range(*tables: pa.Table) -> dict[int, int]:
    counts: dict[int, int] = {}
    for table in tables:
        values, n = np.unique(table[SRC].to_numpy(), return_counts=True)
        for v, c in zip(values.tolist(), n.tolist(), strict=True):
            counts[v] = counts.get(v, 0) + c
    return counts


def _errors_for(table, rows, first_rows, code, reason, range_columns) -> pa.Table:
    """Error rows for `rows` of an internal table, raw text rebuilt as CSV."""
    picked = table.take(pa.array(rows))
    count = len(rows)
    if first_rows is None:
        ref_src = pa.nulls(count, pa.int32())
        ref_line = pa.nulls(count, pa.int64())
    else:
        ref = table.take(pa.array(first_rows))
        ref_src, ref_line = ref[SRC].combine_chunks(), ref[LINE].combine_chunks()
    return pa.table(
        {
            SRC: picked[SRC].combine_chunks(),
            LINE: picked[LINE].combine_chunks(),
            "code": pa.array([code] * count, pa.string()),
            "reason": pa.array([reason] * count, pa.string()),
            "raw": _rebuild_raw(picked, range_columns),
            REF_SRC: ref_src,
            REF_LINE: ref_line,
        },
        schema=ERRORS_INTERNAL,
    )


def _rebuild_raw(picked: pa.Table, range_columns) -> pa.Array:
    """Rows of an internal table as CSV text in their file's column order."""
    text = {"ImageID": format_image_ids(picked[KEY].to_numpy())}
    for name in picked.column_names:
        if name not in (KEY, SRC, LINE):
            text[name] = csv_fields(picked[name].combine_chunks())
    src = picked[SRC].to_numpy()
    raw = np.empty(len(src), dtype=object)
    for range_id in np.unique(src).tolist():
        rows = np.flatnonzero(src == range_id)
        columns = [text[c].take(pa.array(rows)) for c in range_columns[range_id]]
        line = pc.binary_join_element_wise(*columns, ",")
        raw[rows] = line.to_numpy(zero_copy_only=False)
    return pa.array(raw, pa.string())
