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

from oibeam.schemas.boxes import BOXES_FIELD
from oibeam.schemas.tables import (
    BOX_COUNTS,
    ERRORS_INTERNAL,
    KEY,
    LABEL_STRUCT,
    LINE,
    SRC,
    boxes_internal_schema,
    images_internal_schema,
    images_schema,
    labels_internal_schema,
    labels_schema,
)
from oibeam.transforms.common.arrow_util import encode, ranks
from oibeam.transforms.common.image_keys import format_image_ids, parse_image_ids
from oibeam.transforms.join.nesting import (
    box_counts,
    display_names,
    known_boxes,
    nested,
    nested_boxes,
)
from oibeam.transforms.join.rejections import error_rows, first_of_runs
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
        boxes, box_errors = known_boxes(boxes, ikeys, spec.range_columns)
        errors += box_errors
        kept.append(boxes)
        boxes_column = nested_boxes(boxes, ikeys, classes)
        counted_boxes = box_counts(boxes)
    else:
        boxes_column = pa.nulls(len(ikeys), BOXES_FIELD.type)
        counted_boxes = BOX_COUNTS.empty_table()
    return JoinedBucket(
        images=_images_table(
            images, image_ids, flat, lkeys, ikeys, boxes_column, spec.image_extras
        ),
        labels=flat,
        errors=pa.concat_tables(errors) if errors else ERRORS_INTERNAL.empty_table(),
        rows_per_range=_rows_per_range(*kept),
        box_counts=counted_boxes,
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
    first = first_of_runs(dup)
    error = error_rows(
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
            error_rows(
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
        first = first_of_runs(dup)
        errors.append(
            error_rows(
                found.table,
                np.flatnonzero(dup),
                first[dup],
                "duplicate_label",
                "(ImageID, LabelName, Source) given again; the first row is kept",
                range_columns,
            )
        )
    return found.filter(~(orphan | dup)), errors


def _expanded(flat, closure, classes, image_ids, image_subsets) -> pa.Table:
    """The labels table plus inferred ancestor rows, their DisplayName and
    Subset filled in (other columns stay null in inferred rows)."""
    out = expand_ancestors(flat, closure)
    inferred = pc.is_valid(out["InferredFrom"])
    where = pc.index_in(out["ImageID"], value_set=image_ids)
    for name, values in (
        ("Subset", image_subsets.combine_chunks().take(where)),
        ("DisplayName", display_names(out["LabelName"].combine_chunks(), classes)),
    ):
        i = out.schema.get_field_index(name)
        out = out.set_column(
            i, out.schema.field(i), pc.if_else(inferred, values, out[name])
        )
    return out


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
            columns.append(nested(lkeys, ikeys, items))
        elif column.name == "boxes":
            columns.append(boxes)
        else:
            columns.append(images[column.name])
    return pa.Table.from_arrays(columns, schema=schema)


def _labels_table(
    labels: _SortedLabels,
    image_subsets: pa.ChunkedArray,
    ikeys: np.ndarray,
    classes: pa.Table,
    extras: tuple[str, ...],
) -> pa.Table:
    """The labels table (labels_schema): each row with its display name and
    its image's Subset; InferredFrom null."""
    names = display_names(labels.label_values, classes)
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
