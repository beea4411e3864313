"""ShareShards: rows for images whose bytes stay in pooled shards."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to

from oibeam.schemas import snapshot as contract
from oibeam.schemas.elements import SELECTED, STATUS, Count, WrittenFile
from oibeam.schemas.fetch import SHARD_INDEX, STATUS_FIELDS
from oibeam.schemas.tables import images_schema, images_with_status_schema
from oibeam.transforms.fetch.image_tasks import INTERNAL_FIELDS, PLAN, PREVIOUS
from oibeam.transforms.refresh.share_shards import ShareShards

A = "pool/s1/images-00000-of-00002.tar"
B = "pool/s1/images-00001-of-00002.tar"
UNUSED = "pool/s0/images-00000-of-00001.tar"
POOLED = {A: (10240, "crc32c:0000000a"), B: (20480, "crc32c:0000000b")}


def _tasks(rows: list[tuple[int, str, int]]) -> pa.Table:
    """Shared tasks: rows of (n, previous shard, previous offset)."""
    n = len(rows)
    columns = {f.name: pa.nulls(n, f.type) for f in images_schema(())}
    columns["ImageID"] = pa.array([f"{i:016x}" for i, _, _ in rows])
    columns["Subset"] = pa.array(["train"] * n)
    table = pa.table(columns, schema=images_schema(()))
    previous = {
        PLAN: ["share"] * n,
        PREVIOUS + "member": [f"{i:016x}.jpg" for i, _, _ in rows],
        PREVIOUS + "json_member": [f"{i:016x}.json" for i, _, _ in rows],
        PREVIOUS + "json_offset": [o + 1024 for _, _, o in rows],
        PREVIOUS + "json_size": [90] * n,
        "_prev_offset": [o for _, _, o in rows],
        "_prev_size": [700 + i for i, _, _ in rows],
        PREVIOUS + "status": ["ok"] * n,
        PREVIOUS + "retryable": [False] * n,
        PREVIOUS + "attempts": [3] * n,  # what the earlier run spent
        PREVIOUS + "elapsed_ms": [250] * n,
        PREVIOUS + "bytes": [700 + i for i, _, _ in rows],
        PREVIOUS + "checked": ["size+md5"] * n,
        PREVIOUS + "format": ["JPEG"] * n,
        PREVIOUS + "width": [40] * n,
        PREVIOUS + "height": [30] * n,
        PREVIOUS + "shard": [s for _, s, _ in rows],
    }
    for f in INTERNAL_FIELDS:
        values = previous.get(f.name)
        table = table.append_column(
            f, pa.array(values, f.type) if values else pa.nulls(n, f.type)
        )
    return table


def _share(tmp_path, buckets: int) -> ShareShards:
    """ShareShards for snapshot ROOT/s2 under tmp_path, parts in images/ and
    index/, with POOLED as the previous manifest's pooled shards."""
    return ShareShards(
        str(tmp_path / "root" / "s2"),
        str(tmp_path / "images"),
        str(tmp_path / "index"),
        images_with_status_schema(()),
        "zstd",
        POOLED,
        buckets,
    )


