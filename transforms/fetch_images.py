"""FetchImages: download, verify and shard every selected image; a status for each.

Images are assigned to shards by a stable digest of the ImageID; a shard's
rows wait in exchange files, so only file names are shuffled. One element per
shard: its images are fetched by a thread pool (many requests in flight per
worker; results taken in ImageID order through a bounded window), verified
(size, MD5, Pillow), and the good ones streamed into the shard's tar. The shard
yields its images table part (the input rows plus status columns), its index
part and the committed tar.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from string import Formatter

import apache_beam as beam
import numpy as np
import pyarrow as pa

from schemas import fetch as contract
from schemas.coders import register_coders
from schemas.elements import BucketPiece, Count, WrittenFile
from transforms.exchange import read_piece, write_piece
from transforms.fetcher import Download, FetchPolicy, HttpFetcher
from transforms.gcs_fetch import GcsFetcher
from transforms.image_check import DEFAULT_MAX_PIXELS, Verdict, check_image
from transforms.image_keys import mix64, parse_image_ids
from transforms.metrics import NAMESPACE
from transforms.progress import TALLY
from transforms.shard_writer import ShardWriter

register_coders()
_LOG = logging.getLogger(__name__)

_SHARD_SALT = np.uint64(0x5AA2D5EED5)
_IMAGE_ID = re.compile(r"^[0-9a-f]{16}$")
_THUMBNAIL_BYTES = 120_000  # a guess for shard sizing when no size is known


@dataclass(frozen=True)
class FetchConfig:
    """How images are fetched and verified (flag names in brackets)."""

    source: str = "original"  # original | thumbnail [--source]
    url_template: str | None = None  # e.g. gs://mirror/{Subset}/{ImageID}.jpg
    verify: str = "auto"  # auto | md5 | decode [--verify]
    concurrency: int = 16  # requests in flight per worker [--concurrency]
    policy: FetchPolicy = field(default_factory=FetchPolicy)
    max_pixels: int = DEFAULT_MAX_PIXELS  # [--max-pixels]
    full_decode: bool = False  # decode even MD5-verified images [--full-decode]
    shard_bytes: int = 256 << 20  # target bytes per shard [--shard-bytes]

    def __post_init__(self) -> None:
        if self.source not in ("original", "thumbnail"):
            raise ValueError("the image source is original or thumbnail")
        if self.verify not in ("auto", "md5", "decode"):
            raise ValueError("--verify is auto, md5 or decode")
        if self.concurrency < 1 or self.shard_bytes < 1:
            raise ValueError("--concurrency and --shard-bytes must be >= 1")

    def check_template(self, columns: list[str]) -> None:
        """ValueError if the URL template names a column the images do not have."""
        if not self.url_template:
            return
        names = {f for _, f, _, _ in Formatter().parse(self.url_template) if f}
        unknown = sorted(names - set(columns))
        if unknown:
            raise ValueError(
                f"--url-template names unknown column(s) {', '.join(unknown)}; "
                f"columns: {', '.join(columns)}"
            )


def target(row: dict, config: FetchConfig) -> tuple[str | None, bool]:
    """(URL to fetch, whether to verify size and MD5) for one image row."""
    if config.url_template:
        values = {k: "" if v is None else v for k, v in row.items() if k != "labels"}
        url, md5 = config.url_template.format_map(values), True
    elif config.source == "thumbnail" and row.get("Thumbnail300KURL"):
        url, md5 = row["Thumbnail300KURL"], False  # its bytes change over time
    else:
        url, md5 = row.get("OriginalURL"), True  # V1: no thumbnail, use original
    if config.verify != "auto":
        md5 = config.verify == "md5"
    return url or None, md5


def shard_of(image_ids, shards: int) -> np.ndarray:
    keys, _ = parse_image_ids(
        image_ids.combine_chunks()
        if isinstance(image_ids, pa.ChunkedArray)
        else image_ids
    )
    return (mix64(keys ^ _SHARD_SALT) % np.uint64(shards)).astype(np.int64)


def shard_count(totals: tuple[int, int], shard_bytes: int) -> int:
    """Shards for (images, bytes): ~shard_bytes each, never more than images."""
    images, size = totals
    return int(max(1, min(images, -(-size // shard_bytes))))


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


def _missing_shards(shards: int, written: list[WrittenFile], shards_dir: str):
    """Empty tars for shard numbers no image hashed to: a complete, gap-free set."""
    present = {w.path for w in written}
    for shard in range(shards):
        path = f"{shards_dir}/images-{shard:05d}-of-{shards:05d}.tar"
        if path not in present:
            size, crc = ShardWriter(path).commit()
            yield WrittenFile("shards", path, 0, size, f"crc32:{crc}")


@dataclass
class Outcome:
    """One image's fetch and check."""

    url: str | None
    download: Download
    verdict: Verdict | None

    @property
    def status(self) -> str:
        if not self.download.ok:
            return self.download.status
        return self.verdict.status or contract.OK


