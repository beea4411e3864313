"""A shard's three outputs, committed in an order that makes a crash harmless.

A shard is done when its tar, its index part and its images-table part are
all under their final names, written in that order: the images part is the
completion mark, and its Parquet metadata holds a fingerprint of the shard's
tasks. A rerun of the same snapshot after a crash reads a done shard back
instead of fetching it again (if the fingerprint still matches), and redoes
any other shard from scratch: a tar without its images part is overwritten.
Before a shard's tar is written again, its old index and images parts are
removed, so a mark never vouches for a tar it did not see.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import google_crc32c
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas import fetch as contract
from oibeam.schemas.elements import WrittenFile
from oibeam.transforms.common.write_files import write_parquet
from oibeam.transforms.shard.locations import pooled
from oibeam.transforms.shard.shard_writer import ShardWriter, checksum_label

FINGERPRINT = b"oibeam.shard_tasks"


@dataclass(frozen=True)
class ShardPaths:
    """Where one shard's outputs go."""

    shard: int
    shards: int
    shards_dir: str  # the run's shards/: the index parts go in its index/
    images_dir: str
    tars_dir: str  # where the tar goes: shards_dir, or the pool's ROOT/pool/ID
    pool_id: str | None = None  # the snapshot writing into the pool

    @property
    def name(self) -> str:
        return f"images-{self.shard:05d}-of-{self.shards:05d}"

    @property
    def shard_name(self) -> str:
        """How the index names this shard (see locations)."""
        if self.pool_id is None:
            return f"{self.name}.tar"
        return pooled(self.pool_id, f"{self.name}.tar")

    @property
    def part(self) -> str:
        return f"part-{self.shard:05d}-of-{self.shards:05d}"

    @property
    def tar(self) -> str:
        return f"{self.tars_dir}/{self.name}.tar"

    @property
    def index(self) -> str:
        return f"{self.shards_dir}/index/{self.part}.parquet"

    @property
    def images(self) -> str:
        return f"{self.images_dir}/{self.part}.parquet"


def fingerprint(tasks: pa.Table, options: str) -> str:
    """What the shard was asked to do: the same tasks (rows in ImageID order)
    under the same options (FetchConfig.outcome_key) give the same fingerprint."""
    sink = pa.BufferOutputStream()
    table = tasks.combine_chunks().replace_schema_metadata(None)
    with pa.ipc.new_stream(sink, table.schema) as writer:  # uncompressed: stable
        writer.write_table(table)
    digest = hashlib.md5(sink.getvalue().to_pybytes())
    digest.update(options.encode())
    return digest.hexdigest()


def read_done(paths: ShardPaths, expected: str):
    """(images part, its WrittenFiles) of a shard an earlier attempt finished
    with the same tasks, else None."""
    if not FileSystems.exists(paths.images):
        return None
    images_bytes = _read(paths.images)
    metadata = pq.read_schema(pa.py_buffer(images_bytes)).metadata or {}
    if metadata.get(FINGERPRINT, b"").decode() != expected:
        return None
    if not (FileSystems.exists(paths.tar) and FileSystems.exists(paths.index)):
        return None
    images = pq.read_table(pa.py_buffer(images_bytes))
    index_bytes = _read(paths.index)
    index_rows = pq.read_metadata(pa.py_buffer(index_bytes)).num_rows
    tar_size, tar_crc = _crc_of(paths.tar)
    written = [
        WrittenFile("shards", paths.tar, index_rows, tar_size, tar_crc),
        WrittenFile(
            "shard_index",
            paths.index,
            index_rows,
            len(index_bytes),
            hashlib.md5(index_bytes).hexdigest(),
        ),
        WrittenFile(
            "images",
            paths.images,
            images.num_rows,
            len(images_bytes),
            hashlib.md5(images_bytes).hexdigest(),
        ),
    ]
    return images.replace_schema_metadata(None), written


def _read(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        return handle.read()


def _crc_of(path: str) -> tuple[int, str]:
    crc = size = 0
    with FileSystems.open(path) as handle:
        while chunk := handle.read(1 << 22):
            crc = google_crc32c.extend(crc, chunk)
            size += len(chunk)
    return size, checksum_label(crc)


@dataclass(frozen=True)
class ShardOutputs:
    """Where and how every shard of one run is written."""

    shards_dir: str
    images_dir: str
    schema: pa.Schema  # the images table's: images columns + status columns
    compression: str
    # A snapshot's tars go to its root's pool (ROOT/pool/ID), shared with the
    # snapshots after it, and their JSON members hold only what cannot change
    # for the bytes (see image_tasks.sample_json); None: into shards_dir.
    pool: tuple[str, str] | None = None  # (ROOT/pool/ID, ID)

    def paths(self, shard: int, shards: int) -> ShardPaths:
        if self.pool is None:
            return ShardPaths(
                shard, shards, self.shards_dir, self.images_dir, self.shards_dir
            )
        tars_dir, pool_id = self.pool
        return ShardPaths(
            shard, shards, self.shards_dir, self.images_dir, tars_dir, pool_id
        )

    @property
    def frozen_json(self) -> bool:
        return self.pool is not None

    def open_tar(self, paths: ShardPaths) -> ShardWriter:
        """A writer of the shard's tar, once an earlier attempt's completion
        mark and index part are gone (they described the tar this replaces)."""
        for stale in (paths.images, paths.index):
            if FileSystems.exists(stale):
                FileSystems.delete([stale])
        return ShardWriter(paths.tar)

    def commit_tables(
        self, paths: ShardPaths, images: pa.Table, index: list[tuple], tasks: str
    ) -> list[WrittenFile]:
        """Writes the index part, then the images part (the completion mark,
        carrying the `tasks` fingerprint)."""
        index_part = index_table(index)
        size, md5 = write_parquet(paths.index, index_part, self.compression)
        written = [WrittenFile("shard_index", paths.index, len(index), size, md5)]
        marked = images.replace_schema_metadata(
            {**(images.schema.metadata or {}), FINGERPRINT: tasks.encode()}
        )
        size, md5 = write_parquet(paths.images, marked, self.compression)
        written.append(WrittenFile("images", paths.images, images.num_rows, size, md5))
        return written

    def empty(self, shard: int, shards: int) -> list[WrittenFile]:
        """A shard no image hashed to: an empty tar and empty table parts."""
        paths = self.paths(shard, shards)
        size, crc = self.open_tar(paths).commit()
        tar = WrittenFile("shards", paths.tar, 0, size, crc)
        return [tar, *self.commit_tables(paths, self.schema.empty_table(), [], "")]


def index_table(rows: list[tuple]) -> pa.Table:
    columns = (
        list(zip(*rows, strict=True)) if rows else [[] for _ in contract.SHARD_INDEX]
    )
    return pa.Table.from_arrays(
        [
            pa.array(c, f.type)
            for c, f in zip(columns, contract.SHARD_INDEX, strict=True)
        ],
        schema=contract.SHARD_INDEX,
    )
