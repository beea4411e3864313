"""FindDuplicates on a TestPipeline: images tables in, one duplicates table out."""

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing.util import assert_that, equal_to

from oibeam.schemas.duplicates import BY_BYTES, BY_CSV_MD5, BY_PHASH, DUPLICATES
from oibeam.schemas.elements import WrittenFile
from oibeam.transforms.dedup.find_duplicates import FindDuplicates
from oibeam.transforms.dedup.keys import duplicate_keys
from oibeam.transforms.dedup.written_images import ReadWrittenImages

from support.runs import local_pipeline


def _id(i: int) -> str:
    return f"{i:016x}"


def _release(rows) -> pa.Table:
    """rows: (i, subset, OriginalMD5): an images table before a fetch."""
    ids, subsets, md5s = zip(*rows, strict=True)
    return pa.table(
        {
            "ImageID": [_id(i) for i in ids],
            "Subset": list(subsets),
            "OriginalMD5": list(md5s),
            "Title": ["t"] * len(ids),
        }
    )


def _fetched(rows) -> pa.Table:
    """rows: (i, OriginalMD5, status, md5, phash): an images table after."""
    ids, csv, status, md5, phash = zip(*rows, strict=True)
    return pa.table(
        {
            "ImageID": [_id(i) for i in ids],
            "Subset": ["train"] * len(ids),
            "OriginalMD5": list(csv),
            "status": list(status),
            "md5": list(md5),
            "phash": pa.array(phash, pa.int64()),
        }
    )


def _rows(tables: list[pa.Table]) -> list[tuple]:
    assert len(tables) == 1 and tables[0].schema == DUPLICATES
    return [
        (r["group"], r["ImageID"], r["subset"], r["kind"], r["evidence"], r["nearest"])
        for r in tables[0].to_pylist()
    ]


def test_the_release_alone_gives_exact_duplicates_by_original_md5():
    parts = [
        _release([(1, "train", "A"), (2, "train", "B"), (3, "validation", "A")]),
        _release([(4, "test", "A"), (5, "train", "C")]),
        _release([(6, "train", "B")]),
    ]
    with local_pipeline() as p:
        found = p | beam.Create(parts) | FindDuplicates(None, buckets=4)
        rows = found | beam.combiners.ToList() | beam.Map(_rows)
        assert_that(
            rows,
            equal_to(
                [
                    [
                        (_id(1), _id(1), "train", "exact", BY_CSV_MD5, _id(3)),
                        (_id(1), _id(3), "validation", "exact", BY_CSV_MD5, _id(1)),
                        (_id(1), _id(4), "test", "exact", BY_CSV_MD5, _id(1)),
                        (_id(2), _id(2), "train", "exact", BY_CSV_MD5, _id(6)),
                        (_id(2), _id(6), "train", "exact", BY_CSV_MD5, _id(2)),
                    ]
                ]
            ),
        )


def test_after_a_fetch_bytes_and_hashes_count_and_failures_only_by_csv():
    parts = [
        _fetched(
            [
                (1, "A", "ok", "A", 0b0),
                (2, "B", "ok", "A", 0b1),  # a thumbnail: the same bytes as 1
                (3, "C", "ok", "C", 0b1111),  # 4 bits from 1
                (4, "D", "gone", None, None),
            ]
        ),
        _fetched(
            [
                (5, "D", "ok", "D", -1),  # same OriginalMD5 as 4, which failed
                (6, "E", "ok", "E", 0x0F0F0F0F00000000),  # 16+ bits from all
                (7, "F", "changed", "F", 0b0),  # not ok: its hash is not used
            ]
        ),
    ]
    with local_pipeline() as p:
        found = p | beam.Create(parts) | FindDuplicates(6, buckets=3)
        rows = found | beam.combiners.ToList() | beam.Map(_rows)
        assert_that(
            rows,
            equal_to(
                [
                    [
                        (_id(1), _id(1), "train", "exact", BY_BYTES, _id(2)),
                        (_id(1), _id(2), "train", "exact", BY_BYTES, _id(1)),
                        (_id(1), _id(3), "train", "near", BY_PHASH, _id(2)),
                        (_id(4), _id(4), "train", "exact", BY_CSV_MD5, _id(5)),
                        (_id(4), _id(5), "train", "exact", BY_CSV_MD5, _id(4)),
                    ]
                ]
            ),
        )


def test_no_duplicates_give_one_empty_table():
    with local_pipeline() as p:
        found = p | beam.Create([_release([(1, "train", "A")])]) | FindDuplicates(6)
        assert_that(
            found | beam.Map(lambda t: (t.num_rows, t.schema == DUPLICATES)),
            equal_to([(0, True)]),
        )


def test_keys_take_bytes_and_hashes_of_ok_images_only():
    keys = duplicate_keys(
        _fetched([(1, "A", "ok", "A", 5), (2, "B", "changed", "X", 6)])
    )
    assert keys.to_pylist() == [
        {"ImageID": _id(1), "subset": "train", "csv_md5": "A", "md5": "A", "phash": 5},
        {
            "ImageID": _id(2),
            "subset": "train",
            "csv_md5": "B",
            "md5": None,
            "phash": None,
        },
    ]


def test_images_parts_a_run_wrote_are_read_back(tmp_path):
    path = tmp_path / "part-00000.parquet"
    pq.write_table(_fetched([(1, "A", "ok", "A", 5)]), path)
    other = tmp_path / "index.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    written = [
        WrittenFile("images", str(path), 1, 0, ""),
        WrittenFile("shard_index", str(other), 1, 0, ""),
    ]
    with local_pipeline() as p:
        read = p | beam.Create(written) | ReadWrittenImages()
        assert_that(
            read | beam.Map(lambda t: t.column_names),
            equal_to([["ImageID", "Subset", "OriginalMD5", "status", "md5", "phash"]]),
        )
