"""A polite probe of a sample of the selection: how much of it still answers.

Each sampled URL gets one ranged GET (`Range: bytes=0-0`) through the fetch's
own HttpFetcher, so the same address policy, redirects (a redirect to a
placeholder URL is gone), retries and per-host limits apply as in a fetch; a
206 states the object's size, which is compared with OriginalSize where the
fetch would verify it (a server that ignores Range sends the whole image,
which is then checked against OriginalMD5 and --placeholder-md5 as well; a
placeholder served in place, without a redirect, shows as changed). The
whole probe is bounded by `timeout` seconds: what has not answered by then is
counted as unfinished, apart from the shares. gs:// URLs are not probed.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import math
import statistics
import time

import numpy as np
import pyarrow as pa

from oibeam.transforms.common.arrow_util import combine
from oibeam.transforms.common.image_keys import mix64, parse_image_ids
from oibeam.transforms.fetch.download import Download
from oibeam.transforms.fetch.fetch_config import FetchPolicy
from oibeam.transforms.fetch.fetcher import HttpFetcher

OK, GONE, CHANGED, FAILED = "ok", "gone", "changed", "failed"
UNFINISHED, NOT_PROBED = "unfinished", "not_probed"
OUTCOMES = (OK, GONE, CHANGED, FAILED)
_Z95 = 1.959964
_RANK = "__rank"


def sample(selected: pa.Table, size: int, seed: int) -> pa.Table:
    """`size` rows of `selected` at random, in ImageID order: those whose
    ImageID ranks first under a hash seeded by `seed`. The same rows for the
    same selection and seed whatever their order, and the sample of parts'
    samples is the sample of their union, so a selection is sampled part by
    part."""
    if not selected.num_rows:
        return selected
    keys, _ = parse_image_ids(combine(selected["ImageID"]))
    salt = mix64(np.array([seed % (1 << 64)], dtype=np.uint64))[0]
    ranked = selected.append_column(_RANK, pa.array(mix64(keys ^ salt)))
    ranked = ranked.sort_by([(_RANK, "ascending"), ("ImageID", "ascending")])
    return ranked.slice(0, size).drop_columns([_RANK]).sort_by("ImageID")


def wilson(successes: int, trials: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    scale = 1 + z * z / trials
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


def judge(
    download: Download,
    original_size: int | None,
    original_md5: str | None,
    policy: FetchPolicy,
    verify: bool = True,
) -> tuple[str, str | None]:
    """(outcome, detail) of one probe: ok, gone, changed or failed; without
    `verify` (thumbnails, --verify decode) the size and MD5 are not compared,
    as the fetch would not compare them."""
    if not download.ok:
        if download.status == "gone":
            return GONE, download.error
        return FAILED, download.status
    if not verify:
        original_size = original_md5 = None
    size = download.total_size
    if original_size is not None and size is not None and size != original_size:
        return CHANGED, f"{size} bytes, OriginalSize {original_size}"
    if download.http_status == 200 and download.md5 is not None:
        if download.md5.hex() in policy.placeholder_md5:
            return GONE, "a known placeholder's bytes"
        md5 = base64.b64encode(download.md5).decode()
        if original_md5 and md5 != original_md5:
            return CHANGED, "MD5 differs from OriginalMD5"
    return OK, None


@dataclasses.dataclass
class HostProbe:
    """What the probe saw of one host."""

    probed: int = 0
    counts: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(OUTCOMES, 0)
    )
    failures: dict[str, int] = dataclasses.field(default_factory=dict)
    unfinished: int = 0
    not_probed: int = 0
    latencies_ms: list[int] = dataclasses.field(default_factory=list)

    def add(self, outcome: str, detail: str | None, elapsed_ms: int) -> None:
        self.probed += 1
        self.counts[outcome] += 1
        if outcome == FAILED:
            self.failures[detail or "error"] = (
                self.failures.get(detail or "error", 0) + 1
            )
        self.latencies_ms.append(elapsed_ms)

    def as_json(self) -> dict:
        answered = self.probed
        shares = {}
        for outcome in OUTCOMES:
            low, high = wilson(self.counts[outcome], answered)
            shares[outcome] = {
                "count": self.counts[outcome],
                "share": self.counts[outcome] / answered if answered else None,
                "ci95": [round(low, 4), round(high, 4)],
            }
        latencies = sorted(self.latencies_ms)
        return {
            "probed": answered,
            "unfinished": self.unfinished,
            "not_probed": self.not_probed,
            "outcomes": shares,
            "failures": dict(sorted(self.failures.items())),
            "latency_ms": {
                "median": statistics.median(latencies) if latencies else None,
                "p90": latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))]
                if latencies
                else None,
            },
        }


def probe(rows: pa.Table, policy: FetchPolicy, timeout: float) -> dict[str, HostProbe]:
    """Probe every row of `rows` (ImageID, url, host, OriginalSize,
    OriginalMD5) within `timeout` seconds; per host, what came back."""
    hosts: dict[str, HostProbe] = {}
    started = time.monotonic()
    # no single request may outlive the probe
    fetcher = HttpFetcher(
        dataclasses.replace(policy, deadline=min(policy.deadline, timeout)),
        seed=0,
        headers=("Range: bytes=0-0",),
    )
    pending = {}
    try:
        for row in rows.to_pylist():
            host = hosts.setdefault(row["host"], HostProbe())
            url = row["url"]
            if not url or not url.startswith(("http://", "https://")):
                host.not_probed += 1
                continue
            pending[fetcher.submit(url)] = row
        left = max(0.0, timeout - (time.monotonic() - started))
        done, not_done = concurrent.futures.wait(pending, timeout=left)
        for future in done:
            row = pending[future]
            download = future.result()
            outcome, detail = judge(
                download,
                row["OriginalSize"],
                row["OriginalMD5"],
                policy,
                row["verify"] is not False,
            )
            hosts[row["host"]].add(outcome, detail, download.elapsed_ms)
        for future in not_done:
            hosts[pending[future]["host"]].unfinished += 1
    finally:
        fetcher.abandon()  # what is still out is not waited for
    return hosts


def overall(hosts: dict[str, HostProbe]) -> HostProbe:
    """Every host's probes as one."""
    total = HostProbe()
    for host in hosts.values():
        total.probed += host.probed
        total.unfinished += host.unfinished
        total.not_probed += host.not_probed
        total.latencies_ms += host.latencies_ms
        for outcome, n in host.counts.items():
            total.counts[outcome] += n
        for reason, n in host.failures.items():
            total.failures[reason] = total.failures.get(reason, 0) + n
    return total
