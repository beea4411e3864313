"""A shard's three outputs (tar, index part, images part) committed in that
order: after an interruption at any point a reader sees only whole files, and a
resumed run reads a shard back only when all three are there with its
fingerprint; otherwise it redoes the shard."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile

import google_crc32c
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oibeam.schemas import fetch as contract
from oibeam.schemas.elements import WrittenFile
from oibeam.schemas.tables import images_with_status_schema
from oibeam.transforms.shard.shard_outputs import (
    FINGERPRINT,
    ShardOutputs,
    ShardPaths,
    fingerprint,
    index_table,
    read_done,
)
from oibeam.transforms.shard.shard_writer import checksum_label

from support.snapshot_release import jpeg

OPTIONS = "original|auto"  # stands in for FetchConfig.outcome_key()
# The images part of these tests: a few images columns and status columns.
SCHEMA = pa.schema(
    [
        pa.field("ImageID", pa.string(), nullable=False),
        pa.field("OriginalMD5", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("shard", pa.string()),
    ]
)


def _id(n: int) -> str:
    return f"{n:016x}"


def _tasks(ids: list[int], seed: int = 0) -> pa.Table:
    """A shard's tasks, in ImageID order, as FetchImages sorts them."""
    ids = sorted(ids)
    return pa.table(
        {
            "ImageID": [_id(n) for n in ids],
            "OriginalURL": [f"http://127.0.0.1/img/{n}.jpg" for n in ids],
            "OriginalMD5": [hashlib.md5(jpeg(n + seed)).hexdigest() for n in ids],
        }
    )


@pytest.fixture
def outputs(tmp_path) -> ShardOutputs:
    return ShardOutputs(
        str(tmp_path / "run" / "shards"),
        str(tmp_path / "run" / "tables" / "images"),
        SCHEMA,
        "zstd",
    )


class _Shard:
    """Writes one shard the way FetchImages does, stopping where told."""

    def __init__(self, outputs: ShardOutputs, shard: int, shards: int) -> None:
        self.outputs = outputs
        self.paths = outputs.paths(shard, shards)

    def images(self, tasks: pa.Table, seed: int = 0) -> dict[str, bytes]:
        """The bytes each task fetches: image n (odd n only: even ones 404)."""
        return {
            row["ImageID"]: jpeg(int(row["ImageID"], 16) + seed)
            for row in tasks.to_pylist()
            if int(row["ImageID"], 16) % 2
        }

    def write(self, tasks: pa.Table, seed: int = 0, stop: str | None = None):
        """Tar, index part, images part; `stop` after "samples" (the tar not
        committed), "tar" or "index" (the images part failed mid-write).
        Returns every WrittenFile committed, as FetchImages reports them."""
        fetched = self.images(tasks, seed)
        writer = self.outputs.open_tar(self.paths)
        index, statuses = [], []
        for row in tasks.to_pylist():
            image_id = row["ImageID"]
            if image_id not in fetched:
                statuses.append(("gone", 0, None))
                continue
            data = fetched[image_id]
            meta = json.dumps({"key": image_id}).encode()
            image, member = writer.add_sample(image_id, "jpg", data, meta)
            shard_name = f"{self.paths.name}.tar"
            index.append(
                (
                    image_id,
                    shard_name,
                    image.name,
                    image.offset,
                    image.size,
                    member.name,
                    member.offset,
                    member.size,
                )
            )
            statuses.append(("ok", len(data), shard_name))
        if stop == "samples":
            return []  # killed while the tar is written
        size, crc = writer.commit()
        tar = WrittenFile("shards", self.paths.tar, writer.samples, size, crc)
        if stop == "tar":
            return [tar]
        images = pa.table(
            {
                "ImageID": tasks["ImageID"],
                "OriginalMD5": tasks["OriginalMD5"],
                "status": [s for s, _, _ in statuses],
                "bytes": pa.array([b for _, b, _ in statuses], pa.int64()),
                "shard": [name for _, _, name in statuses],
            },
            schema=SCHEMA,
        )
        if stop == "index":
            # A column Parquet cannot hold: the images part fails after its
            # temporary file was opened, as a crash mid-write would leave it.
            images = images.append_column(
                "boom",
                pa.UnionArray.from_sparse(
                    pa.array([0] * images.num_rows, pa.int8()),
                    [pa.array([1] * images.num_rows)],
                ),
            )
            with pytest.raises(pa.ArrowNotImplementedError):
                self.outputs.commit_tables(
                    self.paths, images, index, fingerprint(tasks, OPTIONS)
                )
            return [tar]
        written = self.outputs.commit_tables(
            self.paths, images, index, fingerprint(tasks, OPTIONS)
        )
        return [tar, *written]


