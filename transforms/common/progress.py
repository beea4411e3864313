"""Live progress of a local run, stage by stage, with a total and a time
estimate: CSV bytes read, join buckets joined, images fetched. Beam counters
carry the same on every runner; this adds a line on the command line when the
run is local: a bar rewritten in place on a terminal, a log line every 15 s
when the output is piped.

Local workers may be threads or processes, so each worker process publishes
its counts to a small JSON file in a progress directory (at most twice a
second), and the launcher's ProgressPrinter sums the files. A total the
launcher cannot know (the images a selection picks) is published by the
pipeline as a file of its own. The counts are observational only: nothing
reads them to decide anything, which is why one counter per process is fine.
It serves one run at a time: its counts start again from zero when the next
run's progress directory comes into use (runs in one process, e.g. the in_memory
DirectRunner's threads, would otherwise start from the last run's counts).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass

_LOG = logging.getLogger(__name__)
_PUBLISH_EVERY = 0.5
_TOTAL = "total-{stage}.json"
_BAR = 20

READ, JOIN, FETCH = "read", "join", "fetch"
STAGES = (READ, JOIN, FETCH)  # the order a run goes through them
_UNITS = {READ: "MB of CSV read", JOIN: "buckets joined", FETCH: "images fetched"}


@dataclass
class StageCounts:
    done: int = 0  # bytes read, buckets joined, images fetched
    ok: int = 0  # images fetched and verified
    bytes: int = 0  # bytes fetched

    def add(self, other: StageCounts) -> None:
        self.done += other.done
        self.ok += other.ok
        self.bytes += other.bytes


class ProgressCounter:
    """What this process did so far in the current run, per stage (thread-safe).
    A run is known by its progress directory: the first `add` or `publish`
    naming another directory than the last starts the counts again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._publishing = threading.Lock()
        self._name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self._directory: str | None = None  # the run's, once named
        self._start()

    def _start(self) -> None:
        self._published = 0.0
        self._counts = {stage: StageCounts() for stage in STAGES}
        self.started = time.monotonic()

    def _use(self, directory: str) -> None:
        """Counts from zero when another run names its directory (under _lock);
        what was counted before any directory was named belongs to the first."""
        if self._directory not in (None, directory):
            self._start()
        self._directory = directory

    def add(
        self,
        stage: str,
        done: int = 1,
        ok: bool = False,
        size: int = 0,
        publish_to: str | None = None,
        at_once: bool = False,
    ) -> None:
        """Counts work done; publishes to `publish_to` (if given) at most
        twice a second, or now with `at_once`. Without `publish_to`, counts
        towards the run whose directory was named last."""
        with self._lock:
            if publish_to:
                self._use(publish_to)
            counts = self._counts[stage]
            counts.done += done
            counts.ok += int(ok)
            counts.bytes += size
            due = at_once or time.monotonic() - self._published > _PUBLISH_EVERY
        if publish_to and due:
            self.publish(publish_to)

    def snapshot(self) -> dict[str, StageCounts]:
        with self._lock:
            return {
                stage: StageCounts(**asdict(c)) for stage, c in self._counts.items()
            }

    def line(self) -> str:
        """This process's fetch so far (for log lines from a worker)."""
        fetched = self.snapshot()[FETCH]
        return describe(FETCH, fetched, None, time.monotonic() - self.started)

    def publish(self, directory: str) -> None:
        """Writes this process's counts to `directory` (atomically replaced)."""
        with self._publishing:  # worker threads of one process share the file
            with self._lock:
                self._use(directory)
                counts = {stage: asdict(c) for stage, c in self._counts.items()}
                self._published = time.monotonic()
            _write_json(directory, self._name, counts)


PROGRESS = ProgressCounter()


def _write_json(directory: str, name: str, value) -> None:
    os.makedirs(directory, exist_ok=True)
    temp = os.path.join(directory, f".{name}")
    with open(temp, "w") as f:
        json.dump(value, f)
    os.replace(temp, os.path.join(directory, name))


def publish_total(directory: str, stage: str, total: int) -> None:
    """The total of a stage that only the pipeline knows (images selected)."""
    _write_json(directory, _TOTAL.format(stage=stage), total)


