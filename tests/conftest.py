"""Shared fixtures: a local TestPipeline, tables runs, the fault server, a GCS
emulator."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import apache_beam  # noqa: F401 (loaded first: importing oibeam.transforms sets it up)
import pytest

from oibeam.transforms.common.beam_setup import set_up_beam
from oibeam.transforms.common.gcs_client import anonymous_gcs_for_an_emulator

from support import gcs_preconditions
from support.fault_server import FaultServer
from support.paths import IMAGES
from support.runs import TablesRun, local_pipeline, run_cli

# Never wait ~40 s for cloud credentials that do not exist on a test machine.
os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "oibeam-tests")
set_up_beam()  # whichever test module imported oibeam.transforms first


@pytest.fixture
def pipeline():
    return local_pipeline()


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
    """A running FaultServer (tests/support/fault_server.py) on 127.0.0.1, shared
    by the session, serving every image in tests/fixtures/images under its file
    name (e.g. `fault_server.url("/img/pillow_tests_hopper.png")`).

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
    that honours ifGenerationMatch (tests/support/gcs_preconditions.py).

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
