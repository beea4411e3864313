"""FetchImages: download, verify and shard every selected image; a status for each.

Images are assigned to shards by a stable digest of the ImageID; a shard's
rows wait in exchange files, so only file names are shuffled. One element per
shard: its tasks (see image_tasks) run on a thread pool, many in flight per
worker, their results taken in ImageID order through a bounded window; the good
images stream into the shard's tar. Then the shard's index part and its
images-table part (the rows plus status columns) are written, in that order
(see shard_outputs: a shard an earlier attempt finished is read back, not
fetched again).
"""

from __future__ import annotations

import collections
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam
import numpy as np
import pyarrow as pa

from oibeam.schemas import fetch as contract
from oibeam.schemas.coders import register_coders
from oibeam.schemas.elements import BucketPiece, Count, WrittenFile
from oibeam.transforms.common.exchange import read_piece, write_piece
from oibeam.transforms.common.image_keys import mix64, parse_image_ids
from oibeam.transforms.common.metrics import NAMESPACE
from oibeam.transforms.fetch.image_tasks import (
    FetchConfig,
    TaskRunner,
    internal_columns,
    ordered,
    sample_json,
)
from oibeam.transforms.fetch.pixel_boxes import with_upright_boxes
from oibeam.transforms.fetch.progress import TALLY
from oibeam.transforms.shard.shard_outputs import (
    ShardOutputs,
    ShardPaths,
    fingerprint,
    read_done,
)
from oibeam.transforms.shard.shard_writer import ShardWriter

register_coders()
_LOG = logging.getLogger(__name__)

_SHARD_SALT = np.uint64(0x5AA2D5EED5)
_THUMBNAIL_BYTES = 120_000  # a guess for shard sizing when no size is known

__all__ = ["FetchConfig", "FetchImages", "shard_count", "shard_of"]


def shard_of(image_ids, shards: int) -> np.ndarray:
    keys, _ = parse_image_ids(
        image_ids.combine_chunks()
        if isinstance(image_ids, pa.ChunkedArray)
        else image_ids
    )
    return (mix64(keys ^ _SHARD_SALT) % np.uint64(shards)).astype(np.int64)


# A shard is the unit of parallel work: a selection of at least this many x
# _IMAGES_PER_MIN_SHARD images gets at least this many shards, smaller than
# --shard-bytes if need be (9 shards of 5,000 images kept one of 2 workers idle
# for the last round; 16 fetched them 20% faster).
_MIN_SHARDS = 16
_IMAGES_PER_MIN_SHARD = 100