def _bytes_at(path: str, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


def _visible(directory: str) -> list[str]:
    """What a dataset reader lists: names not starting with '.' or '_'."""
    if not os.path.isdir(directory):
        return []
    return sorted(
        n
        for n in os.listdir(directory)
        if not n.startswith((".", "_")) and os.path.isfile(f"{directory}/{n}")
    )


def test_the_three_outputs_share_the_shard_number():
    paths = ShardPaths(
        3, 12, "gs://b/s1/shards", "gs://b/s1/tables/images", "gs://b/s1/shards"
    )
    assert paths.tar == "gs://b/s1/shards/images-00003-of-00012.tar"
    assert paths.index == "gs://b/s1/shards/index/part-00003-of-00012.parquet"
    assert paths.images == "gs://b/s1/tables/images/part-00003-of-00012.parquet"
    # A previous snapshot's images part finds its index part by this name.
    assert paths.index.rsplit("/", 1)[1] == paths.images.rsplit("/", 1)[1]
    outputs = ShardOutputs("/r/shards", "/r/tables/images", SCHEMA, "zstd")
    assert outputs.paths(3, 12) == ShardPaths(
        3, 12, "/r/shards", "/r/tables/images", "/r/shards"
    )
    assert outputs.paths(3, 12).shard_name == "images-00003-of-00012.tar"


def test_a_snapshot_writes_its_tars_into_the_pool():
    outputs = ShardOutputs(
        "gs://b/r/s1/shards",
        "gs://b/r/s1/tables/images",
        SCHEMA,
        "zstd",
        pool=("gs://b/r/pool/s1", "s1"),
    )
    paths = outputs.paths(3, 12)
    assert paths.tar == "gs://b/r/pool/s1/images-00003-of-00012.tar"
    assert paths.shard_name == "pool/s1/images-00003-of-00012.tar"
    assert paths.index == "gs://b/r/s1/shards/index/part-00003-of-00012.parquet"
    assert paths.images == "gs://b/r/s1/tables/images/part-00003-of-00012.parquet"
    assert outputs.frozen_json


def test_fingerprint_is_what_the_shard_was_asked_to_do():
    tasks = _tasks([5, 1, 3])
    same = fingerprint(tasks, OPTIONS)
    assert len(same) == 32 and int(same, 16) >= 0
    # The same rows in other chunks or with other schema metadata.
    rechunked = pa.concat_tables([tasks.slice(0, 1), tasks.slice(1)])
    assert rechunked["ImageID"].num_chunks == 2
    assert fingerprint(rechunked, OPTIONS) == same
    tagged = tasks.replace_schema_metadata({b"pandas": b"{}"})
    assert fingerprint(tagged, OPTIONS) == same
    assert fingerprint(_tasks([1, 3, 5]), OPTIONS) == same
    # Anything that changes the outcome changes it.
    different = {
        fingerprint(tasks, "thumbnail|auto"),
        fingerprint(_tasks([1, 3]), OPTIONS),
        fingerprint(_tasks([1, 3, 5, 7]), OPTIONS),
        fingerprint(_tasks([1, 3, 5], seed=1), OPTIONS),  # a new OriginalMD5
        fingerprint(tasks.slice(1).append_column("x", pa.array([1, 2])), OPTIONS),
        fingerprint(tasks.take([2, 1, 0]), OPTIONS),  # not in ImageID order
    }
    assert same not in different and len(different) == 6


def test_index_table_has_the_shard_index_schema():
    rows = [
        (_id(1), "images-00000-of-00001.tar", f"{_id(1)}.jpg", 512, 10, "j", 1024, 2),
        (_id(3), "images-00000-of-00001.tar", f"{_id(3)}.png", 2048, 3, "k", 3072, 4),
    ]
    table = index_table(rows)
    assert table.schema.equals(contract.SHARD_INDEX)
    assert [tuple(r.values()) for r in table.to_pylist()] == rows
    empty = index_table([])
    assert empty.num_rows == 0 and empty.schema.equals(contract.SHARD_INDEX)
    with pytest.raises(ValueError):
        index_table([rows[0][:-1]])  # a row short of a column


def test_a_complete_shard_is_read_back_as_written(outputs):
    shard = _Shard(outputs, 2, 4)
    tasks = _tasks([1, 2, 3, 4, 5])
    written = shard.write(tasks)
    assert [w.table for w in written] == ["shards", "shard_index", "images"]

    images_part = pq.read_table(shard.paths.images)
    metadata = images_part.schema.metadata
    assert metadata[FINGERPRINT] == fingerprint(tasks, OPTIONS).encode()

    done = read_done(shard.paths, fingerprint(tasks, OPTIONS))
    assert done is not None
    images, reread = done
    assert reread == written
    assert FINGERPRINT not in (images.schema.metadata or {})
    assert images.equals(images_part.replace_schema_metadata(None))
    assert images["status"].to_pylist() == ["ok", "gone", "ok", "gone", "ok"]

    # Every WrittenFile describes its file's bytes (the tar by its CRC32C).
    for w in reread:
        with open(w.path, "rb") as f:
            data = f.read()
        assert w.bytes == len(data)
        if w.table == "shards":
            assert w.md5 == checksum_label(google_crc32c.value(data))
        else:
            assert w.md5 == hashlib.md5(data).hexdigest()
    assert [w.rows for w in reread] == [3, 3, 5]

    # The index places each image's bytes in the tar.
    expected = shard.images(tasks)
    for row in pq.read_table(shard.paths.index).to_pylist():
        at = _bytes_at(shard.paths.tar, row["offset"], row["size"])
        assert at == expected[row["ImageID"]]
    with tarfile.open(shard.paths.tar) as tar:
        assert sorted(tar.getnames()) == sorted(
            f"{i}.{ext}" for i in expected for ext in ("jpg", "json")
        )


def test_commit_tables_keeps_the_images_metadata_and_adds_the_fingerprint(outputs):
    paths = outputs.paths(0, 1)
    images = pa.table(
        {
            "ImageID": [_id(1)],
            "OriginalMD5": ["m"],
            "status": ["gone"],
            "bytes": pa.array([0], pa.int64()),
            "shard": pa.array([None], pa.string()),
        },
        schema=SCHEMA.with_metadata({b"source": b"test"}),
    )
    written = outputs.commit_tables(paths, images, [], "f" * 32)
    assert [w.rows for w in written] == [0, 1]
    metadata = pq.read_schema(paths.images).metadata
    assert metadata[b"source"] == b"test" and metadata[FINGERPRINT] == b"f" * 32
    assert images.schema.metadata == {b"source": b"test"}  # the input is untouched
    assert pq.read_table(paths.index).num_rows == 0


@pytest.mark.parametrize("stop", ["samples", "tar", "index"])
def test_after_an_interruption_readers_see_whole_files_and_the_shard_is_redone(
    outputs, stop
):
    done_shard = _Shard(outputs, 0, 2)
    done_shard.write(_tasks([11, 13, 14]))
    shard = _Shard(outputs, 1, 2)
    tasks = _tasks([1, 2, 3])
    committed = shard.write(tasks, stop=stop)

    # A reader sees the finished shard and none of the interrupted one's
    # images rows: no completion mark, no half-written file.
    expected = {
        "samples": [],
        "tar": ["images-00001-of-00002.tar"],
        "index": ["images-00001-of-00002.tar"],
    }[stop]
    assert [w.path.rsplit("/", 1)[1] for w in committed] == expected
    assert _visible(outputs.shards_dir) == [
        "images-00000-of-00002.tar",
        *expected,
    ]
    assert _visible(outputs.images_dir) == ["part-00000-of-00002.parquet"]
    index_parts = _visible(f"{outputs.shards_dir}/index")
    assert index_parts == ["part-00000-of-00002.parquet"] + (
        ["part-00001-of-00002.parquet"] if stop == "index" else []
    )
    assert pq.read_table(outputs.images_dir)["ImageID"].to_pylist() == [
        _id(11),
        _id(13),
        _id(14),
    ]
    for name in _visible(outputs.shards_dir):
        with tarfile.open(f"{outputs.shards_dir}/{name}") as tar:
            for member in tar.getmembers():  # whole members only
                assert len(tar.extractfile(member).read()) == member.size

    # A resumed run: the finished shard is read back, this one redone.
    assert read_done(done_shard.paths, fingerprint(_tasks([11, 13, 14]), OPTIONS))
    assert read_done(shard.paths, fingerprint(tasks, OPTIONS)) is None
    rewritten = shard.write(tasks)
    images, reread = read_done(shard.paths, fingerprint(tasks, OPTIONS))
    assert reread == rewritten
    assert images["ImageID"].to_pylist() == [_id(1), _id(2), _id(3)]
    with tarfile.open(shard.paths.tar) as tar:
        assert tar.getnames() == [
            f"{_id(n)}.{e}" for n in (1, 3) for e in ("jpg", "json")
        ]
    assert _visible(outputs.images_dir) == [
        "part-00000-of-00002.parquet",
        "part-00001-of-00002.parquet",
    ]


@pytest.mark.parametrize("lost", ["tar", "index", "images"])
def test_a_shard_missing_an_output_is_not_done(outputs, lost):
    shard = _Shard(outputs, 0, 1)
    tasks = _tasks([1, 2, 3])
    shard.write(tasks)
    os.remove(getattr(shard.paths, lost))
    assert read_done(shard.paths, fingerprint(tasks, OPTIONS)) is None


def test_a_shard_done_for_other_tasks_is_redone(outputs):
    shard = _Shard(outputs, 0, 1)
    before = _tasks([1, 2, 3])
    shard.write(before)
    # The release changed: image 3 has new bytes (so a new OriginalMD5).
    after = _tasks([1, 2, 3], seed=100)
    assert read_done(shard.paths, fingerprint(after, OPTIONS)) is None
    assert read_done(shard.paths, fingerprint(before, "thumbnail|auto")) is None
    shard.write(after, seed=100)
    assert read_done(shard.paths, fingerprint(before, OPTIONS)) is None
    images, _ = read_done(shard.paths, fingerprint(after, OPTIONS))
    assert images["OriginalMD5"].to_pylist() == after["OriginalMD5"].to_pylist()
    for row in pq.read_table(shard.paths.index).to_pylist():
        at = _bytes_at(shard.paths.tar, row["offset"], row["size"])
        assert at == jpeg(int(row["ImageID"], 16) + 100)


def test_an_empty_shard_has_three_empty_outputs(tmp_path):
    schema = images_with_status_schema(())
    outputs = ShardOutputs(
        str(tmp_path / "shards"), str(tmp_path / "tables" / "images"), schema, "zstd"
    )
    written = outputs.empty(4, 5)
    paths = outputs.paths(4, 5)
    assert [(w.table, w.path, w.rows) for w in written] == [
        ("shards", paths.tar, 0),
        ("shard_index", paths.index, 0),
        ("images", paths.images, 0),
    ]
    with tarfile.open(paths.tar) as tar:
        assert tar.getmembers() == []
    with open(paths.tar, "rb") as f:
        data = f.read()
    assert written[0].bytes == len(data) and set(data) == {0}
    index, images = pq.read_table(paths.index), pq.read_table(paths.images)
    assert index.num_rows == images.num_rows == 0
    assert index.schema.equals(contract.SHARD_INDEX)
    assert images.schema.equals(schema)  # metadata aside
    # A shard that was empty before but has tasks now is fetched.
    assert read_done(paths, fingerprint(_tasks([1]), OPTIONS)) is None


def test_a_stale_completion_mark_does_not_vouch_for_a_newer_tar(outputs):
    shard = _Shard(outputs, 0, 1)
    first = _tasks([1, 3, 5])
    shard.write(first)  # attempt 1: done
    shard.write(_tasks([1, 3, 5], seed=7), seed=7, stop="tar")  # attempt 2: killed
    # attempt 2 removed attempt 1's mark before rewriting the tar: attempt 3
    # must fetch again, not trust an index of bytes that are gone
    assert not os.path.exists(shard.paths.images)
    assert read_done(shard.paths, fingerprint(first, OPTIONS)) is None
