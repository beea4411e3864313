"""Log filters of the command line (no Beam import here)."""

from __future__ import annotations

import logging


class QuietBeamNoise(logging.Filter):
    """Drops Beam log lines that are wrong or harmless for oibeam's local runs:
    that in_memory mode ignores direct_num_workers (FnApiRunner does run those
    workers, as threads: measured 1.3-1.4x), that worker processes have no
    semi-persistent directory (oibeam registers no schema or logical type)."""

    NOISE = (
        "direct_num_workers is not equal to 1",
        "No semi_persistent_directory found",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in self.NOISE)
