"""The benchmark scripts still run against the package as installed (tiny
sizes: this checks they work, it measures nothing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


def test_bench_tables_runs_and_agrees_with_duckdb(tmp_path):
    out = _run("bench_tables.py", "--images", "3000", "--workdir", str(tmp_path))
    assert "oibeam / duckdb wall time" in out
    assert "agree: {" in out


def test_bench_fetch_runs_oibeam(tmp_path):
    out = _run(
        "bench_fetch.py",
        "--images",
        "60",
        "--tools",
        "oibeam",
        "--repeat",
        "1",
        "--startup-images",
        "10",
        "--workdir",
        str(tmp_path),
    )
    assert "oibeam run 1:" in out
