"""One selected image's work: fetch it or copy it from an earlier snapshot;
verify it; describe the outcome as a status row.

A task is an images-table row, optionally planned by a refresh: `_plan` is
`fetch` (the default) or `copy` (the bytes are in the previous snapshot's own
shard at `_prev_tar`/`_prev_offset`/`_prev_size`: read them there, never from
the network; if they no longer verify, fetch after all). `share` and `keep`
tasks (bytes left in a pooled shard; a failure not worth retrying, whose
previous status columns `_prev_<column>` carry over) never reach a
TaskRunner: refresh/share_shards writes their rows.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import logging
import re
from dataclasses import dataclass, field
from string import Formatter

import pyarrow as pa

from oibeam.schemas import fetch as contract
from oibeam.transforms.common import files
from oibeam.transforms.fetch.fetcher import Download, FetchPolicy, HttpFetcher
from oibeam.transforms.fetch.gcs_fetch import GcsFetcher
from oibeam.transforms.fetch.image_check import (
    DEFAULT_MAX_DECODE_MEMORY,
    DEFAULT_MAX_PIXELS,
    Verdict,
    check_image,
)

_LOG = logging.getLogger(__name__)

PLAN = "_plan"
FETCH, COPY, KEEP, SHARE = "fetch", "copy", "keep", "share"
PREVIOUS = "_prev_"
PREV_TAR, PREV_OFFSET, PREV_SIZE = "_prev_tar", "_prev_offset", "_prev_size"
# The rest of the image's previous shard index row (PREVIOUS + "shard", a
# status column, names its shard): a shared image's row in the new index.
PREV_INDEX = {
    "member": PREVIOUS + "member",
    "json_member": PREVIOUS + "json_member",
    "json_offset": PREVIOUS + "json_offset",
    "json_size": PREVIOUS + "json_size",
}
_IMAGE_ID = re.compile(r"^[0-9a-f]{16}$")

# The columns a refresh adds to a task (see the module docstring).
INTERNAL_FIELDS: list[pa.Field] = [
    pa.field(PLAN, pa.string()),
    pa.field(PREV_TAR, pa.string()),
    pa.field(PREV_OFFSET, pa.int64()),
    pa.field(PREV_SIZE, pa.int64()),
    pa.field(PREV_INDEX["member"], pa.string()),
    pa.field(PREV_INDEX["json_member"], pa.string()),
    pa.field(PREV_INDEX["json_offset"], pa.int64()),
    pa.field(PREV_INDEX["json_size"], pa.int64()),
    *(
        f.with_name(PREVIOUS + f.name).with_nullable(True)
        for f in contract.STATUS_FIELDS
    ),
]


@dataclass(frozen=True)
class FetchConfig:
    """How images are fetched and verified (flag names in brackets)."""

    source: str = "original"  # original | thumbnail [--source]
    url_template: str | None = None  # e.g. gs://mirror/{Subset}/{ImageID}.jpg
    verify: str = "auto"  # auto | md5 | decode [--verify]
    concurrency: int = 16  # requests in flight per worker [--concurrency]
    policy: FetchPolicy = field(default_factory=FetchPolicy)
    max_pixels: int = DEFAULT_MAX_PIXELS  # [--max-pixels]
    # bytes one full decode may hold [--max-decode-memory]
    max_decode_memory: int = DEFAULT_MAX_DECODE_MEMORY
    full_decode: bool = False  # decode even MD5-verified images [--full-decode]
    shard_bytes: int = 256 << 20  # target bytes per shard [--shard-bytes]

    def __post_init__(self) -> None:
        if self.source not in ("original", "thumbnail"):
            raise ValueError("the image source is original or thumbnail")
        if self.verify not in ("auto", "md5", "decode"):
            raise ValueError("--verify is auto, md5 or decode")
        if self.concurrency < 1 or self.shard_bytes < 1:
            raise ValueError("--concurrency and --shard-bytes must be >= 1")
        if self.max_decode_memory < 1:
            raise ValueError("--max-decode-memory must be >= 1")

    def check_template(self, columns: list[str]) -> None:
        """ValueError unless the URL template is text with {Column} fields that
        name columns the images have (nothing else: no {}, {0}, {a.b}, {a[0]},
        conversions or format specs)."""
        if not self.url_template:
            return
        try:
            fields = list(Formatter().parse(self.url_template))
        except ValueError as e:  # a lone { or }
            raise ValueError(f"--url-template {self.url_template!r}: {e}") from None
        names = set()
        for _, name, spec, conversion in fields:
            if name is None:
                continue
            if not name.isidentifier() or spec or conversion:
                raise ValueError(
                    f"--url-template {self.url_template!r}: "
                    f"{{{name}{'!' + conversion if conversion else ''}"
                    f"{':' + spec if spec else ''}}} is not a {{Column}} field "
                    "(write a column name in braces, e.g. {ImageID}; {{ and }} "
                    "for braces themselves)"
                )
            names.add(name)
        unknown = sorted(names - set(columns))
        if unknown:
            raise ValueError(
                f"--url-template names unknown column(s) {', '.join(unknown)}; "
                f"columns: {', '.join(columns)}"
            )

    def outcome_key(self) -> str:
        """The options that decide what a task yields (not how fast or how
        patiently): a shard done under the same key need not be redone."""
        return repr(
            (
                self.source,
                self.url_template,
                self.verify,
                self.max_pixels,
                self.max_decode_memory,
                self.full_decode,
            )
        )

    def same_bytes_as(self, other: dict) -> bool:
        """Whether an earlier run with these fetch options (as in its manifest)
        downloaded the same bytes: same URL choice and verification."""
        return all(
            other.get(name) == getattr(self, name)
            for name in ("source", "url_template", "verify")
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


@dataclass
class Result:
    """A task's status row (STATUS_COLUMNS but `shard`) and, if ok, its bytes."""

    status: dict
    data: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.status["status"] == contract.OK


