"""The ok images of a fetch or snapshot run, sorted by ImageID, each with its
place in the shards, streamed in batches whatever the size of the run.

`load_run` finds the run (ROOT/ID, or a snapshot ROOT through its LATEST) and
its images and shard index parts. `OkImages` reads them in two passes:

1. every part is read in record batches of only the needed columns; rows
   whose status is not `ok` are counted and dropped; the rest (and the shard
   index) are split by ImageID range into Arrow IPC files in a local temporary
   directory, each about `bucket_rows` rows;
2. bucket by bucket, in ImageID order: sorted, joined to the shard index, and
   handed out in batches with `path` = shards/<shard>/<member>.

Memory is bounded by one bucket, never the whole table. ImageIDs are ordered
as the 64-bit numbers they spell (for the lowercase IDs of every release, the
same as text order).

Longer than most modules on purpose: both passes share the bucket files and
their ImageID ranges, and split apart they would hand those back and forth.
"""

from __future__ import annotations

import collections
import logging
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.fetch import OK
from oibeam.tools.export.base import INDEX_COLUMNS, PATH, ExportError
from oibeam.tools.runs import NotARun, Run, resolve_run
from oibeam.transforms.common.image_keys import parse_image_ids
from oibeam.transforms.shard.locations import run_relative

_LOG = logging.getLogger(__name__)

BUCKET_ROWS = 100_000  # rows sorted in memory at once
WRITE_BATCH_ROWS = 8_192  # rows handed to the writers at once
_READ_BATCH_ROWS = 65_536
_KEY = "_key"


def _read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        return handle.read()


@dataclass(frozen=True)
class RunFiles:
    """A fetch or snapshot run: its directory, images and shard index parts,
    and the images table's schema."""

    directory: str
    images: tuple[str, ...]
    index: tuple[str, ...]
    schema: pa.Schema
    snapshot_id: str | None
    rows: int | None = None  # images rows, as the manifest counts them

    @property
    def has_boxes(self) -> bool:
        return "boxes" in self.schema.names


def load_run(path: str) -> RunFiles:
    """The run at `path`; ExportError unless it is a fetch or snapshot run
    whose manifest is one oibeam writes, every file it lists inside the run."""
    try:
        run = Run.load(resolve_run(path))
        images = run.table_files("images")
        index = run.table_files("shard_index", "shards/index")
    except NotARun as e:  # BadManifest too
        raise ExportError(str(e)) from e
    directory, manifest = run.directory, run.manifest
    if not images:
        raise ExportError(f"{directory}: no images table (tables/images)")
    with FileSystems.open(images[0]) as handle:
        schema = pq.read_schema(handle)
    if "status" not in schema.names:
        raise ExportError(
            f"{directory} is a `tables` run: its images were never fetched (no "
            "status column). Export needs a run of `oibeam fetch` or `oibeam "
            "snapshot`: exports hold fetched and verified images only"
        )
    snapshot = manifest.get("snapshot") or {}
    return RunFiles(
        directory,
        tuple(images),
        tuple(index),
        schema,
        snapshot.get("id"),
        manifest.get("rows", {}).get("images"),
    )


def trainable_labels(directory: str) -> frozenset[str]:
    """The run's trainable set: tables/trainable_labels.csv, or label_stats."""
    csv_path = f"{directory}/tables/trainable_labels.csv"
    if FileSystems.exists(csv_path):
        table = pacsv.read_csv(
            pa.py_buffer(_read_bytes(csv_path)),
            convert_options=pacsv.ConvertOptions(
                column_types={"LabelName": pa.string(), "DisplayName": pa.string()}
            ),
        )
        return frozenset(table["LabelName"].to_pylist())
    stats = FileSystems.match([f"{directory}/tables/label_stats/*.parquet"])[0]
    if not stats.metadata_list:
        raise ExportError(
            f"{directory} has no trainable set (tables/trainable_labels.csv or "
            "tables/label_stats): drop --trainable-only"
        )
    labels: set[str] = set()
    for meta in stats.metadata_list:
        table = pq.read_table(
            pa.py_buffer(_read_bytes(meta.path)), columns=["label", "trainable"]
        )
        labels.update(table.filter(table["trainable"])["label"].to_pylist())
    return frozenset(labels)