def ordered(pool, fn, items, window: int):
    """Yields (item, fn(item)) in input order with at most `window` in flight."""
    items = iter(items)
    pending = collections.deque(
        (item, pool.submit(fn, item)) for item in itertools.islice(items, window)
    )
    while pending:
        item, future = pending.popleft()
        result = future.result()
        following = next(items, pending)  # `pending` marks the end
        if following is not pending:
            pending.append((following, pool.submit(fn, following)))
        yield item, result


def status_row(outcome: Outcome, shard: str) -> dict:
    d, v = outcome.download, outcome.verdict or Verdict()
    status = outcome.status
    ok = status == contract.OK
    return {
        "status": status,
        "error": d.error if not d.ok else v.error,
        "retryable": d.retryable if not d.ok else False,
        "http_status": d.http_status,
        "attempts": d.attempts,
        "elapsed_ms": d.elapsed_ms,
        "bytes": len(d.data) if d.data is not None else 0,
        "url": outcome.url,
        "md5_ok": v.md5_ok,
        "checked": v.checked if ok else None,
        "format": v.format,
        "mode": v.mode,
        "width": v.width,
        "height": v.height,
        "exif_orientation": v.exif_orientation,
        "display_width": v.display_width,
        "display_height": v.display_height,
        "shard": shard if ok else None,
    }


def sample_json(row: dict, status: dict) -> bytes:
    """The `<ImageID>.json` member: the image's row and what the fetch found."""
    keep = {k: v for k, v in row.items() if v is not None}
    keep["fetch"] = {
        k: status[k]
        for k in contract.STATUS_COLUMNS
        if k not in contract.RUN_COLUMNS and status[k] is not None
    }
    return json.dumps(
        keep, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    ).encode()


