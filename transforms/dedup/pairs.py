"""Pairs of duplicates among rows that share a bucket (no Beam here).

Exact: rows with the same digest (OriginalMD5, or the MD5 of the bytes) are
paired with the smallest ImageID of that digest, a star of k - 1 pairs for k
copies, however many: enough for the groups, and bounded.

Near: with threshold t, the 64 bits of a perceptual hash are cut into t + 1
bands; two hashes at most t bits apart agree on at least one band
(pigeonhole), so the candidates of a row are the rows with the same value of
some band. A candidate pair is verified by its Hamming distance and kept only
in the first band the two share, so each pair comes out once. Copies of one
hash (a blank image under thousands of ImageIDs) are paired in a star with the
first of them, which alone is compared further. A band value held by more than
`max_bucket` distinct hashes (a collection far beyond 2^(64/(t+1)) x
max_bucket images, or hashes skewed towards one value) is not searched pair by
pair: its hashes, sorted, are each compared with the next `window` only. Work
per band value is at most max_bucket^2 / 2 or hashes x window comparisons;
the rows searched by window, where pairs may be missed, are counted
(`truncated`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.duplicates import BY_BYTES, BY_CSV_MD5, BY_PHASH, PAIRS
from oibeam.transforms.common.arrow_util import combine, encode
from oibeam.transforms.common.image_keys import mix64

MAX_BUCKET = 2048  # rows of one band value compared pair by pair, at most
WINDOW = 64  # neighbours each row of a larger band value is compared with
KEY_BYTES = 24  # of a digest that choose its bucket: an MD5 in base64

# The entries of one digest or band, as they travel to their bucket.
EXACT_ENTRIES = pa.schema(
    [
        pa.field("evidence", pa.string(), nullable=False),
        pa.field("digest", pa.string(), nullable=False),
        pa.field("ImageID", pa.string(), nullable=False),
        pa.field("subset", pa.string(), nullable=False),
        pa.field("phash", pa.int64()),
    ]
)
NEAR_ENTRIES = pa.schema(
    [
        pa.field("band", pa.int8(), nullable=False),
        pa.field("value", pa.int64(), nullable=False),
        pa.field("ImageID", pa.string(), nullable=False),
        pa.field("subset", pa.string(), nullable=False),
        pa.field("phash", pa.int64(), nullable=False),
    ]
)


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each 64-bit value."""
    return np.bitwise_count(x.view(np.uint64)).astype(np.int32)


def bands(distance: int) -> list[tuple[int, int]]:
    """(shift, width) of the distance + 1 bands of 64 bits, as even as can be
    (t = 6: one band of 10 bits, six of 9)."""
    n = distance + 1
    widths = [64 // n + (1 if i < 64 % n else 0) for i in range(n)]
    shifts = np.concatenate([[0], np.cumsum(widths)[:-1]]).tolist()
    return list(zip(shifts, widths, strict=True))


def band_masks(distance: int) -> np.ndarray:
    """The uint64 mask of each band."""
    return np.array([((1 << w) - 1) << s for s, w in bands(distance)], dtype=np.uint64)


def _stable_key(strings) -> np.ndarray:
    """A stable uint64 of each string from its first KEY_BYTES bytes (zero
    padded), mixed: a whole MD5 in base64, so digests that share a prefix
    (hostile or made-up ones) still spread. Equal strings get equal keys."""
    width = KEY_BYTES
    padded = combine(
        pc.utf8_rpad(pc.utf8_slice_codeunits(strings, 0, width), width, "\0")
    )
    n = len(padded)
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32)
    offsets = offsets[padded.offset : padded.offset + n + 1]
    data = np.frombuffer(padded.buffers()[2] or b"", dtype=np.uint8)
    raw = data[offsets[:-1, None] + np.arange(width)]
    words = np.ascontiguousarray(raw).view("<u8")  # (n, KEY_BYTES / 8)
    key = np.zeros(n, dtype=np.uint64)
    for column in words.T:
        key = mix64(key ^ column)
    return key


def exact_entries(keys: pa.Table) -> pa.Table:
    """KEYS -> EXACT_ENTRIES: a csv_md5 entry per known OriginalMD5, a bytes
    entry per known MD5 of fetched bytes."""
    pieces = []
    for evidence, column in ((BY_CSV_MD5, "csv_md5"), (BY_BYTES, "md5")):
        rows = keys.filter(pc.is_valid(keys[column]))
        pieces.append(
            pa.table(
                [
                    pa.array(np.full(rows.num_rows, evidence, object), pa.string()),
                    rows[column],
                    rows["ImageID"],
                    rows["subset"],
                    rows["phash"],
                ],
                schema=EXACT_ENTRIES,
            )
        )
    return pa.concat_tables(pieces)


def exact_buckets(entries: pa.Table, buckets: int) -> np.ndarray:
    """The bucket of each exact entry (by its evidence and digest)."""
    key = _stable_key(combine(entries["digest"]))
    return (key % np.uint64(buckets)).astype(np.int64)


def band_entries(rows: pa.Table, distance: int) -> pa.Table:
    """KEYS -> one NEAR_ENTRIES row per band of each row with a hash."""
    rows = rows.filter(pc.is_valid(rows["phash"]))
    hashes = rows["phash"].to_numpy().view(np.uint64)
    pieces = []
    for band, (shift, width) in enumerate(bands(distance)):
        value = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        pieces.append(
            pa.table(
                [
                    pa.array(np.full(len(hashes), band, np.int8)),
                    pa.array(value.astype(np.int64)),
                    rows["ImageID"],
                    rows["subset"],
                    rows["phash"],
                ],
                schema=NEAR_ENTRIES,
            )
        )
    return pa.concat_tables(pieces) if pieces else NEAR_ENTRIES.empty_table()


