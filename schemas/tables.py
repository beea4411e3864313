"""One explicit Arrow schema per output table, and the internal batch schemas.

Output tables (the contract in the README):
  images        one row per image, release columns + nested labels and boxes
  labels        one row per (ImageID, LabelName, Source) with Subset; with
                --expand-ancestors also the inferred ancestor rows, whose
                InferredFrom names the child label they came from
  label_counts  one row per (label, subset, source)
  label_stats   one row per label
  errors        one row per input row that could not be used

Internal batches carry `key` (the ImageID as uint64) instead of the ImageID text,
and `_src`/`_line` (the read range and the line in it) so errors can name a line.
"""

from __future__ import annotations

import pyarrow as pa

from oibeam.schemas.boxes import BOX_STATS_FIELDS, BOXES_FIELD, UPRIGHT_FIELDS
from oibeam.schemas.releases import IMAGE_COLUMNS, SOURCE_KINDS, SUBSETS

KEY = "key"
SRC = "_src"
LINE = "_line"

# Types of the known image columns; everything else is a string.
_IMAGE_TYPES: dict[str, pa.DataType] = {
    "OriginalSize": pa.int64(),
    "Rotation": pa.int16(),
}

LABEL_STRUCT = pa.struct(
    [
        pa.field("label", pa.string()),
        pa.field("display_name", pa.string()),
        pa.field("source", pa.string()),
        pa.field("confidence", pa.float64()),
        pa.field("inferred_from", pa.string()),  # null: given by the release
    ]
)

LABELS_BASE = pa.schema(
    [
        pa.field("ImageID", pa.string(), nullable=False),
        pa.field("Source", pa.string(), nullable=False),
        pa.field("LabelName", pa.string(), nullable=False),
        pa.field("DisplayName", pa.string()),
        pa.field("Confidence", pa.float64(), nullable=False),
        pa.field("Subset", pa.string(), nullable=False),
        pa.field("InferredFrom", pa.string()),
    ]
)

LABEL_COUNTS = pa.schema(
    [
        pa.field("label", pa.string(), nullable=False),
        pa.field("subset", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("positive_images", pa.int64(), nullable=False),
        pa.field("negative_images", pa.int64(), nullable=False),
        pa.field("confidence_sum", pa.float64(), nullable=False),
        pa.field("inferred_rows", pa.int64(), nullable=False),
    ]
)

HISTOGRAM_BINS = 10


def kind_count_columns() -> list[str]:
    """label_stats count columns: {subset}_{kind}_{positive|negative}_images."""
    return [
        f"{subset}_{kind}_{sign}_images"
        for subset in SUBSETS
        for kind in SOURCE_KINDS
        for sign in ("positive", "negative")
    ]


LABEL_STATS = pa.schema(
    [
        pa.field("label", pa.string(), nullable=False),
        pa.field("display_name", pa.string()),
        *[pa.field(c, pa.int64(), nullable=False) for c in kind_count_columns()],
        pa.field("machine_labels", pa.int64(), nullable=False),
        pa.field("machine_confidence_mean", pa.float64()),
        pa.field("machine_confidence_histogram", pa.list_(pa.int64())),
        pa.field("machine_verified_validation", pa.int64(), nullable=False),
        pa.field("machine_confirmed_validation", pa.int64(), nullable=False),
        pa.field("machine_precision", pa.float64()),
        pa.field("trainable", pa.bool_(), nullable=False),
        pa.field("inferred_labels", pa.int64(), nullable=False),
        *BOX_STATS_FIELDS,
    ]
)

ERRORS = pa.schema(
    [
        pa.field("file", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("code", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
    ]
)

# Errors before their line number is resolved: (range, line in range), and for
# duplicates the row that was kept instead (resolved into the reason).
REF_SRC = "_ref_src"
REF_LINE = "_ref_line"
ERRORS_INTERNAL = pa.schema(
    [
        pa.field(SRC, pa.int32(), nullable=False),
        pa.field(LINE, pa.int64(), nullable=False),
        pa.field("code", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
        pa.field(REF_SRC, pa.int32()),
        pa.field(REF_LINE, pa.int64()),
    ]
)


def image_column_type(name: str) -> pa.DataType:
    return _IMAGE_TYPES.get(name, pa.string())


def images_schema(extras: tuple[str, ...]) -> pa.Schema:
    """The images table: release columns, extra columns, nested labels and
    boxes (null when the run read no box files)."""
    fields = [
        pa.field(c, image_column_type(c), nullable=c != "ImageID")
        for c in IMAGE_COLUMNS
    ]
    fields += [pa.field(c, pa.string()) for c in extras]
    fields.append(pa.field("labels", pa.list_(LABEL_STRUCT)))
    fields.append(BOXES_FIELD)
    return pa.schema(fields)


def images_internal_schema(extras: tuple[str, ...]) -> pa.Schema:
    """Image batches between read and join: `key` replaces ImageID, no labels."""
    fields = [pa.field(KEY, pa.uint64(), nullable=False)]
    fields += [
        pa.field(c, image_column_type(c)) for c in IMAGE_COLUMNS if c != "ImageID"
    ]
    fields += [pa.field(c, pa.string()) for c in extras]
    fields += [pa.field(SRC, pa.int32()), pa.field(LINE, pa.int64())]
    return pa.schema(fields)


def labels_schema(extras: tuple[str, ...]) -> pa.Schema:
    return pa.schema(list(LABELS_BASE) + [pa.field(c, pa.string()) for c in extras])


def labels_internal_schema(extras: tuple[str, ...]) -> pa.Schema:
    """Label batches between read and join."""
    return pa.schema(
        [
            pa.field(KEY, pa.uint64(), nullable=False),
            pa.field("Source", pa.string()),
            pa.field("LabelName", pa.string()),
            pa.field("Confidence", pa.float64()),
            *[pa.field(c, pa.string()) for c in extras],
            pa.field(SRC, pa.int32()),
            pa.field(LINE, pa.int64()),
        ]
    )


def boxes_internal_schema() -> pa.Schema:
    """Box batches between read and join: coordinates as read, flags as
    -1/0/1 (null when the file has no such column)."""
    from oibeam.schemas.boxes import BOX_COORDINATES, BOX_FLAGS

    return pa.schema(
        [
            pa.field(KEY, pa.uint64(), nullable=False),
            pa.field("Source", pa.string()),
            pa.field("LabelName", pa.string()),
            pa.field("Confidence", pa.float64()),
            *[pa.field(c, pa.float64()) for c in BOX_COORDINATES],
            *[pa.field(c, pa.int8()) for c in BOX_FLAGS],
            pa.field(SRC, pa.int32()),
            pa.field(LINE, pa.int64()),
        ]
    )


BOX_COUNTS = pa.schema(
    [
        pa.field("label", pa.string(), nullable=False),
        pa.field("boxes", pa.int64(), nullable=False),
        pa.field("images_with_boxes", pa.int64(), nullable=False),
    ]
)


def images_with_status_schema(extras: tuple[str, ...]) -> pa.Schema:
    """The images table after a fetch: every column, the status columns and
    the upright size the pixel boxes refer to."""
    from oibeam.schemas.fetch import STATUS_FIELDS

    return pa.schema(list(images_schema(extras)) + STATUS_FIELDS + UPRIGHT_FIELDS)


# The class descriptions (dict.csv / class-descriptions.csv): mid -> name.
CLASSES = pa.schema(
    [
        pa.field("LabelName", pa.string(), nullable=False),
        pa.field("DisplayName", pa.string(), nullable=False),
    ]
)