def shard_count(totals: tuple[int, int], shard_bytes: int) -> int:
    """Shards for (images, bytes): ~shard_bytes each, at least _MIN_SHARDS
    when there are images enough, never more than images."""
    images, size = totals
    wanted = max(
        -(-size // shard_bytes), min(_MIN_SHARDS, images // _IMAGES_PER_MIN_SHARD)
    )
    return int(max(1, min(images, wanted)))


def expected_bytes(table: pa.Table, config: FetchConfig) -> tuple[int, int]:
    if config.source == "thumbnail" and not config.url_template:
        return table.num_rows, table.num_rows * _THUMBNAIL_BYTES
    size = table["OriginalSize"].to_numpy(zero_copy_only=False)
    return table.num_rows, int(np.nansum(size.astype(np.float64)))


def _expected_bytes(element, config: FetchConfig) -> tuple[int, int]:
    return expected_bytes(element[1], config)


def _sum_pairs(pairs) -> tuple[int, int]:
    images = size = 0
    for a, b in pairs:
        images, size = images + a, size + b
    return images, size


def _selected(totals: tuple[int, int]) -> Count:
    return Count("selected", totals[0])


def _missing_shards(shards: int, written: list[WrittenFile], outputs: ShardOutputs):
    """Empty outputs for shard numbers no image hashed to: gap-free sets of
    tars, index parts and images parts."""
    present = {w.path for w in written}
    for shard in range(shards):
        if outputs.paths(shard, shards).tar not in present:
            yield from outputs.empty(shard, shards)


def with_status(tasks: pa.Table, statuses: list[dict], schema: pa.Schema) -> pa.Table:
    """The images-table part: task columns (internal ones dropped) + statuses,
    boxes in pixels of the upright image."""
    table = tasks.drop_columns(internal_columns(tasks))
    for f in contract.STATUS_FIELDS:
        table = table.append_column(f, pa.array([s[f.name] for s in statuses], f.type))
    return with_upright_boxes(table).select(schema.names).cast(schema)


class _FetchShardFn(beam.DoFn):
    """(shard, [BucketPiece]) -> WrittenFile (tar, index part, images part);
    tagged 'counts': a Count per status."""

    def __init__(
        self, config: FetchConfig, outputs: ShardOutputs, progress_dir: str | None
    ) -> None:
        self._config = config
        self._outputs = outputs
        self._progress_dir = progress_dir
        self._metrics = {
            name: beam.metrics.Metrics.counter(NAMESPACE, f"fetch_{name}")
            for name in ("images", "ok", "failed", "bytes", "resumed")
        }

    def setup(self) -> None:
        self._runner = TaskRunner(self._config)
        self._pool = ThreadPoolExecutor(
            self._config.concurrency, thread_name_prefix="oibeam-fetch"
        )
        self._logged = time.monotonic()

    def teardown(self) -> None:
        self._pool.shutdown(wait=True)
        self._runner.close()

    def process(self, element, shards: int):
        shard, pieces = element
        tasks = pa.concat_tables([read_piece(p) for p in pieces]).sort_by("ImageID")
        paths = self._outputs.paths(shard, shards)
        tasks_fingerprint = fingerprint(tasks, self._config.outcome_key())
        done = read_done(paths, tasks_fingerprint)
        if done is not None:
            images, written = done
            self._metrics["resumed"].inc(images.num_rows)
            statuses = images["status"].to_pylist()
        else:
            images, written = self._run_shard(paths, tasks, tasks_fingerprint)
            statuses = images["status"].to_pylist()
        if self._progress_dir:
            TALLY.publish(self._progress_dir)
        yield from written
        for status, n in sorted(collections.Counter(statuses).items()):
            yield beam.pvalue.TaggedOutput("counts", Count(f"status:{status}", n))

    def _run_shard(self, paths: ShardPaths, tasks: pa.Table, tasks_fingerprint: str):
        writer = ShardWriter(paths.tar)
        statuses, index = [], []
        try:
            window = 2 * self._config.concurrency
            rows = tasks.to_pylist()
            for row, result in ordered(self._pool, self._runner.run, rows, window):
                status = result.status
                if result.ok:
                    status["shard"] = f"{paths.name}.tar"
                    ext = contract.FORMAT_EXTENSIONS.get(status["format"], "bin")
                    image, meta = writer.add_sample(
                        row["ImageID"], ext, result.data, sample_json(row, status)
                    )
                    index.append(
                        (
                            row["ImageID"],
                            status["shard"],
                            image.name,
                            image.offset,
                            image.size,
                            meta.name,
                            meta.offset,
                            meta.size,
                        )
                    )
                statuses.append(status)
                self._count(status)
            size, crc = writer.commit()
        except BaseException:
            writer.abort()
            raise
        tar = WrittenFile("shards", paths.tar, writer.samples, size, crc)
        images = with_status(tasks, statuses, self._outputs.schema)
        written = self._outputs.commit_tables(paths, images, index, tasks_fingerprint)
        return images, [tar, *written]

    def _count(self, status: dict) -> None:
        ok = status["status"] == contract.OK
        self._metrics["images"].inc()
        self._metrics["ok" if ok else "failed"].inc()
        self._metrics["bytes"].inc(status["bytes"])
        TALLY.add(ok, status["bytes"], publish_to=self._progress_dir)
        if time.monotonic() - self._logged > 30:
            self._logged = time.monotonic()
            _LOG.info(TALLY.line())


class _ParkByShardFn(beam.DoFn):
    """(bucket, images table) -> (shard, BucketPiece) per shard present."""

    def __init__(self, exchange: str) -> None:
        self._exchange = exchange

    def process(self, element, shards: int):
        bucket, table = element
        if not table.num_rows:
            return
        which = shard_of(table["ImageID"], shards)
        for shard in np.unique(which).tolist():
            rows = table.filter(pa.array(which == shard))
            yield (
                shard,
                write_piece(
                    self._exchange, "shards", shard, rows, name=f"from-{bucket:05d}"
                ),
            )


class FetchImages(beam.PTransform):
    """PCollection[(bucket, pa.Table)] of selected images (optionally planned
    by a refresh, see image_tasks) -> dict: written = WrittenFile of every tar
    (a gap-free set), index part and images-table part (`outputs`: where they
    go, the images columns plus status columns), counts = Count per status and
    "selected",
    shards = the shard count (one int). Local runs give a `progress_dir` on
    this machine, where workers publish their counts for the progress line."""

    def __init__(
        self,
        config: FetchConfig,
        outputs: ShardOutputs,
        exchange: str,
        progress_dir: str | None = None,
    ) -> None:
        super().__init__()
        self._config = config
        self._exchange = exchange
        self._outputs = outputs
        self._shard_fn = _FetchShardFn(config, outputs, progress_dir)

    def expand(self, selected):
        # (images, bytes) of the whole selection -> the number of shards
        totals = (
            selected
            | "ExpectedBytes" >> beam.Map(_expected_bytes, self._config)
            | "SumBytes" >> beam.CombineGlobally(_sum_pairs)
        )
        shards = totals | "ShardCount" >> beam.Map(
            shard_count, self._config.shard_bytes
        ).with_output_types(int)
        fetched = (
            selected
            | "ParkByShard"
            >> beam.ParDo(
                _ParkByShardFn(self._exchange), beam.pvalue.AsSingleton(shards)
            ).with_output_types(tuple[int, BucketPiece])
            | "GroupByShard" >> beam.GroupByKey()
            | "FetchShards"
            >> beam.ParDo(self._shard_fn, beam.pvalue.AsSingleton(shards))
            .with_output_types(WrittenFile, counts=Count)
            .with_outputs("counts", main="written")
        )
        gaps = shards | "FillShardGaps" >> beam.FlatMap(
            _missing_shards, beam.pvalue.AsList(fetched.written), self._outputs
        ).with_output_types(WrittenFile)
        selected_count = totals | "CountSelected" >> beam.Map(
            _selected
        ).with_output_types(Count)
        return {
            "written": (fetched.written, gaps) | "AllShards" >> beam.Flatten(),
            "counts": (fetched.counts, selected_count) | "AllCounts" >> beam.Flatten(),
            "shards": shards,
        }
