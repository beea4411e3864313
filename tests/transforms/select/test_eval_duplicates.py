"""DropEvalDuplicates: train images duplicating a validation or test image, by
OriginalMD5 and by a duplicates table, dropped and counted."""

import apache_beam as beam
import pyarrow as pa
from apache_beam.testing.util import assert_that, equal_to

from oibeam.schemas.duplicates import DUPLICATES
from oibeam.schemas.elements import DROPPED, Count
from oibeam.transforms.select.eval_duplicates import (
    DistinctMd5sFn,
    DropEvalDuplicates,
)
from oibeam.transforms.select.leakage import (
    BY_MD5,
    LISTED,
    drop_reasons,
    eval_md5s,
    listed_train_ids,
)

from support.runs import local_pipeline


def _images(rows) -> pa.Table:
    """rows: (ImageID, Subset, OriginalMD5)"""
    return pa.table(
        {
            "ImageID": pa.array([r[0] for r in rows], pa.string()),
            "Subset": pa.array([r[1] for r in rows], pa.string()),
            "OriginalMD5": pa.array([r[2] for r in rows], pa.string()),
        }
    )


BUCKET_A = _images(
    [
        ("000000000000000a", "train", "md5-A"),  # = validation 0c
        ("000000000000000b", "train", "md5-B"),  # listed with test 0e
        ("000000000000000c", "validation", "md5-A"),
        ("000000000000000d", "train", None),
    ]
)
BUCKET_B = _images(
    [
        ("0000000000000010", "train", "md5-E"),  # = test 0e, in another bucket
        ("000000000000000e", "test", "md5-E"),
        ("0000000000000011", "validation", ""),
        ("0000000000000012", "train", ""),  # an empty MD5 matches nothing
        ("0000000000000013", "validation", "md5-A"),  # eval duplicates stay
    ]
)


def _duplicates(rows) -> pa.Table:
    """rows: (group, ImageID, subset, kind)"""
    return pa.table(
        {
            "group": [r[0] for r in rows],
            "ImageID": [r[1] for r in rows],
            "subset": [r[2] for r in rows],
            "kind": [r[3] for r in rows],
            "evidence": ["phash" if r[3] == "near" else "bytes" for r in rows],
            "distance": [3 if r[3] == "near" else 0 for r in rows],
            "nearest": [rows[0][1] if r is not rows[0] else rows[1][1] for r in rows],
        },
        schema=DUPLICATES,
    )


TABLE = pa.concat_tables(
    [
        _duplicates(
            [
                ("000000000000000b", "000000000000000b", "train", "near"),
                ("000000000000000b", "000000000000000e", "test", "near"),
                ("000000000000000b", "0000000000000014", "train", "near"),
            ]
        ),
        _duplicates(  # train only: nothing leaks
            [
                ("0000000000000015", "0000000000000015", "train", "exact"),
                ("0000000000000015", "0000000000000016", "train", "exact"),
            ]
        ),
    ]
)


def test_eval_md5s_are_distinct_and_of_eval_rows_only():
    assert sorted(eval_md5s(BUCKET_A)["OriginalMD5"].to_pylist()) == ["md5-A"]
    assert sorted(eval_md5s(BUCKET_B)["OriginalMD5"].to_pylist()) == [
        "md5-A",
        "md5-E",
    ]


def test_distinct_md5s_three_ways():
    fn = DistinctMd5sFn()
    tables = [eval_md5s(BUCKET_A), eval_md5s(BUCKET_B), eval_md5s(BUCKET_A)]
    sequential = fn.create_accumulator()
    for t in tables:
        sequential = fn.add_input(sequential, t)
    parts = [fn.add_input(fn.create_accumulator(), t) for t in tables]
    merged = fn.merge_accumulators(parts)
    compacted = fn.compact(fn.merge_accumulators([merged, fn.create_accumulator()]))
    for accumulator in (sequential, merged, compacted):
        assert fn.extract_output(accumulator).to_pylist() == ["md5-A", "md5-E"]


def test_listed_train_ids_are_train_members_of_groups_with_eval_images():
    assert sorted(listed_train_ids(TABLE).to_pylist()) == [
        "000000000000000b",
        "0000000000000014",
    ]
    assert len(listed_train_ids(DUPLICATES.empty_table())) == 0


def test_drop_reasons_md5_first_then_listed():
    md5s = pa.array(["md5-A", "md5-E"])
    listed = pa.array(["000000000000000a", "000000000000000b"])
    keep, dropped = drop_reasons(BUCKET_A, md5s, listed)
    # 0a matches both: counted once, by its MD5
    assert keep.tolist() == [False, False, True, True]
    assert dropped == {BY_MD5: 1, LISTED: 1}
    keep, dropped = drop_reasons(BUCKET_B, md5s, pa.array([], pa.string()))
    assert keep.tolist() == [False, True, True, True, True]
    assert dropped == {BY_MD5: 1, LISTED: 0}


def test_drop_eval_duplicates_on_a_pipeline():
    listed = listed_train_ids(TABLE)
    with local_pipeline() as p:
        out = (
            p | beam.Create([(0, BUCKET_A), (1, BUCKET_B)]) | DropEvalDuplicates(listed)
        )
        ids = out["images"] | beam.FlatMap(lambda e: e[1]["ImageID"].to_pylist())
        assert_that(
            ids,
            equal_to(
                [
                    "000000000000000c",
                    "000000000000000d",
                    "000000000000000e",
                    "0000000000000011",
                    "0000000000000012",
                    "0000000000000013",
                ]
            ),
            label="kept",
        )
        totals = (
            out["counts"]
            | beam.Map(lambda c: (c.value, c.n))
            | (beam.CombinePerKey(sum))
        )
        assert_that(totals, equal_to([(BY_MD5, 2), (LISTED, 1)]), label="counts")
        gone = out["dropped"] | beam.FlatMap(
            lambda e: [(e[0], i) for i in e[1]["ImageID"].to_pylist()]
        )
        assert_that(
            gone,
            equal_to(
                [
                    (0, "000000000000000a"),
                    (0, "000000000000000b"),
                    (1, "0000000000000010"),
                ]
            ),
            label="dropped",
        )
        kinds = out["counts"] | beam.Map(lambda c: c.kind) | beam.Distinct()
        assert_that(kinds, equal_to([DROPPED]), label="kind")


def test_nothing_to_drop_without_eval_images(caplog):
    train = _images([("000000000000000a", "train", "md5-A")])
    with caplog.at_level("INFO"):
        with local_pipeline() as p:
            out = p | beam.Create([(0, train)]) | DropEvalDuplicates()
            ids = out["images"] | beam.FlatMap(lambda e: e[1]["ImageID"].to_pylist())
            assert_that(ids, equal_to(["000000000000000a"]), label="kept")
            assert_that(
                out["counts"],
                equal_to([Count(DROPPED, BY_MD5, 0), Count(DROPPED, LISTED, 0)]),
                label="counts",
            )
    assert "no validation or test image" in caplog.text
