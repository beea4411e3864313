"""DoFns of the tiny pipelines tests/pipelines/test_dask_runner.py runs on a
dask cluster, in a module the workers import (DaskCluster puts tests/ on
their path)."""

from __future__ import annotations

import uuid
from pathlib import Path

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue


class Record(beam.DoFn):
    """A sink: one file per element it sees, under DIR/<name>/."""

    def __init__(self, directory: str, name: str) -> None:
        self._dir = Path(directory) / name

    def process(self, element):
        self._dir.mkdir(parents=True, exist_ok=True)
        (self._dir / f"{element}.{uuid.uuid4().hex}").touch()
        yield element


class Split(beam.DoFn):
    def process(self, n: int):
        yield beam.pvalue.TaggedOutput("odd", n) if n % 2 else n


class AtTheEnd(beam.DoFn):
    """Emits what it was given when its bundle finishes (as FetchImages'
    overlapped shards do)."""

    def start_bundle(self):
        self._held = []

    def process(self, n: int):
        self._held.append(n)

    def finish_bundle(self):
        for n in self._held:
            yield WindowedValue(n, MIN_TIMESTAMP, [GlobalWindow()])
