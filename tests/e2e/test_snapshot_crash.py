"""A snapshot run killed mid-fetch (SIGKILL) and run again under the same id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from support.runs import run_cli
from support.snapshot_release import (
    Photo,
    Release,
    comparable,
    manifest,
    shard_members,
    shard_paths,
)

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
FLAGS = ["--allow-private-hosts", "--retries", "1", "--concurrency", "1"]


def _cli(flags, root, snapshot_id, *extra) -> list[str]:
    return [
        *flags,
        "--output",
        str(root),
        "--snapshot-id",
        snapshot_id,
        *FLAGS,
        *extra,
    ]


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_killed_run_resumes_to_the_same_snapshot(fault_server, tmp_path):
    release = Release(fault_server, tmp_path / "release", "crash")
    for i in range(5):
        release.add(Photo(f"{i + 1:016x}", seed=i))
    root = tmp_path / "root"
    assert run_cli("snapshot", *_cli(release.write(), root, "s0")) == 0

    # 30 more images, each answered after 0.2 s, ~10 shards: a run of seconds.
    for i in range(5, 35):
        release.add(Photo(f"{i + 1:016x}", seed=i, route="/delay/0.2/{name}"))
    flags = release.write()
    args = _cli(flags, root, "s1", "--previous", "latest", "--shard-bytes", "2500")
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "snapshot", *args],
        cwd=PROJECT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    images_dir = root / "s1" / "tables" / "images"
    try:
        _wait_for(
            lambda: images_dir.exists() and any(images_dir.glob("part-*.parquet")),
            120,
            "a first committed shard",
        )
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    # Killed: no LATEST move, nothing that looks complete, no torn shard.
    s1 = root / "s1"
    assert (root / "LATEST").read_text() == "s0\n"
    assert not (s1 / "_SUCCESS").exists() and not (s1 / "manifest.json").exists()
    pool = root / "pool" / "s1"
    temporary = [p.name for p in pool.glob(".tmp-*")]
    final = [p for p in pool.glob("*.tar") if not p.name.startswith(".")]
    for tar_path in final:
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                data = tar.extractfile(member).read()
                if member.name.endswith(".jpg"):
                    assert data == release.bytes_of(member.name[:-4])
    done = list(images_dir.glob("part-*.parquet"))
    print(
        f"killed with {len(done)} shard(s) done, {len(final)} tar(s), "
        f"temporary: {temporary}"
    )
    shards = int(done[0].stem.rsplit("-", 1)[-1])
    assert len(done) < shards, "the run finished before it was killed"
    committed = {i for p in done for i in pq.read_table(p)["ImageID"].to_pylist()}

    fault_server.reset_log()
    assert run_cli("snapshot", *args) == 0
    assert (root / "LATEST").read_text() == "s1\n"
    assert manifest(s1)["snapshot"]["resumed"] is True
    for image_id in committed:
        assert release.requests_for(image_id) == 0, "a committed shard was redone"
    assert run_cli("verify", s1) == 0

    # The same as a run that was never interrupted.
    assert (
        run_cli(
            "snapshot",
            *_cli(flags, root, "u1", "--previous", "s0", "--shard-bytes", "2500"),
        )
        == 0
    )
    u1 = root / "u1"
    for table in ("images", "labels", "diff", "label_stats"):
        assert comparable(s1, table, False).equals(comparable(u1, table, False))
    # Both share s0's shards and wrote the same new ones, each in its pool dir.
    theirs = [pool / p.name if p.parent.name == "u1" else p for p in shard_paths(u1)]
    assert sorted(theirs) == shard_paths(s1)
    for tar_path, counterpart in zip(shard_paths(u1), theirs, strict=True):
        assert tar_path.read_bytes() == counterpart.read_bytes()
    assert len(shard_members(s1)) == 2 * 35
