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


def test_bench_snapshot_runs_every_refresh(tmp_path):
    out = _run(
        "bench_snapshot.py",
        "--images",
        "50",
        "--thumbnails",
        "--no-img2dataset",
        "--no-check-targets",
        "--workdir",
        str(tmp_path / "work"),
        "--images-dir",
        str(tmp_path / "images"),
    )
    # fetch / share / drop per run, from each snapshot's manifest
    assert "| full snapshot | 50 / 0 / 0 |" in out
    assert "| refresh, no change | 0 / 50 / 0 |" in out
    assert "| refresh, 1% new images | 1 / 50 / 0 |" in out
    assert "| refresh, 1% relabelled | 0 / 51 / 0 |" in out
    assert "| refresh, 1% removed | 0 / 50 / 1 |" in out
    assert (tmp_path / "work" / "results.jsonl").exists()


def test_bench_duplicates_runs_and_finds_the_planted_pairs(tmp_path):
    out = _run(
        "bench_duplicates.py",
        "--images",
        "3000",
        "--blank",
        "100",
        "--generated",
        "2",
        "--seconds",
        "0.01",
        "--workdir",
        str(tmp_path),
    )
    assert "exact groups agree with DuckDB: True" in out
    assert '"recall": 1.0' in out
