"""Pairs of duplicates -> groups -> one `duplicates` row per member (no Beam
here).

Groups are the connected components of the pairs (union-find over the
images that have a duplicate, vectorised: hooking and pointer jumping). A
member is `exact` when an exact pair (csv_md5, then bytes) touches it, and
its nearest is its smallest exact partner at distance 0; otherwise it is
`near`, and its nearest is the member of its group with the closest
perceptual hash (ties: the smallest ImageID), searched among the whole group
up to GROUP_SEARCH members, among its own pairs beyond that.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.duplicates import (
    BY_BYTES,
    BY_CSV_MD5,
    BY_PHASH,
    DUPLICATES,
    EXACT,
    NEAR,
    PAIRS,
)
from oibeam.transforms.dedup.pairs import popcount

GROUP_SEARCH = 4096  # group size up to which a near member's nearest is exact
_RANK = {BY_CSV_MD5: 0, BY_BYTES: 1, BY_PHASH: 2}  # which evidence a row shows


def components(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """The root (smallest member index) of each of n members' component,
    given edges a[k]-b[k]: each edge hooks the larger of its two roots to the
    smaller, then every member jumps to its root, until no edge joins two
    roots (vectorised: millions of pairs take seconds, a star one round)."""
    label = np.arange(n, dtype=np.int64)
    while True:
        la, lb = label[a], label[b]
        low = np.minimum(la, lb)
        if np.array_equal(la, lb):
            return label
        np.minimum.at(label, la, low)
        np.minimum.at(label, lb, low)
        while not np.array_equal(jumped := label[label], label):
            label = jumped


def duplicate_rows(pairs: pa.Table) -> pa.Table:
    """PAIRS (in any order, repeats allowed) -> DUPLICATES, sorted by group
    and ImageID."""
    if not pairs.num_rows:
        return DUPLICATES.empty_table()
    # members: every ImageID of a pair, with its subset and hash
    ends = pa.concat_tables(
        [
            pa.table(
                {
                    "ImageID": pairs[side],
                    "subset": pairs[f"{side}_subset"],
                    "phash": pairs[f"{side}_phash"],
                }
            )
            for side in ("a", "b")
        ]
    )
    first = ends.group_by("ImageID", use_threads=False).aggregate(
        [("subset", "first"), ("phash", "first")]
    )
    members = first.sort_by("ImageID")
    ids = members["ImageID"]
    n = members.num_rows
    a = np.asarray(pc.index_in(pairs["a"], value_set=ids).to_numpy())
    b = np.asarray(pc.index_in(pairs["b"], value_set=ids).to_numpy())
    root = components(a, b, n)  # members sorted by ImageID: root = group's first
    rank = np.asarray(
        pc.index_in(pairs["evidence"], value_set=pa.array(list(_RANK))).to_numpy(),
        dtype=np.int8,
    )

    # evidence: the best pair touching each member
    best = np.full(n, 2, dtype=np.int8)
    np.minimum.at(best, a, rank)
    np.minimum.at(best, b, rank)
    exact = best < _RANK[BY_PHASH]

    # nearest exact partner: the smallest index among exact pairs' other ends
    nearest = np.full(n, n, dtype=np.int64)
    is_exact_pair = rank < _RANK[BY_PHASH]
    np.minimum.at(nearest, a[is_exact_pair], b[is_exact_pair])
    np.minimum.at(nearest, b[is_exact_pair], a[is_exact_pair])
    distance = np.zeros(n, dtype=np.int64)
    # a near member's pair partner, until a closer hash is found (always is)
    partner = np.full(n, n, dtype=np.int64)
    np.minimum.at(partner, a[~is_exact_pair], b[~is_exact_pair])
    np.minimum.at(partner, b[~is_exact_pair], a[~is_exact_pair])
    nearest[~exact] = partner[~exact]
    known = np.asarray(
        pc.is_valid(members["phash_first"]).to_numpy(zero_copy_only=False)
    )
    hashes = np.asarray(pc.fill_null(members["phash_first"], 0).to_numpy()).view(
        np.uint64
    )
    near_members = np.flatnonzero(~exact)
    if len(near_members):
        _nearest_by_hash(near_members, root, hashes, known, a, b, nearest, distance)

    evidence = np.array([BY_CSV_MD5, BY_BYTES, BY_PHASH], dtype=object)[best]
    kind = np.where(exact, EXACT, NEAR).astype(object)
    return pa.table(
        [
            ids.take(pa.array(root)),
            ids,
            pc.fill_null(members["subset_first"], ""),
            pa.array(kind, pa.string()),
            pa.array(evidence, pa.string()),
            pa.array(distance.astype(np.int32), pa.int32()),
            ids.take(pa.array(nearest)),
        ],
        schema=DUPLICATES,
    ).sort_by([("group", "ascending"), ("ImageID", "ascending")])


def _nearest_by_hash(members, root, hashes, known, a, b, nearest, distance) -> None:
    """Fills nearest and distance of near `members` (indices sorted by
    ImageID) from the hashes of the other members of their group."""
    order = np.argsort(root, kind="stable")
    starts = np.searchsorted(root[order], root[members], side="left")
    ends = np.searchsorted(root[order], root[members], side="right")
    for m, start, end in zip(
        members.tolist(), starts.tolist(), ends.tolist(), strict=True
    ):
        if end - start <= GROUP_SEARCH:
            others = order[start:end]
        else:  # a huge group: the member's own pairs
            others = np.concatenate([b[a == m], a[b == m]])
        others = others[(others != m) & known[others]]
        if not len(others) or not known[m]:
            continue  # no hash to compare: left at its pair (see below)
        bits = popcount(hashes[others] ^ hashes[m])
        # smallest distance, then smallest index (= ImageID)
        pick = np.lexsort((others, bits))[0]
        nearest[m], distance[m] = others[pick], bits[pick]


def concat_pairs(tables: list[pa.Table]) -> pa.Table:
    """Pair tables from every bucket as one (none: an empty PAIRS)."""
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables) if tables else PAIRS.empty_table()
