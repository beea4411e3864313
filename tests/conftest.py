"""Shared fixtures: fixture paths, a local TestPipeline, running the CLI in-process."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import gcs_preconditions
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from fault_server import FaultServer

from pipelines.cli import main as cli_main
from transforms import anonymous_gcs_for_an_emulator

FIXTURES = Path(__file__).parent / "fixtures"
REAL = FIXTURES / "realdata" / "openimages"
V3 = REAL / "v3_2017_11"
V3_IMAGES = V3 / "train" / "images.csv"
V3_HUMAN = V3 / "train" / "annotations-human.csv"
V3_MACHINE = V3 / "train" / "annotations-machine.csv"
V3_CLASSES = V3 / "class-descriptions.csv"
V1_DICT = REAL / "v1_2016_08" / "dict.csv"
# Real image files (see images/PROVENANCE.md), served by `fault_server`.
IMAGES = FIXTURES / "images"

# Never wait ~40 s for cloud credentials that do not exist on a test machine.
os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "oibeam-tests")


def local_pipeline() -> TestPipeline:
    """A TestPipeline on the in-process runner (never Prism, never a download)."""
    return TestPipeline(runner="FnApiRunner", options=None)


@pytest.fixture
def pipeline():
    return local_pipeline()


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


@pytest.fixture
def run_tables(tmp_path):
    """Runs `oibeam tables` in-process into a fresh directory; returns TablesRun."""
    count = 0

    def run(*args, output: Path | None = None) -> TablesRun:
        nonlocal count
        count += 1
        out = output or tmp_path / f"run{count}"
        code = run_cli("tables", *args, "--output", out)
        return TablesRun(out, code)

    return run


@pytest.fixture(scope="session")
def fault_server():
    """A running FaultServer (tests/fault_server.py) on 127.0.0.1, shared by the
    session, serving every image in tests/fixtures/images under its file name
    (e.g. `fault_server.url("/img/pillow_tests_hopper.png")`).

    Shared state: a test that counts requests or relies on the flaky/ratelimit
    counters uses a unique query string (`?t=<test name>`) or calls `reset()`.
    """
    server = FaultServer()
    for path in sorted(IMAGES.iterdir()):
        if path.is_file() and path.suffix != ".md":
            server.add(path.name, path.read_bytes())
    with server:
        yield server


@pytest.fixture(scope="session")
def gcs_emulator():
    """A GCS emulator on 127.0.0.1 (gcp-storage-emulator), with bucket `mirror`,
    that honours ifGenerationMatch (tests/gcs_preconditions.py).

    Sets STORAGE_EMULATOR_HOST for the session, so google-cloud-storage (and
    Beam's GCS filesystem) talk to it; yields an anonymous storage client.
    """
    from gcp_storage_emulator.server import create_server
    from google.cloud import storage

    gcs_preconditions.enable()  # as real GCS does; the emulator alone ignores them
    logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)
    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket="mirror")
    server.start()
    port = server._api._httpd.server_address[1]
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    anonymous_gcs_for_an_emulator()  # transforms was imported before this was set
    try:
        yield storage.Client.create_anonymous_client()
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