def test_shared_rows_point_at_the_same_bytes(tmp_path):
    shared = [(0, _tasks([(1, A, 0), (2, B, 2048)])), (1, _tasks([(3, A, 4096)]))]
    dead = [
        (0, pa.table({"ImageID": ["0000000000000009"], "shard": [A]})),
        (1, pa.table({"ImageID": ["0000000000000008"], "shard": [UNUSED]})),
    ]
    root = tmp_path / "root"
    with beam.Pipeline() as p:
        out = {
            "carried": p | "Carried" >> beam.Create(shared),
            "dead": p | "Dead" >> beam.Create(dead),
        } | _share(tmp_path, 2)
        listed = out["written"] | beam.Filter(lambda w: w.table == "shards")
        assert_that(
            listed,
            equal_to(
                [
                    WrittenFile("shards", f"{root}/{A}", 2, *POOLED[A]),
                    WrittenFile("shards", f"{root}/{B}", 1, *POOLED[B]),
                ]
            ),
            label="ListedShards",
        )
        assert_that(
            out["counts"],
            equal_to(
                [
                    Count(SELECTED, "", 2),
                    Count(STATUS, "ok", 2),
                    Count(SELECTED, "", 1),
                    Count(STATUS, "ok", 1),
                ]
            ),
            label="Counts",
        )
        deleted = out["deleted"] | beam.MapTuple(lambda b, t: (b, t.to_pylist()))
        assert_that(  # only the rows of shards this snapshot uses
            deleted,
            equal_to([(0, [{"ImageID": "0000000000000009", "shard": A}])]),
            label="Deleted",
        )
    index = pq.read_table(tmp_path / "index" / "carried-00000-of-00002.parquet")
    assert index.schema.equals(SHARD_INDEX)
    assert index.to_pylist() == [
        {
            "ImageID": "0000000000000001",
            "shard": A,
            "member": "0000000000000001.jpg",
            "offset": 0,
            "size": 701,
            "json_member": "0000000000000001.json",
            "json_offset": 1024,
            "json_size": 90,
        },
        {
            "ImageID": "0000000000000002",
            "shard": B,
            "member": "0000000000000002.jpg",
            "offset": 2048,
            "size": 702,
            "json_member": "0000000000000002.json",
            "json_offset": 3072,
            "json_size": 90,
        },
    ]
    images = pq.read_table(tmp_path / "images" / "carried-00001-of-00002.parquet")
    assert images.schema.names == images_with_status_schema(()).names
    (row,) = images.to_pylist()
    assert (row["ImageID"], row["status"], row["shard"]) == (
        "0000000000000003",
        "ok",
        A,
    )
    assert row["attempts"] == 3  # of the fetch that got the bytes, kept
    assert (row["width"], row["height"], row["bytes"]) == (40, 30, 703)
    assert {f.name for f in STATUS_FIELDS} <= set(images.column_names)
    assert contract.DELETED.names == ["ImageID", "shard"]


def test_a_kept_failure_gets_its_row_and_no_index_row(tmp_path):
    tasks = _tasks([(1, A, 0), (2, A, 2048)])
    gone = {
        PLAN: "keep",
        PREVIOUS + "status": "gone",
        PREVIOUS + "shard": None,
        PREVIOUS + "bytes": None,  # an older snapshot might not say
    }
    for name, value in gone.items():
        where = tasks.schema.get_field_index(name)
        column = tasks[name].to_pylist()
        column[1] = value
        tasks = tasks.set_column(
            where, tasks.field(where), pa.array(column, tasks.field(where).type)
        )
    with beam.Pipeline() as p:
        out = {
            "carried": p | "Carried" >> beam.Create([(0, tasks)]),
            "dead": p | "Dead" >> beam.Create([]),
        } | _share(tmp_path, 1)
        listed = out["written"] | beam.Filter(lambda w: w.table == "shards")
        assert_that(
            listed,
            equal_to([WrittenFile("shards", f"{tmp_path}/root/{A}", 1, *POOLED[A])]),
        )
    index = pq.read_table(tmp_path / "index" / "carried-00000-of-00001.parquet")
    assert index["ImageID"].to_pylist() == ["0000000000000001"]
    images = pq.read_table(tmp_path / "images" / "carried-00000-of-00001.parquet")
    rows = {r["ImageID"]: r for r in images.to_pylist()}
    assert rows["0000000000000002"]["status"] == "gone"
    assert rows["0000000000000002"]["shard"] is None
    assert rows["0000000000000002"]["bytes"] == 0


def test_a_shard_the_previous_manifest_does_not_list_stops_the_run(tmp_path):
    shared = [(0, _tasks([(1, UNUSED, 0)]))]
    with pytest.raises(Exception, match="manifest does not list"):
        with beam.Pipeline() as p:
            _ = {
                "carried": p | "Carried" >> beam.Create(shared),
                "dead": p | "Dead" >> beam.Create([]),
            } | _share(tmp_path, 2)