def status_row(url: str | None, download: Download, verdict: Verdict | None) -> dict:
    verdict = verdict or Verdict()
    failed = download.status or verdict.status
    return {
        "status": failed or contract.OK,
        "error": download.error if not download.ok else verdict.error,
        "retryable": download.retryable if not download.ok else False,
        "http_status": download.http_status,
        "attempts": download.attempts,
        "elapsed_ms": download.elapsed_ms,
        "bytes": len(download.data) if download.data is not None else 0,
        "url": url,
        "md5_ok": verdict.md5_ok,
        "checked": None if failed else verdict.checked,
        "format": verdict.format,
        "mode": verdict.mode,
        "width": verdict.width,
        "height": verdict.height,
        "exif_orientation": verdict.exif_orientation,
        "display_width": verdict.display_width,
        "display_height": verdict.display_height,
        "shard": None,
    }


class TaskRunner:
    """Runs tasks (thread-safe): one per worker, built in DoFn.setup()."""

    def __init__(self, config: FetchConfig) -> None:
        self.config = config
        self.http = HttpFetcher(config.policy)
        self.gcs = GcsFetcher(config.policy)

    def close(self) -> None:
        self.http.close()

    def run(self, row: dict) -> Result:
        if not _IMAGE_ID.match(row.get("ImageID") or ""):  # it names tar members
            failure = Download(
                status="refused", error="ImageID is not 16 lowercase hex digits"
            )
            return Result(status_row(None, failure, None))
        plan = row.get(PLAN) or FETCH
        if plan == COPY:
            result = self._copy(row)
            if result.ok:
                return result
            _LOG.warning(
                "%s: the earlier snapshot's bytes no longer verify (%s); fetching",
                row["ImageID"],
                result.status["error"],
            )
        return self._fetch(row)

    def _verify(self, row: dict, url, download: Download, md5: bool) -> Result:
        verdict = check_image(
            download.data,
            download.md5,
            row.get("OriginalSize") if md5 else None,
            row.get("OriginalMD5") if md5 else None,
            rotation=row.get("Rotation"),
            max_pixels=self.config.max_pixels,
            max_decode_memory=self.config.max_decode_memory,
            full_decode=self.config.full_decode,
        )
        status = status_row(url, download, verdict)
        ok = status["status"] == contract.OK
        return Result(status, download.data if ok else None)

    def _fetch(self, row: dict) -> Result:
        url, md5 = target(row, self.config)
        if url is None:
            failure = Download(status="refused", error="no URL")
            return Result(status_row(None, failure, None))
        fetcher = self.gcs if url.startswith("gs://") else self.http
        download = fetcher.fetch(url)
        if not download.ok:
            return Result(status_row(url, download, None))
        return self._verify(row, url, download, md5)

    def _copy(self, row: dict) -> Result:
        try:
            with files.open(row[PREV_TAR]) as handle:
                handle.seek(row[PREV_OFFSET])
                data = handle.read(row[PREV_SIZE])
        except Exception as e:  # gone, unreadable: the caller fetches instead
            download = Download(status="error", error=f"{type(e).__name__}: {e}")
            return Result(status_row(None, download, None))
        download = Download(
            http_status=row.get(PREVIOUS + "http_status"),
            data=data,
            md5=hashlib.md5(data).digest(),
        )
        md5 = row.get(PREVIOUS + "checked") == contract.CHECKED_MD5
        return self._verify(row, row.get(PREVIOUS + "url"), download, md5)


def internal_columns(table: pa.Table) -> list[str]:
    return [c for c in table.column_names if c == PLAN or c.startswith(PREVIOUS)]


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


# What a shared shard's JSON member keeps of the row: what cannot change
# without the bytes changing too (labels, boxes, titles, authors can).
FROZEN_COLUMNS = ("ImageID", "OriginalMD5", "OriginalSize")


def sample_json(row: dict, status: dict, frozen: bool = False) -> bytes:
    """The `<ImageID>.json` member: the image's row (`frozen`: only
    FROZEN_COLUMNS of it) and what the fetch found."""
    keep = {
        k: v
        for k, v in row.items()
        if v is not None
        and k != PLAN
        and not k.startswith(PREVIOUS)
        and (not frozen or k in FROZEN_COLUMNS)
    }
    keep["fetch"] = {
        k: status[k]
        for k in contract.STATUS_COLUMNS
        if k not in contract.RUN_COLUMNS
        and status[k] is not None
        and not (frozen and k == "shard")  # the tar it sits in says that
    }
    return json.dumps(
        keep, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    ).encode()
