"""Running oibeam in-process from tests: a local TestPipeline, the CLI, a tables
run read back."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline

from oibeam.pipelines.cli import main as cli_main


def local_pipeline() -> TestPipeline:
    """A TestPipeline on the in-process runner (never Prism, never a download)."""
    return TestPipeline(runner="FnApiRunner", options=None)


class TablesRun:
    """The outputs of one `oibeam tables` run, read back."""

    def __init__(self, root: Path, exit_code: int) -> None:
        self.root = root
        self.exit_code = exit_code

    @property
    def manifest(self) -> dict:
        return json.loads((self.root / "manifest.json").read_text())

    def table(self, name: str) -> pa.Table:
        return pq.read_table(self.root / "tables" / name)

    def rows(self, name: str) -> list[dict]:
        return self.table(name).to_pylist()

    def rows_at(self, path: str) -> list[dict]:
        """Rows of a Parquet dataset at a path under the run root."""
        return pq.read_table(self.root / path).to_pylist()


def run_cli(*args: str) -> int:
    return cli_main([str(a) for a in args])
