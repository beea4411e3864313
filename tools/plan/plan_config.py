"""What `oibeam plan` does besides selecting: the probe and the projection
(no Beam; the command line builds it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from oibeam.tools.plan.projection import Prices, Throughput

DEFAULT_SAMPLE = 200
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class PlanOptions:
    """[--probe, --probe-seed, --probe-timeout, --workers, prices, throughput]"""

    probe: int = DEFAULT_SAMPLE  # URLs probed; 0: no probe
    probe_seed: int = 0
    probe_timeout: float = DEFAULT_TIMEOUT  # seconds for the whole probe
    workers: int = 8
    throughput: Throughput = field(default_factory=Throughput)
    prices: Prices = field(default_factory=Prices)

    def __post_init__(self) -> None:
        if self.probe < 0 or self.workers < 1 or self.probe_timeout <= 0:
            raise ValueError("--probe >= 0, --workers >= 1, --probe-timeout > 0")
        if (
            min(self.throughput.images_per_second, self.throughput.megabytes_per_second)
            <= 0
            or min(self.prices.worker_hour, self.prices.storage_gb_month) < 0
        ):
            raise ValueError("throughputs must be > 0 and prices >= 0")


def plan_options(
    probe: int = DEFAULT_SAMPLE,
    probe_seed: int = 0,
    probe_timeout: float = DEFAULT_TIMEOUT,
    workers: int = 8,
    worker_images_per_second: float = Throughput.images_per_second,
    worker_mb_per_second: float = Throughput.megabytes_per_second,
    worker_hour_price: float = Prices.worker_hour,
    storage_gb_month_price: float = Prices.storage_gb_month,
    storage_months: float = Prices.months,
) -> PlanOptions:
    """PlanOptions from flat flag values."""
    return PlanOptions(
        probe,
        probe_seed,
        probe_timeout,
        workers,
        Throughput(worker_images_per_second, worker_mb_per_second),
        Prices(worker_hour_price, storage_gb_month_price, storage_months),
    )
