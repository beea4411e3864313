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

import hashlib
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa

from oibeam.schemas import fetch as contract
from oibeam.transforms.common import files
from oibeam.transforms.dedup.phash import phash_bytes
from oibeam.transforms.fetch import placeholders
from oibeam.transforms.fetch.download import Download
from oibeam.transforms.fetch.fetch_config import FetchConfig
from oibeam.transforms.fetch.fetcher import HttpFetcher
from oibeam.transforms.fetch.gcs_fetch import GcsFetcher
from oibeam.transforms.fetch.image_check import Verdict, check_image, md5_base64

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
    received_md5: str | None = None  # of bytes that came but were not ok

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
        "md5": None,
        "phash": None,
    }


class _Done:
    """A task whose result is known when it starts."""

    future = None  # nothing in flight

    def __init__(self, result: Result) -> None:
        self._result = result

    def result(self) -> Result:
        return self._result


class _Later:
    """A task run when its result is asked for (in the asking thread)."""

    future = None

    def __init__(self, run, row: dict) -> None:
        self._run, self._row = run, row

    def result(self) -> Result:
        return self._run(self._row)


class _Fetching:
    """A download in flight; result() waits for it and verifies its bytes in
    the asking thread (the fetch loop only moves bytes)."""

    def __init__(self, runner, row: dict, url: str, md5: bool, future) -> None:
        self._runner, self._row, self._url, self._md5 = runner, row, url, md5
        self.future = future  # of the Download

    def result(self) -> Result:
        download = self.future.result()
        if not download.ok:
            return Result(status_row(self._url, download, None))
        return self._runner._verify(self._row, self._url, download, self._md5)


class TaskRunner:
    """Runs tasks (thread-safe): one per worker, built in DoFn.setup().
    start(row) begins a task and returns what gives its Result; http(s)
    downloads of every started task proceed at once on one fetch loop."""

    def __init__(self, config: FetchConfig) -> None:
        self.config = config
        self.http = HttpFetcher(config.policy)
        self.gcs = GcsFetcher(config.policy)
        self._gcs_pool: ThreadPoolExecutor | None = None  # blocking gs:// reads

    def close(self) -> None:
        self.http.close()
        if self._gcs_pool is not None:
            self._gcs_pool.shutdown(wait=True)

    def run(self, row: dict) -> Result:
        return self.start(row).result()

    def start(self, row: dict):
        """The task begun: an object whose result() gives its Result."""
        if not _IMAGE_ID.match(row.get("ImageID") or ""):  # it names tar members
            failure = Download(
                status="refused", error="ImageID is not 16 lowercase hex digits"
            )
            return _Done(Result(status_row(None, failure, None)))
        if (row.get(PLAN) or FETCH) == COPY:
            return _Later(self._copy_or_fetch, row)
        url, md5 = target(row, self.config)
        if url is None:
            failure = Download(status="refused", error="no URL")
            return _Done(Result(status_row(None, failure, None)))
        if url.startswith("gs://"):
            if self._gcs_pool is None:
                self._gcs_pool = ThreadPoolExecutor(
                    min(32, self.config.concurrency), thread_name_prefix="oibeam-gcs"
                )
            future = self._gcs_pool.submit(self.gcs.fetch, url)
        else:
            future = self.http.submit(url)
        return _Fetching(self, row, url, md5, future)

    def _copy_or_fetch(self, row: dict) -> Result:
        result = self._copy(row)
        if result.ok:
            return result
        _LOG.warning(
            "%s: the earlier snapshot's bytes no longer verify (%s); fetching",
            row["ImageID"],
            result.status["error"],
        )
        fresh = dict(row)
        fresh[PLAN] = FETCH
        return self.start(fresh).result()

    def _verify(self, row: dict, url, download: Download, md5: bool) -> Result:
        if placeholders.known(download.md5, self.config.policy.placeholder_md5):
            gone = Download(
                status=contract.GONE,
                error=f"a known placeholder image (md5 {download.md5.hex()})",
                http_status=download.http_status,
                attempts=download.attempts,
                elapsed_ms=download.elapsed_ms,
            )
            return Result(status_row(url, gone, None))
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
        if status["status"] == contract.OK:
            status["md5"] = md5_base64(download.md5)
            if self.config.phash:
                status["phash"] = _phash(row, download.data, verdict, self.config)
            return Result(status, download.data)
        return Result(status, None, download.md5.hex() if download.md5 else None)

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


def _phash(row: dict, data: bytes, verdict: Verdict, config: FetchConfig):
    """The perceptual hash of an ok image, upright; None if its pixels cannot
    be read within --max-decode-memory (its bytes were verified all the
    same: the image stays ok)."""
    try:
        return phash_bytes(
            data,
            verdict.exif_orientation,
            row.get("Rotation"),
            config.max_decode_memory,
        )
    except Exception as e:  # a verified file whose pixels are cut or corrupt
        _LOG.info("%s: no perceptual hash: %s: %s", row["ImageID"], type(e).__name__, e)
        return None


def internal_columns(table: pa.Table) -> list[str]:
    return [c for c in table.column_names if c == PLAN or c.startswith(PREVIOUS)]


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
