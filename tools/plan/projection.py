"""How long a fetch of the selection would take on N workers, what it would
write and what it would cost, from measured throughput and list prices.

Defaults, each a flag of `oibeam plan`:
- throughput of one 2-core worker: 275 images/s and 130 MB/s, whichever binds
  first. Measured 2026-12-06 (benchmarks/README.md, "Fetch at the speed of the
  network"): 275 images/s over an 80 ms network with BBR, 460 KB images;
  130 MB/s is the low end of 130-230 MB/s per 2-core worker that the same runs
  moved. Real originals average 2.14 MB (1,000 V3 rows), so bytes bind first.
- prices: Google Cloud list prices for us-central1 as of 2025 (no network
  here to check them on the day; use yours): a Dataflow batch worker of 2 vCPU
  and 7.5 GB (n1-standard-2) at $0.056 per vCPU-hour and $0.003557 per
  GB-hour = $0.1387 per hour; Cloud Storage Standard, regional, $0.020 per
  GB-month. Egress is not counted: fetching from the origin into a cloud
  region is ingress, which is free there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

PRICES_AS_OF = "2025 Google Cloud list prices, us-central1 (check yours)"


@dataclass(frozen=True)
class Throughput:
    """What one worker fetches per second, in images and in bytes."""

    images_per_second: float = 275.0
    megabytes_per_second: float = 130.0

    def images_per_second_at(self, mean_bytes: float) -> float:
        by_bytes = self.megabytes_per_second * 1e6 / mean_bytes if mean_bytes else None
        return min(self.images_per_second, by_bytes or self.images_per_second)


@dataclass(frozen=True)
class Prices:
    """USD: a worker-hour and a GB-month of stored output."""

    worker_hour: float = 0.1387
    storage_gb_month: float = 0.020
    months: float = 1.0


def project(
    images: int,
    sized: int,
    selected_bytes: int,
    ok_share: float | None,
    workers: int,
    throughput: Throughput,
    prices: Prices,
) -> dict:
    """The projection as plan.json has it: hours, bytes written, cost.
    `sized`: the images with an OriginalSize, whose sizes sum to
    `selected_bytes` (the others are assumed of their mean size)."""
    mean = selected_bytes / sized if sized else 0.0
    per_worker = throughput.images_per_second_at(mean)
    seconds = images / (workers * per_worker) if images else 0.0
    hours = seconds / 3600
    share = 1.0 if ok_share is None else ok_share
    written = int(mean * images * share)
    worker_cost = workers * hours * prices.worker_hour
    storage_cost = written / 1e9 * prices.storage_gb_month * prices.months
    return {
        "workers": workers,
        "throughput": asdict(throughput),
        "images_per_second_per_worker": round(per_worker, 2),
        "mean_image_bytes": round(mean),
        "hours": round(hours, 3),
        "ok_share_assumed": share,
        "bytes_written": written,
        "prices": {**asdict(prices), "as_of": PRICES_AS_OF},
        "cost_usd": {
            "workers": round(worker_cost, 4),
            "storage": round(storage_cost, 4),
            "total": round(worker_cost + storage_cost, 4),
        },
    }
