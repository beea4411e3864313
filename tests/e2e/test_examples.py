"""The scheduling examples in examples/ work as written.

The cron script and the Airflow DAG's task run for real, as their scheduler
would start them, with `--dry_run True` added: oibeam builds the whole Dataflow
job (nothing is submitted) from a release in a GCS emulator. The Airflow test
needs an Airflow install (OIBEAM_AIRFLOW_PYTHON: .ci/run makes one).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import apache_beam
import pytest

from support.snapshot_release import Photo, Release

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
EXAMPLES = PROJECT / "examples"
SUPPORT = PROJECT / "tests" / "support"
DAG = EXAMPLES / "airflow" / "oibeam_nightly_snapshot.py"
BUCKET = "oibeam-nightly"
STEPS = ("ReadOpenImagesCsv", "SelectImages", "FetchImages", "PublishSnapshot")


def _cron_fields_are_valid(fields: list[str]) -> bool:
    ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    for field, (low, high) in zip(fields, ranges, strict=True):
        for part in field.split(","):
            if part == "*":
                continue
            numbers = re.fullmatch(r"(\d+)(?:-(\d+))?(?:/\d+)?", part)
            if not numbers:
                return False
            values = [int(n) for n in numbers.groups() if n is not None]
            if not all(low <= v <= high for v in values):
                return False
    return True


def test_the_crontab_runs_the_script_nightly():
    lines = [
        line
        for line in (EXAMPLES / "cron" / "crontab").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    settings = [line for line in lines if re.match(r"^[A-Z_]+=", line)]
    jobs = [line for line in lines if line not in settings]
    assert len(jobs) == 1
    fields = jobs[0].split(None, 5)
    assert _cron_fields_are_valid(fields[:5])
    assert fields[2:5] == ["*", "*", "*"]  # every day
    assert "CRON_TZ=UTC" in settings
    variables = {s.split("=", 1)[0] for s in settings}
    script = EXAMPLES / "cron" / "nightly_snapshot.sh"
    required = set(re.findall(r"\$\{(OIBEAM_\w+):\?", script.read_text()))
    assert required and required <= variables, required - variables
    assert "examples/cron/nightly_snapshot.sh" in fields[5]
    assert os.access(script, os.X_OK)


def _locked_beam() -> str:
    lock = (EXAMPLES.parent / "constraints.txt").read_text()
    return re.search(r"^apache-beam==([^ ;\n]+)", lock, re.M).group(1)


def test_the_worker_image_is_built_with_the_locked_beam(tmp_path):
    """Launcher and workers run one Beam: the one constraints.txt locks."""
    assert _locked_beam() == apache_beam.__version__  # this launcher
    dockerfile = (EXAMPLES / "dataflow" / "Dockerfile").read_text()
    assert "ARG BEAM_VERSION\n" in dockerfile  # no default to drift from
    assert "-c /opt/oibeam/constraints.txt" in dockerfile
    copied = {
        name
        for source in re.findall(r"^COPY (.+) /opt/oibeam/", dockerfile, re.M)
        for name in source.split()
    }
    pyproject = (PROJECT / "pyproject.toml").read_text()
    packaged = set(re.findall(r'^"oibeam\.\w+" = "(\w+)"$', pyproject, re.M))
    assert packaged and packaged <= copied  # every folder the wheel is built from
    for name in copied:
        assert (PROJECT / name).exists(), name
    # No Docker engine here: a stand-in client records what the script asks.
    client = tmp_path / "docker"
    client.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$0.args"\n')
    client.chmod(0o755)
    subprocess.run(
        [str(EXAMPLES / "dataflow" / "build_worker_image.sh"), "r/p/worker:1"],
        env={**os.environ, "DOCKER": str(client)},
        check=True,
    )
    args = (tmp_path / "docker.args").read_text().splitlines()
    assert args[0] == "build"
    assert f"BEAM_VERSION={apache_beam.__version__}" in args
    assert args[args.index("-t") + 1] == "r/p/worker:1"
    assert Path(args[args.index("-f") + 1]) == EXAMPLES / "dataflow" / "Dockerfile"


def test_the_dag_parses_and_uses_the_beam_operator():
    tree = ast.parse(DAG.read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module == "airflow.providers.apache.beam.operators.beam"
        for alias in node.names
    }
    assert imported == {"BeamRunPythonPipelineOperator"}
    entry = EXAMPLES / "airflow" / "oibeam_snapshot_job.py"
    assert f'"{entry.name}"' in DAG.read_text()
    compile(entry.read_text(), str(entry), "exec")


def _env(emulator_bucket) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(
        OIBEAM_PROJECT="oibeam-tests",
        OIBEAM_REGION="us-central1",
        OIBEAM_BUCKET=emulator_bucket.name,
        OIBEAM_IMAGE="us-central1-docker.pkg.dev/oibeam-tests/oibeam/worker:0.1.0",
    )
    return env


@pytest.fixture
def nightly_bucket(gcs_emulator, fault_server, tmp_path):
    """The bucket the examples expect: a release under openimages/v1/."""
    bucket = gcs_emulator.lookup_bucket(BUCKET) or gcs_emulator.create_bucket(BUCKET)
    release = Release(fault_server, tmp_path / "release", "nightly")
    for i in range(3):
        release.add(Photo(f"{i + 1:016x}", seed=i))
    release.write()
    for name, local in (
        ("images/images.csv", "images.csv"),
        ("labels/labels.csv", "labels.csv"),
        ("dict.csv", "dict.csv"),
    ):
        blob = bucket.blob(f"openimages/v1/{name}")
        blob.upload_from_filename(release.directory / local)
    return bucket


def _built(out: str) -> str:
    """The dry-run summary line of a run's output, checked for our steps."""
    lines = [line for line in out.splitlines() if "dry run: job " in line]
    assert lines, out[-3000:]
    for step in STEPS:
        assert step in lines[-1], step
    return lines[-1]


def test_the_cron_script_builds_the_dataflow_job(nightly_bucket):
    done = subprocess.run(
        [str(EXAMPLES / "cron" / "nightly_snapshot.sh"), "--dry_run", "True"],
        env=_env(nightly_bucket),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    built = _built(done.stdout)
    assert "labels schedule=nightly" in built
    assert re.search(r"job oibeam-snapshot-\d{8} ", built)
    assert not list(nightly_bucket.list_blobs(prefix="snapshots/"))  # nothing ran


def test_the_airflow_dag_builds_the_dataflow_job(nightly_bucket, tmp_path):
    airflow_python = os.environ.get("OIBEAM_AIRFLOW_PYTHON")
    if not airflow_python:
        pytest.skip(
            "needs OIBEAM_AIRFLOW_PYTHON: a Python with apache-airflow "
            "and apache-airflow-providers-apache-beam (.ci/run makes one)"
        )
    env = _env(nightly_bucket)
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        # The connection the operator names; no key in it (nothing is submitted).
        AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT="google-cloud-platform://",
    )
    done = subprocess.run(
        [
            airflow_python,
            str(SUPPORT / "airflow_dag_run.py"),
            str(EXAMPLES / "airflow"),
            "20261124",
            sys.executable,
            "dry_run=True",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    built = _built(done.stdout)
    # The operator's job label reached Dataflow, not oibeam's --labels.
    assert "labels airflow-version=v" in built
    assert re.search(r"job oibeam-snapshot-[0-9a-f]{8} ", built)
    assert "--snapshot-id=20261124" in done.stdout  # the run date, rendered
