"""Live fetch progress: Beam counters on every runner, plus a progress line on
the command line when the run is local.

Local workers may be threads or processes, so each worker process publishes its
tally to a small JSON file in a progress directory (at most twice a second),
and the launcher's ProgressPrinter sums the files. The tally is observational
only: nothing reads it to decide anything, which is why one per process is fine.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass

_LOG = logging.getLogger(__name__)
_PUBLISH_EVERY = 0.5


@dataclass
class Snapshot:
    images: int = 0
    ok: int = 0
    bytes: int = 0

    def add(self, other: Snapshot) -> None:
        self.images += other.images
        self.ok += other.ok
        self.bytes += other.bytes


def describe(snapshot: Snapshot, seconds: float) -> str:
    seconds = max(seconds, 1e-9)
    return (
        f"fetched {snapshot.images:,} images: ok {snapshot.ok:,}, failed "
        f"{snapshot.images - snapshot.ok:,}, {snapshot.bytes / 1e6:,.1f} MB, "
        f"{snapshot.images / seconds:,.0f} images/s, "
        f"{snapshot.bytes / 1e6 / seconds:,.1f} MB/s"
    )


class ProgressCounter:
    """Images fetched so far in this process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._publishing = threading.Lock()
        self._name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self._published = 0.0
        self._counts = Snapshot()
        self.started = time.monotonic()

    def add(self, ok: bool, size: int, publish_to: str | None = None) -> None:
        with self._lock:
            self._counts.images += 1
            self._counts.ok += int(ok)
            self._counts.bytes += size
            due = time.monotonic() - self._published > _PUBLISH_EVERY
        if publish_to and due:
            self.publish(publish_to)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self._counts.images, self._counts.ok, self._counts.bytes)

    def line(self) -> str:
        return describe(self.snapshot(), time.monotonic() - self.started)

    def publish(self, directory: str) -> None:
        """Writes this process's counts to `directory` (atomically replaced)."""
        with self._publishing:  # worker threads of one process share the file
            counts = self.snapshot()
            self._published = time.monotonic()
            os.makedirs(directory, exist_ok=True)
            temp = os.path.join(directory, f".{self._name}")
            with open(temp, "w") as f:
                json.dump(counts.__dict__, f)
            os.replace(temp, os.path.join(directory, self._name))


TALLY = ProgressCounter()


def read_published(directory: str) -> Snapshot:
    """The sum of every worker's published counts."""
    total = Snapshot()
    try:
        names = [n for n in os.listdir(directory) if n.endswith(".json")]
    except FileNotFoundError:
        return total
    for name in names:
        try:
            with open(os.path.join(directory, name)) as f:
                total.add(Snapshot(**json.load(f)))
        except (OSError, ValueError):
            continue  # being replaced right now: next time
    return total


class ProgressPrinter:
    """Prints the published counts every `interval` s: one rewritten line on a
    terminal, else a log line. A context manager around a local run."""

    def __init__(self, directory: str, interval: float | None = None, stream=None):
        self._directory = directory
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._interval = interval or (0.5 if self._tty else 15.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> ProgressPrinter:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        line = self._line()
        if self._tty and line:
            self._stream.write("\r" + line + "\n")

    def _line(self) -> str | None:
        counts = read_published(self._directory)
        if not counts.images:
            return None
        return describe(counts, time.monotonic() - self._started)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            line = self._line()
            if line is None:
                continue
            if self._tty:
                self._stream.write("\r" + line)
                self._stream.flush()
            else:
                _LOG.info(line)
