"""FetchImages: download, verify and shard every selected image; a status for each.

Images are assigned to shards by a stable digest of the ImageID; a shard's
rows wait in exchange files, so only file names are shuffled. One element per
shard, fetched into its tar by a ShardFetcher (shard_fetch.py; the shards of a
bundle overlap, so the window stays full across them), then its index part
and its images-table part (the rows plus status columns) are written, in that
order (see shard_outputs: a shard an earlier attempt finished is read back,
not fetched again).
"""

from __future__ import annotations

import collections
import logging
import time

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.utils.windowed_value import WindowedValue

from oibeam.schemas import fetch as contract
from oibeam.schemas.elements import SELECTED, STATUS, BucketPiece, Count, WrittenFile
from oibeam.transforms.common.exchange import read_piece, write_piece
from oibeam.transforms.common.image_keys import mix64, parse_image_ids
from oibeam.transforms.common.metrics import NAMESPACE
from oibeam.transforms.common.progress import FETCH, PROGRESS, publish_total
from oibeam.transforms.fetch.image_tasks import FetchConfig
from oibeam.transforms.fetch.shard_fetch import ShardFetcher
from oibeam.transforms.shard.shard_outputs import ShardOutputs, fingerprint, read_done

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


def shard_count(totals: tuple[int, int], shard_bytes: int, least: int = 1) -> int:
    """Shards for (images, bytes): ~shard_bytes each, at least _MIN_SHARDS
    when there are images enough, never more than images, at least `least`
    (a refresh with nothing to fetch writes no shard: least=0)."""
    images, size = totals
    wanted = max(
        -(-size // shard_bytes), min(_MIN_SHARDS, images // _IMAGES_PER_MIN_SHARD)
    )
    return int(max(least, min(images, wanted)))


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
    return Count(SELECTED, "", totals[0])


def _publish_total(totals: tuple[int, int], progress_dir: str) -> None:
    """The images to fetch, for the launcher's progress line."""
    publish_total(progress_dir, FETCH, totals[0])


def _missing_shards(shards: int, written: list[WrittenFile], outputs: ShardOutputs):
    """Empty outputs for shard numbers no image hashed to: gap-free sets of
    tars, index parts and images parts."""
    present = {w.path for w in written}
    for shard in range(shards):
        if outputs.paths(shard, shards).tar not in present:
            yield from outputs.empty(shard, shards)


class _FetchShardFn(beam.DoFn):
    """(shard, [BucketPiece]) -> WrittenFile (tar, index part, images part);
    tagged 'counts': a Count per status. A shard an earlier attempt committed
    for the same tasks and options is read back, not fetched again.

    Shards of a bundle overlap: an element's shard is begun, results are
    taken until all its tasks have started, and the next element's shard
    then fills the window while earlier ones finish; what is still open is
    completed at the bundle's end."""

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
        self._fetcher = ShardFetcher(self._config, self._outputs)
        self._logged = time.monotonic()

    def teardown(self) -> None:
        self._fetcher.close()

    def start_bundle(self) -> None:
        self._fetcher.abort()  # what a failed bundle left open (it is retried)
        self._windows: dict[int, tuple] = {}  # shard -> (timestamp, windows)

    def process(
        self,
        element,
        shards: int,
        timestamp=beam.DoFn.TimestampParam,
        window=beam.DoFn.WindowParam,
    ):
        shard, pieces = element
        tasks = pa.concat_tables([read_piece(p) for p in pieces]).sort_by("ImageID")
        paths = self._outputs.paths(shard, shards)
        tasks_fingerprint = fingerprint(tasks, self._config.outcome_key())
        done = read_done(paths, tasks_fingerprint)
        if done is not None:
            self._metrics["resumed"].inc(done[0].num_rows)
            yield from self._outputs_of(done)
            return
        self._windows[shard] = (timestamp, (window,))
        self._fetcher.begin(paths, tasks, tasks_fingerprint)
        for job, done in self._fetcher.complete(self._count, feeding=True):
            del self._windows[job.paths.shard]
            yield from self._outputs_of(done)

    def finish_bundle(self):
        for job, done in self._fetcher.complete(self._count):
            timestamp, windows = self._windows.pop(job.paths.shard)
            for value in self._outputs_of(done):
                if isinstance(value, beam.pvalue.TaggedOutput):
                    yield beam.pvalue.TaggedOutput(
                        value.tag, WindowedValue(value.value, timestamp, windows)
                    )
                else:
                    yield WindowedValue(value, timestamp, windows)

    def _outputs_of(self, done):
        images, written = done
        if self._progress_dir:
            PROGRESS.publish(self._progress_dir)
        yield from written
        statuses = collections.Counter(images["status"].to_pylist())
        for status, n in sorted(statuses.items()):
            yield beam.pvalue.TaggedOutput("counts", Count(STATUS, status, n))

    def _count(self, status: dict) -> None:
        """Counters, the progress tally, and a log line every 30 s."""
        ok = status["status"] == contract.OK
        self._metrics["images"].inc()
        self._metrics["ok" if ok else "failed"].inc()
        self._metrics["bytes"].inc(status["bytes"])
        PROGRESS.add(FETCH, 1, ok, status["bytes"], publish_to=self._progress_dir)
        if time.monotonic() - self._logged > 30:
            self._logged = time.monotonic()
            _LOG.info(PROGRESS.line())


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


def _shard_count(
    totals: tuple[int, int], shard_bytes: int, least: int, _after=()
) -> int:
    return shard_count(totals, shard_bytes, least)


class FetchImages(beam.PTransform):
    """PCollection[(bucket, pa.Table)] of selected images (optionally planned
    by a refresh, see image_tasks) -> dict: written = WrittenFile of every tar
    (a gap-free set), index part and images-table part (`outputs`: where they
    go, the images columns plus status columns), counts = Count per status and
    "selected",
    shards = the shard count (one int). Local runs give a `progress_dir` on
    this machine, where workers publish their counts for the progress line.
    Nothing is fetched before `after` (if given) is complete: the step that
    checks the inputs, so that a run about to be refused fetches nothing.
    With `least_shards=0` a selection with nothing to fetch writes no shard."""

    def __init__(
        self,
        config: FetchConfig,
        outputs: ShardOutputs,
        exchange: str,
        progress_dir: str | None = None,
        after: beam.PCollection | None = None,
        least_shards: int = 1,
    ) -> None:
        super().__init__()
        self._least_shards = least_shards
        self._after = after
        self._config = config
        self._exchange = exchange
        self._outputs = outputs
        self._progress_dir = progress_dir
        self._shard_fn = _FetchShardFn(config, outputs, progress_dir)

    def expand(
        self, selected: beam.PCollection[tuple[int, pa.Table]]
    ) -> dict[str, beam.PCollection]:
        # (images, bytes) of the whole selection -> the number of shards
        totals = (
            selected
            | "ExpectedBytes" >> beam.Map(_expected_bytes, self._config)
            | "SumBytes" >> beam.CombineGlobally(_sum_pairs)
        )
        if self._progress_dir:
            _ = totals | "PublishTotal" >> beam.Map(_publish_total, self._progress_dir)
        after = [beam.pvalue.AsList(self._after)] if self._after is not None else []
        shards = totals | "ShardCount" >> beam.Map(
            _shard_count, self._config.shard_bytes, self._least_shards, *after
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