def read_published(directory: str) -> tuple[dict[str, StageCounts], dict[str, int]]:
    """(the sum of every worker's published counts, totals the pipeline
    published), per stage."""
    counts = {stage: StageCounts() for stage in STAGES}
    totals: dict[str, int] = {}
    try:
        names = [n for n in os.listdir(directory) if n.endswith(".json")]
    except FileNotFoundError:
        return counts, totals
    for name in names:
        try:
            with open(os.path.join(directory, name)) as f:
                value = json.load(f)
        except (OSError, ValueError):
            continue  # being replaced right now: next time
        if name.startswith("total-"):
            totals[name.removeprefix("total-").removesuffix(".json")] = int(value)
            continue
        for stage, published in value.items():
            if stage in counts:
                counts[stage].add(StageCounts(**published))
    return counts, totals


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def describe(
    stage: str,
    counts: StageCounts,
    total: int | None,
    seconds: float,
    rate: float | None = None,
    byte_rate: float | None = None,
) -> str:
    """One stage's progress: a bar and the time left when its total is known
    (at `rate` units a second, else at the average rate over `seconds`);
    fetching, its rates too (none when `rate` is 0: not measured yet)."""
    seconds = max(seconds, 1e-9)
    done = counts.done
    if rate is None:
        rate = done / seconds
    if byte_rate is None:
        byte_rate = counts.bytes / seconds
    if stage == READ:
        amount = f"{done / 1e6:,.1f}" + (f"/{total / 1e6:,.1f}" if total else "")
    else:
        amount = f"{done:,}" + (f"/{total:,}" if total else "")
    parts = [f"{amount} {_UNITS[stage]}"]
    if total:
        share = min(done / total, 1.0)
        filled = round(share * _BAR)
        parts.insert(0, f"[{'#' * filled}{'-' * (_BAR - filled)}] {share:4.0%}")
    if stage == FETCH:
        fetched = f"ok {counts.ok:,}, failed {done - counts.ok:,}, "
        fetched += f"{counts.bytes / 1e6:,.1f} MB"
        if rate > 0:
            fetched += f", {rate:,.0f} images/s, {byte_rate / 1e6:,.1f} MB/s"
        parts.append(fetched)
    if total and 0 < done < total and rate > 0:
        parts.append(f"{_clock((total - done) / rate)} left")
    return "  ".join(parts)


class ProgressPrinter:
    """Prints the progress of the latest stage that has begun, every
    `interval` s: one rewritten line on a terminal, else a log line. `totals`
    are those the launcher knows (CSV bytes, join buckets). A context manager
    around a local run."""

    def __init__(
        self,
        directory: str,
        totals: dict[str, int] | None = None,
        interval: float | None = None,
        stream=None,
    ):
        self._directory = directory
        self._totals = dict(totals or {})
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._interval = interval or (0.5 if self._tty else 15.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        # first seen: (time, done, bytes)
        self._began: dict[str, tuple[float, int, int]] = {}
        self._width = 0

    def __enter__(self) -> ProgressPrinter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        line = self._line()
        if self._tty and line:
            self._show(line)
            self._stream.write("\n")

    def _line(self) -> str | None:
        counts, published = read_published(self._directory)
        totals = {**self._totals, **published}
        now = time.monotonic()
        for stage in STAGES:
            if counts[stage].done and stage not in self._began:
                self._began[stage] = (now, counts[stage].done, counts[stage].bytes)
        begun = [stage for stage in STAGES if stage in self._began]
        if not begun:
            return None
        stage = begun[-1]
        since, first, first_bytes = self._began[stage]
        seconds = now - since
        # The rates since the stage was first seen: what came before may have
        # arrived at once (a worker publishes twice a second at most), and a
        # stage first seen as it ended has no rate (0: none shown).
        if seconds > 0.5:
            rate = (counts[stage].done - first) / seconds
            byte_rate = (counts[stage].bytes - first_bytes) / seconds
        else:
            rate = byte_rate = 0.0
        return describe(
            stage, counts[stage], totals.get(stage), seconds, rate, byte_rate
        )

    def _show(self, line: str) -> None:
        padding = " " * max(0, self._width - len(line))  # wipe a longer line
        self._width = len(line)
        self._stream.write("\r" + line + padding)
        self._stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            line = self._line()
            if line is None:
                continue
            if self._tty:
                self._show(line)
            else:
                _LOG.info(line)
