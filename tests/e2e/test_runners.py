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

from support.dask_cluster import DaskCluster
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


def _serve(module: str, port_flag: str, log: Path, cwd: Path | None = None):
    """Starts a Beam service module on a free port (in `cwd`); (process, port)."""
    port = _free_port()
    env = dict(os.environ)
    # The worker pool starts workers with `python` from PATH: ours.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    process = subprocess.Popen(
        [sys.executable, "-m", module, f"{port_flag}={port}"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
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
    """Workers in a working directory of their own, as on a cluster."""
    log = tmp_path_factory.mktemp("services") / "worker_pool.log"
    process, port = _serve(
        "apache_beam.runners.worker.worker_pool_main",
        "--service_port",
        log,
        cwd=tmp_path_factory.mktemp("worker_cwd"),
    )
    yield f"localhost:{port}"
    process.kill()
    process.wait()


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A dask.distributed scheduler and 2 worker processes on 127.0.0.1."""
    with DaskCluster(tmp_path_factory.mktemp("dask"), workers=2) as cluster:
        yield cluster


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
    ["multi_processing", "portable_loopback", "portable_external", "dask"],
)
def test_every_runner_writes_the_same_snapshot(
    runner, release, reference, tmp_path, request
):
    if runner == "multi_processing":
        beam_flags = ["--direct_num_workers", "2", "--direct_running_mode", runner]
    elif runner == "dask":
        address = request.getfixturevalue("dask_cluster").address
        beam_flags = ["--shared-paths", "--runner", "DaskRunner"]
        beam_flags += ["--dask_client_address", address]
    else:
        beam_flags = [
            "--shared-paths",  # the workers run on this machine
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
    assert manifest(tmp_path / runner)["runner"] == {
        "multi_processing": "FnApiRunner",
        "dask": "oibeam.pipelines.dask_runner.DaskRunner",
    }.get(runner, "PortableRunner")


@pytest.mark.parametrize("command", ["tables", "fetch"])
def test_tables_and_fetch_on_dask_are_the_local_runners(
    command, release, dask_cluster, tmp_path
):
    """`oibeam tables` and `oibeam fetch` on a 2-worker dask.distributed
    cluster write what the local runner writes, tables and tars."""
    flags = [*release.write(), *(FLAGS if command == "fetch" else [])]
    local, dask = tmp_path / "local", tmp_path / "dask"
    assert run_cli(command, *flags, "--output", local) == 0
    on_dask = ["--shared-paths", "--runner", "DaskRunner"]
    on_dask += ["--dask_client_address", dask_cluster.address]
    assert run_cli(command, *flags, "--output", dask, *on_dask) == 0
    assert manifest(local)["tables"].keys() == manifest(dask)["tables"].keys()
    tables = sorted(p.name for p in (local / "tables").iterdir() if p.is_dir())
    assert tables == sorted(p.name for p in (dask / "tables").iterdir() if p.is_dir())
    assert "images" in tables and len(tables) >= 2
    for table in tables:
        assert comparable(local, table).equals(comparable(dask, table)), table
    tars = shard_paths(local)
    assert len(tars) > 1 if command == "fetch" else tars == []
    for one, other in zip(tars, shard_paths(dask), strict=True):
        assert one.name == other.name and one.read_bytes() == other.read_bytes()
    for counted in ("rows", "counts"):  # tables' rows, a fetch's statuses
        assert manifest(local).get(counted) == manifest(dask).get(counted)


def test_relative_paths_reach_workers_in_another_directory(
    release, reference, worker_pool, job_service, tmp_path, monkeypatch
):
    """Inputs and --output given relative to the launcher's directory: the
    workers (the pool runs them in a directory of their own) read and write
    the same files, as they are made absolute at launch."""
    monkeypatch.chdir(tmp_path)
    inputs = [
        os.path.relpath(a, tmp_path) if a.startswith("/") else a
        for a in release.write()
    ]
    assert not any(a.startswith("/") for a in inputs)
    portable = [
        "--runner",
        "PortableRunner",
        "--job_endpoint",
        job_service,
        "--environment_type",
        "EXTERNAL",
        "--environment_config",
        worker_pool,
    ]
    flags = [*inputs, "--output", "out", "--snapshot-id", "rel", *FLAGS]
    assert run_cli("snapshot", *flags, "--shared-paths", *portable) == 0
    _same_snapshot(reference, tmp_path / "out" / "rel")
    assert manifest(tmp_path / "out" / "rel")["options"]["output"]["output"] == str(
        tmp_path / "out"
    )


def test_local_paths_with_workers_elsewhere_are_refused(
    release, job_service, tmp_path, capsys
):
    code = run_cli(
        "snapshot",
        *release.write(),
        "--output",
        tmp_path,
        *FLAGS,
        "--runner",
        "PortableRunner",
        "--job_endpoint",
        job_service,
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--runner PortableRunner runs its workers elsewhere" in err
    assert "gs://" in err and "--shared-paths" in err
    assert list(tmp_path.iterdir()) == []  # refused before anything is written


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
            "--shared-paths",  # the dry run reads the previous snapshot here
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
