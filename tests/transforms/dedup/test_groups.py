"""Pairs -> groups -> duplicates rows."""

import numpy as np
import pyarrow as pa

from oibeam.schemas.duplicates import (
    BY_BYTES,
    BY_CSV_MD5,
    BY_PHASH,
    DUPLICATES,
    EXACT,
    NEAR,
    PAIRS,
)
from oibeam.transforms.dedup.groups import components, concat_pairs, duplicate_rows


def _pairs(rows) -> pa.Table:
    """rows: (a, b, evidence, a_phash, b_phash)."""
    out = []
    for a, b, evidence, ha, hb in rows:
        d = None if ha is None or hb is None else ((ha ^ hb) & (2**64 - 1)).bit_count()
        if evidence != BY_PHASH:
            d = 0
        subset = {"v": "validation"}.get(a[0], "train")
        out.append([a, b, evidence, d, subset, "train", ha, hb])
    return pa.table(list(map(list, zip(*out, strict=True))), schema=PAIRS)


def test_components_take_the_smallest_member_as_root():
    root = components(np.array([3, 1, 5]), np.array([4, 3, 6]), 7)
    assert root.tolist() == [0, 1, 2, 1, 1, 5, 5]


def test_components_agree_with_a_plain_union_find():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = int(rng.integers(1, 60)), int(rng.integers(0, 80))
        a, b = rng.integers(0, n, m), rng.integers(0, n, m)
        parent = list(range(n))

        def find(x, parent=parent):
            while parent[x] != x:
                x = parent[x]
            return x

        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            rx, ry = find(x), find(y)
            parent[max(rx, ry)] = min(rx, ry)
        assert components(a, b, n).tolist() == [find(x) for x in range(n)]


def test_rows_of_exact_and_near_members():
    pairs = _pairs(
        [
            ("b", "c", BY_CSV_MD5, None, None),
            ("c", "d", BY_BYTES, 0b1, 0b1),
            ("d", "e", BY_PHASH, 0b1, 0b111),  # 2 bits
            ("e", "f", BY_PHASH, 0b111, 0b1111),  # 1 bit
            ("x", "y", BY_PHASH, 0, 0),
        ]
    )
    rows = duplicate_rows(pairs)
    assert rows.schema == DUPLICATES
    got = {
        r["ImageID"]: (
            r["group"],
            r["kind"],
            r["evidence"],
            r["distance"],
            r["nearest"],
        )
        for r in rows.to_pylist()
    }
    assert got == {
        "b": ("b", EXACT, BY_CSV_MD5, 0, "c"),
        "c": ("b", EXACT, BY_CSV_MD5, 0, "b"),  # csv_md5 before bytes
        "d": ("b", EXACT, BY_BYTES, 0, "c"),
        "e": ("b", NEAR, BY_PHASH, 1, "f"),  # f is closer than d
        "f": ("b", NEAR, BY_PHASH, 1, "e"),
        "x": ("x", NEAR, BY_PHASH, 0, "y"),
        "y": ("x", NEAR, BY_PHASH, 0, "x"),
    }
    assert rows["ImageID"].to_pylist() == sorted(got)


def test_a_near_member_finds_its_nearest_among_the_whole_group():
    # a-b and b-c are pairs; a and c are closer to each other than to b
    pairs = _pairs([("a", "b", BY_PHASH, 0b0, 0b111), ("b", "c", BY_PHASH, 0b111, 0b1)])
    got = {
        r["ImageID"]: (r["nearest"], r["distance"])
        for r in duplicate_rows(pairs).to_pylist()
    }
    assert got == {"a": ("c", 1), "b": ("c", 2), "c": ("a", 1)}


def test_ties_go_to_the_smallest_image_id_and_repeats_count_once():
    pairs = _pairs(
        [
            ("a", "c", BY_PHASH, 0b0, 0b1),
            ("b", "c", BY_PHASH, 0b10, 0b1),
            ("a", "c", BY_PHASH, 0b0, 0b1),
        ]
    )
    rows = duplicate_rows(pairs).to_pylist()
    assert len(rows) == 3
    assert {r["ImageID"]: r["nearest"] for r in rows}["c"] == "a"


def test_subsets_are_kept_and_no_pairs_give_an_empty_table():
    rows = duplicate_rows(_pairs([("v1", "t1", BY_CSV_MD5, None, None)])).to_pylist()
    assert {r["ImageID"]: r["subset"] for r in rows} == {
        "v1": "validation",
        "t1": "train",
    }
    assert duplicate_rows(concat_pairs([])).equals(DUPLICATES.empty_table())