def _keys(ids) -> np.ndarray:
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    keys, valid = parse_image_ids(ids)
    if not valid.all():
        bad = ids.filter(pa.array(~valid))[0]
        raise ExportError(f"ImageID {bad} is not 16 hex digits")
    return keys


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with exactly `schema`'s columns (absent ones null)."""
    if batch.schema.equals(schema):
        return batch
    columns = [
        batch.column(f.name)
        if f.name in batch.schema.names
        else pa.nulls(batch.num_rows, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class _Buckets:
    """IPC files, one per ImageID range, written batch by batch."""

    def __init__(self, directory: str, name: str, count: int) -> None:
        self._directory = directory
        self._name = name
        self._count = count
        self._writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
        self.schema: pa.Schema | None = None

    def path(self, bucket: int) -> str:
        return f"{self._directory}/{self._name}-{bucket:05d}.arrow"

    def add(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        if self.schema is None:
            self.schema = batch.schema
        batch = _conform(batch, self.schema)
        keys = _keys(batch.column("ImageID"))
        # Ranges of the key, so bucket order is ImageID order.
        which = ((keys >> np.uint64(32)) * np.uint64(self._count)) >> np.uint64(32)
        order = np.argsort(which, kind="stable")
        which = which[order]
        starts = np.flatnonzero(np.r_[True, which[1:] != which[:-1]])
        ends = np.r_[starts[1:], len(which)]
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            bucket = int(which[start])
            writer = self._writers.get(bucket)
            if writer is None:
                writer = pa.ipc.new_file(
                    self.path(bucket),
                    self.schema,
                    options=pa.ipc.IpcWriteOptions(compression="zstd"),
                )
                self._writers[bucket] = writer
            writer.write_batch(batch.take(pa.array(order[start:end])))

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()

    def read(self, bucket: int) -> pa.Table | None:
        if bucket not in self._writers:
            return None
        with pa.OSFile(self.path(bucket)) as source:  # read into memory
            return pa.ipc.open_file(source).read_all()


class OkImages:
    """The ok images of a run, in two passes (see the module docstring).

    `skipped` counts the images left out, by status; `ok` the images kept.
    Use as a context manager: the temporary directory goes on exit.
    """

    def __init__(
        self,
        run: RunFiles,
        columns: tuple[str, ...],
        bucket_rows: int = BUCKET_ROWS,
    ) -> None:
        self._run = run
        # The index columns and the path come from the shard index.
        placed = {PATH, *INDEX_COLUMNS}
        wanted = ("ImageID", "status", *(c for c in columns if c not in placed))
        self._columns = [c for c in dict.fromkeys(wanted) if c in run.schema.names]
        self._bucket_rows = bucket_rows
        self.ok = 0
        self.skipped: collections.Counter[str] = collections.Counter()
        self._temp: str | None = None
        self._images: _Buckets | None = None
        self._index: _Buckets | None = None
        self._count = 0

    def __enter__(self) -> OkImages:
        self._temp = tempfile.mkdtemp(prefix="oibeam-export-")
        return self

    def __exit__(self, *exc) -> None:
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None

    def _rows(self) -> int:
        if self._run.rows is not None:
            return self._run.rows
        rows = 0
        for path in self._run.images:
            with FileSystems.open(path) as handle:
                rows += pq.read_metadata(handle).num_rows
        return rows

    def spill(self, observe: Callable[[pa.Table], None]) -> None:
        """Pass 1: every ok row to its bucket; `observe` sees each ok batch."""
        assert self._temp is not None, "use OkImages as a context manager"
        count = max(1, math.ceil(self._rows() / self._bucket_rows))
        self._images = _Buckets(self._temp, "images", count)
        self._index = _Buckets(self._temp, "index", count)
        columns = [c for c in self._columns if c != "status"]
        for path in self._run.images:
            parquet = pq.ParquetFile(pa.BufferReader(_read_bytes(path)))
            present = [c for c in self._columns if c in parquet.schema_arrow.names]
            for batch in parquet.iter_batches(_READ_BATCH_ROWS, columns=present):
                status = batch.column("status")
                ok = pc.equal(status, OK)
                for item in pc.value_counts(pc.filter(status, pc.invert(ok))):
                    self.skipped[item["values"].as_py()] += item["counts"].as_py()
                kept = batch.filter(ok)
                kept = pa.RecordBatch.from_arrays(
                    [
                        kept.column(c)
                        if c in present
                        else pa.nulls(len(kept), self._run.schema.field(c).type)
                        for c in columns
                    ],
                    names=columns,
                )
                self.ok += kept.num_rows
                if kept.num_rows:
                    observe(pa.Table.from_batches([kept]))
                self._images.add(kept)
        for path in self._run.index:
            parquet = pq.ParquetFile(pa.BufferReader(_read_bytes(path)))
            for batch in parquet.iter_batches(
                _READ_BATCH_ROWS, columns=["ImageID", *INDEX_COLUMNS]
            ):
                self._index.add(batch)
        self._images.close()
        self._index.close()
        self._count = count
        _LOG.info(
            "%s: %d ok images in %d bucket(s), %d skipped",
            self._run.directory,
            self.ok,
            count,
            sum(self.skipped.values()),
        )

    def batches(self) -> Iterator[pa.Table]:
        """Pass 2: the ok images in ImageID order, with `path` and the index
        columns; ExportError if an ok image has no shard index row."""
        assert self._images is not None, "spill() first"
        for bucket in range(self._count):
            table = self._images.read(bucket)
            if table is None:
                continue
            table = table.append_column(_KEY, pa.array(_keys(table["ImageID"])))
            table = table.sort_by([(_KEY, "ascending"), ("ImageID", "ascending")])
            table = table.drop_columns([_KEY])
            yield from _slices(self._place(table, self._index.read(bucket)))

    def _place(self, table: pa.Table, index: pa.Table | None) -> pa.Table:
        ids = table["ImageID"]
        if index is None:
            where = pa.nulls(len(table), pa.int32())
        else:
            where = pc.index_in(ids, value_set=index["ImageID"].combine_chunks())
        if where.null_count:
            first = ids.filter(pc.is_null(where))[0]
            raise ExportError(
                f"{self._run.directory}: {where.null_count} ok image(s) have no "
                f"row in shards/index (first: {first}); run `oibeam verify` on it"
            )
        for name in INDEX_COLUMNS:
            table = table.append_column(name, index[name].take(where))
        shards = pc.unique(table["shard"]).to_pylist()
        try:
            places = pa.array([run_relative(s) for s in shards], pa.string())
        except ValueError as e:
            raise ExportError(f"{self._run.directory}: shards/index: {e}") from None
        tar = places.take(pc.index_in(table["shard"], value_set=pa.array(shards)))
        path = pc.binary_join_element_wise(tar, table["member"], "/")
        return table.append_column(PATH, path)


def _slices(table: pa.Table) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, WRITE_BATCH_ROWS):
        yield table.slice(start, WRITE_BATCH_ROWS)
