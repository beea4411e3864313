"""The same snapshot on every runner a user runs it on, byte for byte.

In-process FnApiRunner (the local default), the DirectRunner's multi-processing
mode, and the portable path Flink and Dataflow workers use: Beam's Python job
service with LOOPBACK workers and with EXTERNAL workers from a worker pool.
Identical outputs prove that everything pickles and that nothing relies on
process-global state. DataflowRunner builds the job offline (--dry_run).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oibeam.pipelines.options.beam_commands import SnapshotConfig, snapshot_parser
from oibeam.pipelines.snapshot import run_snapshot

from support.runs import run_cli
from support.snapshot_release import (
    Photo,
    Release,
    comparable,
    manifest,
    shard_paths,
)

pytestmark = pytest.mark.slow

TABLES = ("images", "labels", "label_counts", "label_stats", "diff", "errors")
FLAGS = ["--allow-private-hosts", "--retries", "1", "--shard-bytes", "4000"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(module: str, port_flag: str, log: Path):
    """Starts a Beam service module on a free port; (process, port)."""
    port = _free_port()
    env = dict(os.environ)
    # The worker pool starts workers with `python` from PATH: ours.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    process = subprocess.Popen(
        [sys.executable, "-m", module, f"{port_flag}={port}"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(
                    f"{module} did not start: {log.read_text()}"
                ) from None
            time.sleep(0.2)


@pytest.fixture(scope="module")
def job_service(tmp_path_factory):
    log = tmp_path_factory.mktemp("services") / "job_service.log"
    process, port = _serve(
        "apache_beam.runners.portability.local_job_service_main", "--port", log
    )
    yield f"localhost:{port}"
    process.kill()
    process.wait()


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory):
    log = tmp_path_factory.mktemp("services") / "worker_pool.log"
    process, port = _serve(
        "apache_beam.runners.worker.worker_pool_main", "--service_port", log
    )
    yield f"localhost:{port}"
    process.kill()
    process.wait()


@pytest.fixture(scope="module")
def release(fault_server, tmp_path_factory):
    made = Release(fault_server, tmp_path_factory.mktemp("runners"), "runners")
    for i in range(16):
        made.add(Photo(f"{i + 1:016x}", seed=i, labels=[("/m/dog", 0.6)]))
    made.photos[f"{3:016x}"].route = "/status/404/{name}"
    made.write()
    return made


@pytest.fixture(scope="module")
def reference(release, tmp_path_factory):
    """The snapshot of the local default runner (in-process)."""
    root = tmp_path_factory.mktemp("reference")
    assert (
        run_cli(
            "snapshot",
            *release.write(),
            "--output",
            root,
            "--snapshot-id",
            "ref",
            *FLAGS,
            "--direct_running_mode",
            "in_memory",
        )
        == 0
    )
    return root / "ref"


def _same_snapshot(a: Path, b: Path) -> None:
    """The same tables and shard bytes (snapshots of other ids: their shards
    are in the pool under each id)."""
    for table in TABLES:
        assert comparable(a, table, False).equals(comparable(b, table, False)), table
    tars, others = shard_paths(a), shard_paths(b)
    assert len(tars) > 1
    assert [p.name for p in tars] == [p.name for p in others]
    for one, other in zip(tars, others, strict=True):
        assert one.read_bytes() == other.read_bytes()
    assert manifest(a)["counts"] == manifest(b)["counts"]


@pytest.mark.parametrize(
    "runner",
    ["multi_processing", "portable_loopback", "portable_external"],
)
def test_every_runner_writes_the_same_snapshot(
    runner, release, reference, tmp_path, request
):
    if runner == "multi_processing":
        beam_flags = ["--direct_num_workers", "2", "--direct_running_mode", runner]
    else:
        beam_flags = [
            "--runner",
            "PortableRunner",
            "--job_endpoint",
            request.getfixturevalue("job_service"),
        ]
        if runner == "portable_loopback":
            beam_flags += ["--environment_type", "LOOPBACK"]
        else:
            beam_flags += [
                "--environment_type",
                "EXTERNAL",
                "--environment_config",
                request.getfixturevalue("worker_pool"),
            ]
    code = run_cli(
        "snapshot",
        *release.write(),
        "--output",
        tmp_path,
        "--snapshot-id",
        runner,
        *FLAGS,
        *beam_flags,
    )
    assert code == 0
    assert (tmp_path / "LATEST").read_text() == f"{runner}\n"
    _same_snapshot(reference, tmp_path / runner)
    local = runner == "multi_processing"
    assert manifest(tmp_path / runner)["runner"] == (
        "FnApiRunner" if local else "PortableRunner"
    )


def test_dataflow_builds_the_snapshot_job_offline(release, reference, tmp_path):
    """--runner DataflowRunner --dry_run: the whole job is built (a refresh,
    so ReadPreviousSnapshot is in it), nothing runs, nothing is published."""
    args, beam_args = snapshot_parser().parse_known_args(
        [
            *release.write(),
            "--output",
            str(reference.parent),
            "--snapshot-id",
            "dataflow",
            "--previous",
            "ref",
            *FLAGS,
            "--runner",
            "DataflowRunner",
            "--dry_run",
            "True",
            "--project",
            "oibeam-tests",
            "--region",
            "us-central1",
            "--temp_location",
            "gs://oibeam-tests-bucket/tmp",
        ]
    )
    outcome = run_snapshot(SnapshotConfig.from_args(args), beam_args)
    assert outcome.dry_run
    pipeline = outcome.result.job.proto_pipeline
    names = {t.unique_name for t in pipeline.components.transforms.values()}
    for step in (
        "ReadOpenImagesCsv",
        "JoinLabelsToImages",
        "ComputeLabelStats",
        "SelectImages",
        "ReadPreviousSnapshot",
        "PlanRefresh",
        "FetchImages",
        "FetchImages/FetchShards",
        "LabelsOfSelected",
        "WriteManifest",
        "PublishSnapshot",
    ):
        assert step in names, step
    assert not (reference.parent / "dataflow").exists()
    assert (reference.parent / "LATEST").read_text() == "ref\n"
