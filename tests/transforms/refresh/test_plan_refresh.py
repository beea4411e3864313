"""Refresh planning (pure Arrow): what happens to each image, and why.

Every row of the decision table in transforms/refresh/plan_refresh.py is
exercised on one bucket, and the words it writes must all be in the documented
vocabularies.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from oibeam.schemas import snapshot as contract
from oibeam.schemas.elements import Count
from oibeam.transforms.fetch.image_tasks import (
    PLAN,
    PREV_OFFSET,
    PREV_SIZE,
    PREV_TAR,
    PREVIOUS,
)
from oibeam.transforms.refresh.plan_refresh import RefreshRules, plan_refresh
from oibeam.transforms.refresh.same_values import same_values

LABEL = pa.struct([("LabelName", pa.string()), ("Confidence", pa.float32())])


def _id(n: int) -> str:
    return f"{n:016x}"


def _current(rows: list[tuple[int, str, int, list]]) -> pa.Table:
    """rows of (n, OriginalMD5, OriginalSize, labels)."""
    return pa.table(
        {
            "ImageID": [_id(n) for n, *_ in rows],
            "OriginalMD5": [md5 for _, md5, _, _ in rows],
            "OriginalSize": pa.array([size for *_, size, _ in rows], pa.int64()),
            "labels": pa.array([labels for *_, labels in rows], pa.list_(LABEL)),
        }
    )


POOLED = "pool/s0/images-00000-of-00001.tar"


def _previous(
    rows: list[tuple[int, str, int, list, str, bool, bool | str]],
) -> pa.Table:
    """rows of (n, md5, size, labels, status, retryable, has bytes in a shard:
    True in its own shards/, "pool" in a pooled shard)."""
    table = _current([r[:4] for r in rows])
    have = [r[6] for r in rows]
    return (
        table.append_column("status", pa.array([r[4] for r in rows]))
        .append_column("retryable", pa.array([r[5] for r in rows]))
        .append_column(
            "shard",
            pa.array(
                [
                    POOLED
                    if h == "pool"
                    else "images-00000-of-00001.tar"
                    if h
                    else None
                    for h in have
                ]
            ),
        )
        .append_column(PREV_TAR, pa.array(["/prev/s.tar" if h else None for h in have]))
        .append_column(
            PREV_OFFSET, pa.array([512 * i if h else None for i, h in enumerate(have)])
        )
        .append_column(PREV_SIZE, pa.array([10 if h else None for h in have]))
    )


CAT = [{"LabelName": "/m/cat", "Confidence": 1.0}]
DOG = [{"LabelName": "/m/dog", "Confidence": 0.7}]


def _by_id(plan) -> dict[str, dict]:
    diff = {row["ImageID"]: row for row in plan.diff.to_pylist()}
    for row in plan.tasks.to_pylist():
        diff[row["ImageID"]]["plan"] = row[PLAN]
        diff[row["ImageID"]]["task"] = row
    return diff


def test_without_a_previous_snapshot_everything_is_added_and_fetched():
    plan = plan_refresh(
        _current([(2, "b", 2, CAT), (1, "a", 1, [])]), None, None, RefreshRules()
    )
    assert plan.tasks["ImageID"].to_pylist() == [_id(1), _id(2)]  # sorted
    assert set(plan.tasks[PLAN].to_pylist()) == {"fetch"}
    assert plan.diff.column("change").to_pylist() == ["added", "added"]
    assert plan.diff.column("reason").to_pylist() == ["new", "new"]
    assert plan.counts() == [Count("change", "added", 2), Count("action", "fetch", 2)]


def test_every_decision_of_the_table():
    current = _current(
        [
            (1, "a", 1, CAT),  # ok, unchanged             -> copy
            (2, "b", 2, DOG),  # ok, labels changed        -> copy, changed
            (3, "NEW", 3, CAT),  # ok, bytes changed       -> fetch, changed
            (4, "d", 4, CAT),  # ok, but no bytes          -> fetch
            (5, "e", 5, CAT),  # timeout (retryable)       -> fetch
            (6, "f", 6, CAT),  # gone (final)              -> keep
            (7, "g", 7, CAT),  # not in the previous one   -> fetch, added
        ]
    )
    previous = _previous(
        [
            (1, "a", 1, CAT, "ok", False, True),
            (2, "b", 2, CAT, "ok", False, True),
            (3, "c", 3, CAT, "ok", False, True),
            (4, "d", 4, CAT, "ok", False, False),
            (5, "e", 5, CAT, "timeout", True, False),
            (6, "f", 6, CAT, "gone", False, False),
            (8, "h", 8, CAT, "ok", False, True),  # no longer selected
            (9, "i", 9, CAT, "ok", False, True),  # no longer in the release
        ]
    )
    release = pa.array([_id(n) for n in range(1, 9)])
    rows = _by_id(plan_refresh(current, previous, release, RefreshRules()))

    def decision(n):
        row = rows[_id(n)]
        return row.get("plan"), row["change"], row["action"], row["reason"]

    assert decision(1) == ("copy", "carried", "copy", "unchanged")
    assert decision(2) == ("copy", "changed", "copy", "metadata_changed")
    assert rows[_id(2)]["changed_columns"] == ["labels"]
    assert decision(3) == ("fetch", "changed", "fetch", "bytes_changed")
    assert decision(4) == ("fetch", "refetched", "fetch", "bytes_missing")
    assert decision(5) == ("fetch", "refetched", "fetch", "retryable_failure")
    assert decision(6) == ("keep", "carried", "keep", "final_failure")
    assert decision(7) == ("fetch", "added", "fetch", "new")
    assert decision(8) == (None, "removed", "drop", "not_selected")
    assert decision(9) == (None, "removed", "drop", "not_in_release")
    assert rows[_id(1)]["previous_status"] == "ok"
    assert rows[_id(9)]["previous_shard"] == "images-00000-of-00001.tar"
    # Copies know where the old bytes are; a kept failure keeps its status.
    assert rows[_id(1)]["task"][PREV_TAR] == "/prev/s.tar"
    assert rows[_id(1)]["task"][PREV_OFFSET] == 0
    assert rows[_id(6)]["task"][PREVIOUS + "status"] == "gone"
    assert rows[_id(7)]["task"][PREVIOUS + "status"] is None


def test_retry_all_and_changed_options():
    current = _current([(1, "a", 1, CAT), (6, "f", 6, CAT)])
    previous = _previous(
        [(1, "a", 1, CAT, "ok", False, True), (6, "f", 6, CAT, "gone", False, False)]
    )
    retry = _by_id(plan_refresh(current, previous, None, RefreshRules(retry_all=True)))
    assert retry[_id(1)]["reason"] == "unchanged"  # ok images are never refetched
    assert (retry[_id(6)]["plan"], retry[_id(6)]["reason"]) == ("fetch", "retry_all")
    other = _by_id(
        plan_refresh(current, previous, None, RefreshRules(same_bytes=False))
    )
    assert {r["reason"] for r in other.values()} == {"options_changed"}
    assert {r["change"] for r in other.values()} == {"refetched"}


def test_only_documented_words_are_written():
    current = _current([(n, "x", n, CAT) for n in [*range(1, 8), 10]])
    previous = _previous(
        [
            (10, "x", 10, CAT, "ok", False, "pool"),
            (1, "x", 1, CAT, "ok", False, True),
            (2, "y", 2, CAT, "ok", False, True),
            (3, "x", 3, DOG, "ok", False, True),
            (4, "x", 4, CAT, "ok", False, False),
            (5, "x", 5, CAT, "timeout", True, False),
            (6, "x", 6, CAT, "gone", False, False),
            (8, "x", 8, CAT, "ok", False, True),
            (9, "x", 9, CAT, "ok", False, True),
        ]
    )
    release = pa.array([_id(8)])
    diffs = [
        plan_refresh(current, previous, release, rules).diff
        for rules in (
            RefreshRules(),
            RefreshRules(retry_all=True),
            RefreshRules(False, False),
        )
    ]
    # 9, removed, is one --drop-eval-duplicates dropped
    dropped = plan_refresh(
        current, previous, release, RefreshRules(), dropped_ids=pa.array([_id(9)])
    ).diff
    ids, why = dropped["ImageID"].to_pylist(), dropped["reason"].to_pylist()
    assert dict(zip(ids, why, strict=True))[_id(9)] == "eval_duplicate"
    diff = pa.concat_tables(
        [*diffs, dropped, plan_refresh(current, None, None, RefreshRules()).diff]
    )
    assert set(diff["change"].to_pylist()) == set(contract.CHANGES)
    assert set(diff["action"].to_pylist()) == set(contract.ACTIONS)
    assert set(diff["reason"].to_pylist()) == set(contract.REASONS)


def test_a_bucket_with_only_removed_images():
    empty = _current([(1, "a", 1, CAT)]).slice(0, 0)  # typed, as in the pipeline
    previous = _previous([(1, "a", 1, CAT, "ok", False, True)])
    plan = plan_refresh(empty, previous, pa.array([], pa.string()), RefreshRules())
    assert plan.tasks.num_rows == 0
    assert plan.diff.to_pylist()[0]["reason"] == "not_in_release"


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (pa.array([1, None, 3, None]), pa.array([1, 2, None, None]), [1, 0, 0, 1]),
        (pa.array(["a", "b"]), pa.array(["a", "c"]), [1, 0]),
        (pa.array([1, 2], pa.int64()), pa.array([1, 3], pa.int32()), [1, 0]),  # cast
        (
            pa.array([[1, 2], [], None, [1], [3, 4]]),
            pa.array([[1, 2], [], [], None, [3, 5]]),
            [1, 1, 0, 0, 0],
        ),
        (
            pa.array([CAT, DOG, CAT + DOG, None], pa.list_(LABEL)),
            pa.array([CAT, CAT, CAT + DOG, None], pa.list_(LABEL)),
            [1, 0, 1, 1],
        ),
        (
            pa.array([{"x": 1, "y": None}, {"x": 1, "y": "a"}, None]),
            pa.array([{"x": 1, "y": None}, {"x": 1, "y": "b"}, None]),
            [1, 0, 1],
        ),
        (pa.array(["1", None]), pa.array([[1], None]), [0, 1]),  # no cast: nulls only
    ],
)
def test_same_values(a, b, expected):
    assert same_values(a, b).tolist() == [bool(e) for e in expected]
    assert same_values(pa.chunked_array([a]), b).tolist() == [bool(e) for e in expected]


def test_same_values_refuses_different_lengths():
    with pytest.raises(ValueError, match="3 rows against 2"):
        same_values(pa.array([1, 2, 3]), pa.array([1, 2]))


def test_pooled_bytes_are_shared_and_own_shards_copied():
    current = _current([(1, "x", 1, CAT), (2, "x", 2, DOG), (3, "x", 3, CAT)])
    previous = _previous(
        [
            (1, "x", 1, CAT, "ok", False, "pool"),
            (2, "x", 2, CAT, "ok", False, "pool"),  # relabelled: still shared
            (3, "x", 3, CAT, "ok", False, True),  # a snapshot from before pools
        ]
    )
    plan = plan_refresh(current, previous, None, RefreshRules())
    actions = {r["ImageID"]: r["action"] for r in plan.diff.to_pylist()}
    assert actions == {_id(1): "share", _id(2): "share", _id(3): "copy"}
    assert plan.carried["ImageID"].to_pylist() == [_id(1), _id(2)]
    assert plan.to_fetch["ImageID"].to_pylist() == [_id(3)]
    assert plan.dead.num_rows == 0
    # Other fetch options: nothing is shared, every pooled copy is dead.
    plan = plan_refresh(current, previous, None, RefreshRules(same_bytes=False))
    assert plan.carried.num_rows == 0
    assert plan.dead.to_pylist() == [
        {"ImageID": _id(1), "shard": POOLED},
        {"ImageID": _id(2), "shard": POOLED},
    ]


def test_dead_rows_name_what_pooled_shards_hold_that_is_not_shared():
    """Removed and refetched images of pooled shards are dead; so is what the
    previous snapshot already listed; images of its own shards never are."""
    current = _current([(1, "new-md5", 1, CAT), (2, "x", 2, CAT), (5, "x", 5, CAT)])
    previous = _previous(
        [
            (1, "x", 1, CAT, "ok", False, "pool"),  # bytes changed: refetched
            (2, "x", 2, CAT, "ok", False, "pool"),  # shared
            (3, "x", 3, CAT, "ok", False, "pool"),  # removed
            (4, "x", 4, CAT, "ok", False, True),  # removed, in its own shard
            (5, "x", 5, CAT, "gone", False, False),  # a failure: no bytes
        ]
    )
    earlier = pa.table(
        {"ImageID": [_id(9)], "shard": ["pool/older/images-00000-of-00001.tar"]},
        schema=contract.DELETED,
    )
    plan = plan_refresh(current, previous, None, RefreshRules(), earlier)
    assert plan.dead.schema.equals(contract.DELETED)
    assert plan.dead.to_pylist() == [  # by shard, then ImageID
        {"ImageID": _id(9), "shard": "pool/older/images-00000-of-00001.tar"},
        {"ImageID": _id(1), "shard": POOLED},
        {"ImageID": _id(3), "shard": POOLED},
    ]
