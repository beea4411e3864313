"""Bounding boxes: the CSV column forms and the nested `boxes` column of `images`.

Box files (V2+): ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax and,
in the 13-column form, IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside
(1 / 0, -1 = not annotated). Coordinates are fractions of the image as stored
(the bytes as served, before any EXIF orientation or Rotation is applied).

In `tables/images`, `boxes` is null when the run read no box files, else a
list (empty for an image without boxes) sorted by (label, source, y_min,
x_min, y_max, x_max). After a fetch, the `*_px` fields hold the box in pixels
of the *upright* image: the decoded image rotated counterclockwise by the
release's `Rotation` (0 when absent), whose size is `upright_width` x
`upright_height`; they are null where the image was not fetched ok.
"""

from __future__ import annotations

import pyarrow as pa

BOX_REQUIRED: tuple[str, ...] = (
    "ImageID",
    "Source",
    "LabelName",
    "Confidence",
    "XMin",
    "XMax",
    "YMin",
    "YMax",
)
BOX_FLAGS: tuple[str, ...] = (
    "IsOccluded",
    "IsTruncated",
    "IsGroupOf",
    "IsDepiction",
    "IsInside",
)
BOX_COORDINATES: tuple[str, ...] = ("XMin", "XMax", "YMin", "YMax")
# CSV flag column -> field of BOX_STRUCT
FLAG_FIELDS: dict[str, str] = {
    "IsOccluded": "is_occluded",
    "IsTruncated": "is_truncated",
    "IsGroupOf": "is_group_of",
    "IsDepiction": "is_depiction",
    "IsInside": "is_inside",
}

BOX_STRUCT = pa.struct(
    [
        pa.field("label", pa.string()),
        pa.field("display_name", pa.string()),
        pa.field("source", pa.string()),
        pa.field("confidence", pa.float64()),
        pa.field("x_min", pa.float64()),
        pa.field("x_max", pa.float64()),
        pa.field("y_min", pa.float64()),
        pa.field("y_max", pa.float64()),
        *[pa.field(f, pa.bool_()) for f in FLAG_FIELDS.values()],
        pa.field("x_min_px", pa.float64()),
        pa.field("x_max_px", pa.float64()),
        pa.field("y_min_px", pa.float64()),
        pa.field("y_max_px", pa.float64()),
    ]
)
BOXES_FIELD = pa.field("boxes", pa.list_(BOX_STRUCT))
# Image columns that the pixel conversion fills after a fetch.
UPRIGHT_FIELDS: list[pa.Field] = [
    pa.field("upright_width", pa.int32()),
    pa.field("upright_height", pa.int32()),
]

# Box counts joined onto label_stats (null when the run read no box files).
BOX_STATS_FIELDS: list[pa.Field] = [
    pa.field("boxes", pa.int64()),
    pa.field("images_with_boxes", pa.int64()),
]


def upright_size(width: int, height: int, rotation: int | None) -> tuple[int, int]:
    """The size of a width x height image once rotated by `rotation` degrees."""
    if rotation in (90, 270):
        return height, width
    return width, height
