"""Live fetch progress: Beam counters on every runner, plus a process-wide tally
that the command line shows as a progress line when the run is local.

The tally is observational only (nothing reads it to decide anything), which is
why a process-wide object is acceptable here.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

_LOG = logging.getLogger(__name__)


class FetchTally:
    """Images fetched so far in this process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.images = self.ok = self.bytes = 0
            self.started = time.monotonic()

    def add(self, ok: bool, size: int) -> None:
        with self._lock:
            self.images += 1
            self.ok += int(ok)
            self.bytes += size

    def line(self, total: int | None = None) -> str:
        with self._lock:
            images, ok, size = self.images, self.ok, self.bytes
            seconds = max(time.monotonic() - self.started, 1e-9)
        done = f"{images:,}" if total is None else f"{images:,}/{total:,}"
        return (
            f"fetched {done} images: ok {ok:,}, failed {images - ok:,}, "
            f"{size / 1e6:,.1f} MB, {images / seconds:,.0f} images/s, "
            f"{size / 1e6 / seconds:,.1f} MB/s"
        )


TALLY = FetchTally()


class ProgressPrinter:
    """Prints TALLY every `interval` s: one rewritten line on a terminal, else a
    log line. Use as a context manager around a local pipeline run."""

    def __init__(self, interval: float | None = None, stream=None) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._interval = interval or (0.5 if self._tty else 15.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProgressPrinter:
        TALLY.reset()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self._tty and TALLY.images:
            self._stream.write("\r" + TALLY.line() + "\n")

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if not TALLY.images:
                continue
            if self._tty:
                self._stream.write("\r" + TALLY.line())
                self._stream.flush()
            else:
                _LOG.info(TALLY.line())
