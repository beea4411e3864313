"""Pairs in a bucket: exact stars, the banded near search, bounded buckets."""

import base64
import itertools

import numpy as np
import pyarrow as pa

from oibeam.schemas.duplicates import BY_BYTES, BY_CSV_MD5, BY_PHASH, KEYS, PAIRS
from oibeam.transforms.dedup import pairs as search


def _keys(rows) -> pa.Table:
    """rows: (ImageID, csv_md5, md5, phash)."""
    ids, csv, md5, phash = zip(*rows, strict=True)
    return pa.table(
        [ids, ["train"] * len(ids), csv, md5, pa.array(phash, pa.int64())],
        schema=KEYS,
    )


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _pair_set(table: pa.Table) -> set[tuple]:
    return {(r["a"], r["b"], r["evidence"], r["distance"]) for r in table.to_pylist()}


def test_bands_cover_64_bits_in_distance_plus_one_even_parts():
    assert search.bands(6) == [
        (0, 10),
        (10, 9),
        (19, 9),
        (28, 9),
        (37, 9),
        (46, 9),
        (55, 9),
    ]
    for t in range(17):
        masks = search.band_masks(t)
        assert len(masks) == t + 1
        assert np.bitwise_or.reduce(masks) == np.uint64(2**64 - 1)
        assert sum(bin(int(m)).count("1") for m in masks) == 64


def test_copies_of_a_digest_pair_with_its_smallest_image_id():
    keys = _keys(
        [
            ("c", "X", None, None),
            ("a", "X", None, None),
            ("b", "X", "M", None),
            ("d", "Y", "M", None),
            ("e", "Z", None, None),
        ]
    )
    found = search.exact_pairs(search.exact_entries(keys))
    assert found.schema == PAIRS
    assert _pair_set(found) == {
        ("a", "b", BY_CSV_MD5, 0),
        ("a", "c", BY_CSV_MD5, 0),
        ("b", "d", BY_BYTES, 0),
    }


def test_a_digest_held_by_thousands_gives_a_star_not_all_pairs():
    rows = [(f"{i:016x}", "SAME", None, None) for i in range(3000)]
    found = search.exact_pairs(search.exact_entries(_keys(rows)))
    assert found.num_rows == 2999
    assert set(found["a"].to_pylist()) == {f"{0:016x}"}


def test_equal_digests_meet_in_one_bucket():
    keys = _keys([(f"{i:04d}", f"digest{i % 7}", None, None) for i in range(200)])
    entries = search.exact_entries(keys)
    buckets = search.exact_buckets(entries, 16)
    digests = entries["digest"].to_pylist()
    for d in set(digests):
        assert len({b for b, x in zip(buckets, digests, strict=True) if x == d}) == 1
    assert len(set(buckets.tolist())) > 4  # and spread


def test_digests_that_share_a_prefix_still_spread():
    """Made-up OriginalMD5s alike but for their last characters (a hostile
    CSV) do not all land in one bucket."""
    digests = [base64.b64encode(i.to_bytes(16, "big")).decode() for i in range(256)]
    keys = _keys([(f"{i:016x}", d, None, None) for i, d in enumerate(digests)])
    buckets = search.exact_buckets(search.exact_entries(keys), 16)
    assert len(set(buckets.tolist())) == 16


def _near(rows, distance, **kw):
    entries = search.band_entries(_keys(rows), distance)
    return search.near_pairs(entries, distance, **kw)


def test_near_pairs_are_exactly_those_within_the_distance_each_once():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**63, 40, dtype=np.int64).tolist()
    hashes = []
    for h in base:  # each with copies 0..9 bits away
        hashes.append(h)
        for flips in (1, 3, 6, 7, 9):
            bits = rng.choice(64, flips, replace=False)
            hashes.append(_signed((h & (2**64 - 1)) ^ sum(1 << int(b) for b in bits)))
    rows = [(f"{i:016x}", None, None, h) for i, h in enumerate(hashes)]
    found = _near(rows, 6)
    expected = {
        (rows[i][0], rows[j][0])
        for i, j in itertools.combinations(range(len(rows)), 2)
        if ((hashes[i] ^ hashes[j]) & (2**64 - 1)).bit_count() <= 6
    }
    got = list(
        zip(found.pairs["a"].to_pylist(), found.pairs["b"].to_pylist(), strict=True)
    )
    assert len(got) == len(set(got))  # once each
    assert set(got) == expected
    for r in found.pairs.to_pylist():
        assert r["a"] < r["b"]
        assert (
            r["distance"] == ((r["a_phash"] ^ r["b_phash"]) & (2**64 - 1)).bit_count()
        )
    assert found.truncated == 0


def test_rows_without_a_hash_have_no_band_entries():
    rows = [("a", None, None, None), ("b", None, None, 5)]
    assert search.band_entries(_keys(rows), 6).num_rows == 7


def test_thousands_of_copies_of_one_hash_are_a_star_found_whole():
    # a blank image under 5,000 ImageIDs, and 5 hashes one bit from it
    rows = [(f"{i:016x}", None, None, 0) for i in range(5000)]
    rows += [(f"f{i:015x}", None, None, 1 << (40 + i)) for i in range(5)]
    found = _near(rows, 6, max_bucket=1000, window=8)
    assert found.truncated == 0
    assert found.compared < 100  # the six distinct hashes, band by band
    pairs = _pair_set(found.pairs)
    assert {p for p in pairs if p[1] < "f"} == {
        (f"{0:016x}", f"{i:016x}", BY_PHASH, 0) for i in range(1, 5000)
    }
    # each one-bit hash with the first blank copy, and with one another
    assert {p for p in pairs if p[1].startswith("f")} == {
        (f"{0:016x}", f"f{i:015x}", BY_PHASH, 1) for i in range(5)
    } | {
        (f"f{i:015x}", f"f{j:015x}", BY_PHASH, 2)
        for i in range(5)
        for j in range(i + 1, 5)
    }


def test_a_band_value_of_too_many_hashes_is_searched_by_window():
    # 3,000 distinct hashes sharing their low band: compared with 8 neighbours
    rng = np.random.default_rng(2)
    high = rng.integers(1, 2**53, 3000, dtype=np.int64) << 10
    rows = [(f"{i:016x}", None, None, int(h)) for i, h in enumerate(high)]
    rows.append(("ffffffffffffffff", None, None, int(high[0]) ^ (1 << 10)))
    found = _near(rows, 6, max_bucket=1000, window=8)
    assert found.truncated == 3001
    assert found.compared <= 3001 * 8 + 7 * 3001 * 3000 // 2 // 100
    # adjacent once sorted by hash: found
    assert (f"{0:016x}", "ffffffffffffffff", BY_PHASH, 1) in _pair_set(found.pairs)
