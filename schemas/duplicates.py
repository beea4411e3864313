"""Duplicates: the `duplicates` table of a run and its vocabulary.

Two images are duplicates when they have the same OriginalMD5 in the CSVs, the
same bytes after a fetch, or perceptual hashes (64-bit DCT hash of the upright
image) at most `--near-duplicate-distance` bits apart. A group is a connected
set of such pairs; only images in a group of two or more appear in the table,
one row each. `group` is the smallest ImageID of the group, so it is the same
in every run that finds the same group.
"""

from __future__ import annotations

import pyarrow as pa

EXACT = "exact"  # same OriginalMD5, or the same bytes
NEAR = "near"  # perceptual hashes within the distance threshold
KINDS = (EXACT, NEAR)

# What showed the image to be a duplicate of another member of its group.
BY_CSV_MD5 = "csv_md5"  # OriginalMD5 in the CSVs (known before any fetch)
BY_BYTES = "bytes"  # the MD5 of the fetched bytes
BY_PHASH = "phash"  # the perceptual hash of the fetched image

DEFAULT_NEAR_DISTANCE = 6  # of 64 bits; measured in benchmarks/README.md

DUPLICATES = pa.schema(
    [
        pa.field("group", pa.string(), nullable=False),
        pa.field("ImageID", pa.string(), nullable=False),
        pa.field("subset", pa.string(), nullable=False),
        # exact when the image has an exact duplicate in its group, else near
        pa.field("kind", pa.string(), nullable=False),
        pa.field("evidence", pa.string(), nullable=False),
        # Hamming distance of the perceptual hashes to the nearest other member
        # (0 for exact duplicates; null when either hash is unknown)
        pa.field("distance", pa.int32()),
        # the nearest other member of the group (ties: the smallest ImageID)
        pa.field("nearest", pa.string(), nullable=False),
    ]
)

# What FindDuplicates reads of each image (transforms/dedup/keys.py builds it
# from an images table): the OriginalMD5 of the CSVs, and after a fetch the
# MD5 (base64) and perceptual hash of the bytes of ok images.
KEYS = pa.schema(
    [
        pa.field("ImageID", pa.string(), nullable=False),
        pa.field("subset", pa.string(), nullable=False),
        pa.field("csv_md5", pa.string()),
        pa.field("md5", pa.string()),
        pa.field("phash", pa.int64()),
    ]
)

# One pair of duplicates (a < b), with what each member is, so that grouping
# needs nothing else; `distance` is null when either hash is unknown.
PAIRS = pa.schema(
    [
        pa.field("a", pa.string(), nullable=False),
        pa.field("b", pa.string(), nullable=False),
        pa.field("evidence", pa.string(), nullable=False),
        pa.field("distance", pa.int32()),
        pa.field("a_subset", pa.string(), nullable=False),
        pa.field("b_subset", pa.string(), nullable=False),
        pa.field("a_phash", pa.int64()),
        pa.field("b_phash", pa.int64()),
    ]
)
