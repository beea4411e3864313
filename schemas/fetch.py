"""The fetch contract: the status vocabulary, status columns, and the shard index.

Every selected image gets exactly one status. `retryable` says whether a later
run should try again (a refresh does, by default, only for those).
"""

from __future__ import annotations

import pyarrow as pa

# status -> (retryable, meaning)
STATUSES: dict[str, tuple[bool, str]] = {
    "ok": (False, "fetched and verified: size and MD5 match (thumbnails: decoded)"),
    "gone": (
        False,
        "404/410, or a 'photo unavailable' placeholder (by its URL, by a "
        "--placeholder-md5, or the same bytes for several images of a shard)",
    ),
    "changed": (False, "the bytes differ from OriginalSize / OriginalMD5"),
    "http_error": (
        False,
        "another HTTP failure (4xx, too many redirects, 5xx/429 "
        "after every retry: then retryable)",
    ),
    "timeout": (True, "connect/read timeout, or the per-image deadline passed"),
    "connection_error": (True, "refused, reset or dropped connection, DNS failure"),
    "too_large": (
        False,
        "over --max-bytes, over --max-pixels (a bomb), or a full decode needing "
        "more than --max-decode-memory",
    ),
    "not_an_image": (
        False,
        "Pillow cannot identify the bytes as an image, or an ICO (not opened)",
    ),
    "decode_error": (False, "a truncated or corrupt image (full decode failed)"),
    "refused": (
        False,
        "refused by policy: scheme, private address, bad ImageID, no URL",
    ),
    "error": (True, "an unexpected failure; `error` says what"),
}
OK = "ok"
GONE = "gone"
CHANGED = "changed"

# How an `ok` image was verified.
CHECKED_MD5 = "size+md5"
CHECKED_DECODE = "decode"  # no checksum to compare (thumbnails, mirrors without one)

STATUS_FIELDS: list[pa.Field] = [
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("retryable", pa.bool_(), nullable=False),
    pa.field("http_status", pa.int32()),
    pa.field("attempts", pa.int32(), nullable=False),
    pa.field("elapsed_ms", pa.int64(), nullable=False),
    pa.field("bytes", pa.int64(), nullable=False),
    pa.field("url", pa.string()),
    pa.field("md5_ok", pa.bool_()),
    pa.field("checked", pa.string()),
    pa.field("format", pa.string()),
    pa.field("mode", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("exif_orientation", pa.int8()),
    pa.field("display_width", pa.int32()),
    pa.field("display_height", pa.int32()),
    pa.field("shard", pa.string()),
    # ok images: the MD5 (base64, as OriginalMD5) of the bytes kept, and their
    # 64-bit perceptual hash (transforms/dedup/phash.py; null with --no-phash
    # or when the pixels cannot be read): what duplicates are found by
    pa.field("md5", pa.string()),
    pa.field("phash", pa.int64()),
]
STATUS_COLUMNS: tuple[str, ...] = tuple(f.name for f in STATUS_FIELDS)
# Columns that describe the run rather than the data: they differ between two
# otherwise identical runs.
RUN_COLUMNS: tuple[str, ...] = ("attempts", "elapsed_ms")

SHARD_INDEX = pa.schema(
    [
        pa.field("ImageID", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("member", pa.string(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("json_member", pa.string(), nullable=False),
        pa.field("json_offset", pa.int64(), nullable=False),
        pa.field("json_size", pa.int64(), nullable=False),
    ]
)

FORMAT_EXTENSIONS: dict[str, str] = {
    "JPEG": "jpg",
    "PNG": "png",
    "GIF": "gif",
    "WEBP": "webp",
    "BMP": "bmp",
    "TIFF": "tif",
    "MPO": "jpg",  # multi-picture JPEG (some cameras): a JPEG first frame
}


def is_retryable(status: str) -> bool:
    return STATUSES[status][0]