def near_buckets(entries: pa.Table, buckets: int) -> np.ndarray:
    """The bucket of each near entry (by its band and band value)."""
    band = entries["band"].to_numpy().astype(np.uint64)
    value = entries["value"].to_numpy().view(np.uint64)
    key = mix64(value ^ (band << np.uint64(58)))
    return (key % np.uint64(buckets)).astype(np.int64)


def _pairs_table(rows: pa.Table, i, j, evidence: str, distance) -> pa.Table:
    """PAIRS of rows i[k] and j[k] (i's ImageID smaller)."""
    i, j = pa.array(i, pa.int64()), pa.array(j, pa.int64())
    return pa.table(
        [
            rows["ImageID"].take(i),
            rows["ImageID"].take(j),
            pa.array(np.full(len(i), evidence, object), pa.string()),
            distance,
            rows["subset"].take(i),
            rows["subset"].take(j),
            rows["phash"].take(i),
            rows["phash"].take(j),
        ],
        schema=PAIRS,
    )


def _segments(sorted_keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of each run of equal keys in rows sorted by them."""
    n = len(sorted_keys[0])
    new = np.zeros(n, dtype=bool)
    new[:1] = True
    for key in sorted_keys:
        new[1:] |= key[1:] != key[:-1]
    starts = np.flatnonzero(new)
    return starts, np.append(starts[1:], n)


def exact_pairs(entries: pa.Table) -> pa.Table:
    """EXACT_ENTRIES -> PAIRS: each row with the smallest ImageID of its
    (evidence, digest); distance 0."""
    if not entries.num_rows:
        return PAIRS.empty_table()
    rows = entries.sort_by(
        [("evidence", "ascending"), ("digest", "ascending"), ("ImageID", "ascending")]
    )
    names, evidence = encode(rows["evidence"])
    starts, ends = _segments([evidence, encode(rows["digest"])[1]])
    lengths = ends - starts
    head = np.repeat(starts, lengths)
    member = np.arange(rows.num_rows)
    copy = member != head
    i, j = head[copy], member[copy]
    parts = []
    for code in np.unique(evidence[i]).tolist():
        of = evidence[i] == code
        zeros = pa.array(np.zeros(int(of.sum()), np.int32))
        parts.append(_pairs_table(rows, i[of], j[of], names[code].as_py(), zeros))
    return pa.concat_tables(parts) if parts else PAIRS.empty_table()


@dataclass
class NearPairs:
    pairs: pa.Table  # PAIRS
    compared: int  # candidate pairs whose distance was computed
    truncated: int  # rows of band values too big for all pairs (window only)


def near_pairs(
    entries: pa.Table,
    distance: int,
    max_bucket: int = MAX_BUCKET,
    window: int = WINDOW,
) -> NearPairs:
    """NEAR_ENTRIES (of whole band values) -> PAIRS within `distance` bits,
    each pair once (in the first band its hashes share)."""
    if not entries.num_rows:
        return NearPairs(PAIRS.empty_table(), 0, 0)
    rows = entries.sort_by(
        [
            ("band", "ascending"),
            ("value", "ascending"),
            ("phash", "ascending"),
            ("ImageID", "ascending"),
        ]
    )
    band = rows["band"].to_numpy()
    value = rows["value"].to_numpy()
    hashes = rows["phash"].to_numpy().view(np.uint64)
    # Copies of one hash: each paired with the first (smallest ImageID) in
    # band 0, which every copy shares; only the first is compared further.
    first = np.zeros(rows.num_rows, dtype=bool)
    first[_segments([band, value, hashes])[0]] = True
    head = np.maximum.accumulate(np.where(first, np.arange(rows.num_rows), 0))
    copy = ~first & (band == 0)
    found_i, found_j = [head[copy]], [np.flatnonzero(copy)]
    distinct = np.flatnonzero(first)
    masks = band_masks(distance)
    starts, ends = _segments([band[distinct], value[distinct]])
    compared = truncated = 0
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        k = end - start
        if k < 2:
            continue
        if k <= max_bucket:
            a, b = np.triu_indices(k, 1)
        else:
            truncated += k
            steps = np.arange(1, min(window, k - 1) + 1)
            a = np.repeat(np.arange(k), len(steps))
            b = a + np.tile(steps, k)
            keep = b < k
            a, b = a[keep], b[keep]
        a, b = distinct[a + start], distinct[b + start]
        compared += len(a)
        xor = hashes[a] ^ hashes[b]
        near = popcount(xor) <= distance
        for earlier in masks[: band[a[0]]]:
            near &= (xor & earlier) != 0  # found in that band already
        found_i.append(a[near])
        found_j.append(b[near])
    i, j = np.concatenate(found_i), np.concatenate(found_j)
    ids = rows["ImageID"]
    swap = pc.greater(ids.take(pa.array(i)), ids.take(pa.array(j))).to_numpy(
        zero_copy_only=False
    )
    i, j = np.where(swap, j, i), np.where(swap, i, j)
    bits = pa.array(popcount(hashes[i] ^ hashes[j]), pa.int32())
    return NearPairs(_pairs_table(rows, i, j, BY_PHASH, bits), compared, truncated)