class _FetchShardFn(beam.DoFn):
    """(shard, [BucketPiece]) -> (shard, images part); tagged 'index',
    'written' (the tar) and 'counts' (status counts)."""

    def __init__(
        self, config: FetchConfig, shards_dir: str, progress_dir: str | None
    ) -> None:
        self._config = config
        self._shards_dir = shards_dir
        self._progress_dir = progress_dir
        self._metrics = {
            name: beam.metrics.Metrics.counter(NAMESPACE, f"fetch_{name}")
            for name in ("images", "ok", "failed", "bytes")
        }

    def setup(self) -> None:
        self._http = HttpFetcher(self._config.policy)
        self._gcs = GcsFetcher(self._config.policy)
        self._pool = ThreadPoolExecutor(
            self._config.concurrency, thread_name_prefix="oibeam-fetch"
        )
        self._logged = time.monotonic()

    def teardown(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.close()

    def _fetch_one(self, row: dict) -> Outcome:
        if not _IMAGE_ID.match(row["ImageID"] or ""):  # it names the tar members
            error = "ImageID is not 16 lowercase hex digits"
            return Outcome(None, Download(status="refused", error=error), None)
        url, md5 = target(row, self._config)
        if url is None:
            return Outcome(None, Download(status="refused", error="no URL"), None)
        fetcher = self._gcs if url.startswith("gs://") else self._http
        download = fetcher.fetch(url)
        if not download.ok:
            return Outcome(url, download, None)
        verdict = check_image(
            download.data,
            download.md5,
            row.get("OriginalSize") if md5 else None,
            row.get("OriginalMD5") if md5 else None,
            rotation=row.get("Rotation"),
            max_pixels=self._config.max_pixels,
            full_decode=self._config.full_decode,
        )
        return Outcome(url, download, verdict)

    def process(self, element, shards: int):
        shard, pieces = element
        tasks = pa.concat_tables([read_piece(p) for p in pieces]).sort_by("ImageID")
        name = f"images-{shard:05d}-of-{shards:05d}"
        path = f"{self._shards_dir}/{name}.tar"
        writer = ShardWriter(path)
        statuses, index = [], []
        counts: collections.Counter[str] = collections.Counter()
        try:
            window = 2 * self._config.concurrency
            rows = tasks.to_pylist()
            for row, outcome in ordered(self._pool, self._fetch_one, rows, window):
                status = status_row(outcome, f"{name}.tar")
                statuses.append(status)
                counts[status["status"]] += 1
                self._count(status)
                if status["status"] == contract.OK:
                    ext = contract.FORMAT_EXTENSIONS.get(status["format"], "bin")
                    image, meta = writer.add_sample(
                        row["ImageID"],
                        ext,
                        outcome.download.data,
                        sample_json(row, status),
                    )
                    index.append(
                        (
                            row["ImageID"],
                            f"{name}.tar",
                            image.name,
                            image.offset,
                            image.size,
                            meta.name,
                            meta.offset,
                            meta.size,
                        )
                    )
            size, crc = writer.commit()
        except BaseException:
            writer.abort()
            raise
        yield shard, _with_status(tasks, statuses)
        yield beam.pvalue.TaggedOutput("index", (shard, _index_table(index)))
        yield beam.pvalue.TaggedOutput(
            "written", WrittenFile("shards", path, writer.samples, size, f"crc32:{crc}")
        )
        if self._progress_dir:
            TALLY.publish(self._progress_dir)
        for status_name, n in sorted(counts.items()):
            yield beam.pvalue.TaggedOutput("counts", Count(f"status:{status_name}", n))

    def _count(self, status: dict) -> None:
        ok = status["status"] == contract.OK
        self._metrics["images"].inc()
        self._metrics["ok" if ok else "failed"].inc()
        self._metrics["bytes"].inc(status["bytes"])
        TALLY.add(ok, status["bytes"], publish_to=self._progress_dir)
        if time.monotonic() - self._logged > 30:
            self._logged = time.monotonic()
            _LOG.info(TALLY.line())


def _with_status(tasks: pa.Table, statuses: list[dict]) -> pa.Table:
    for f in contract.STATUS_FIELDS:
        tasks = tasks.append_column(f, pa.array([s[f.name] for s in statuses], f.type))
    return tasks


def _index_table(rows: list[tuple]) -> pa.Table:
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
    """PCollection[(bucket, pa.Table)] of selected images -> dict:
    images = (shard, pa.Table images + status columns), index = (shard,
    pa.Table SHARD_INDEX), written = WrittenFile per shard tar (a gap-free
    set), counts = Count per status and "selected", shards = the shard count
    (one int). Local runs give a `progress_dir` on this machine, where the
    workers publish their counts for the command line's progress line."""

    def __init__(
        self,
        config: FetchConfig,
        shards_dir: str,
        exchange: str,
        progress_dir: str | None = None,
    ) -> None:
        super().__init__()
        self._config = config
        self._shards_dir = shards_dir
        self._exchange = exchange
        self._progress_dir = progress_dir

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
            >> beam.ParDo(
                _FetchShardFn(self._config, self._shards_dir, self._progress_dir),
                beam.pvalue.AsSingleton(shards),
            )
            .with_output_types(
                tuple[int, pa.Table],
                index=tuple[int, pa.Table],
                written=WrittenFile,
                counts=Count,
            )
            .with_outputs("index", "written", "counts", main="images")
        )
        gaps = shards | "FillShardGaps" >> beam.FlatMap(
            _missing_shards, beam.pvalue.AsList(fetched.written), self._shards_dir
        ).with_output_types(WrittenFile)
        selected_count = totals | "CountSelected" >> beam.Map(
            _selected
        ).with_output_types(Count)
        return {
            "images": fetched.images,
            "index": fetched.index,
            "written": (fetched.written, gaps) | "AllShards" >> beam.Flatten(),
            "counts": (fetched.counts, selected_count) | "AllCounts" >> beam.Flatten(),
            "shards": shards,
        }
