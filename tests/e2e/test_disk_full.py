"""A full disk under a snapshot refresh: one line that says so, exit 1, and
LATEST and the previous snapshot as they were (it is still complete and
verifies). The output lives on a tmpfs of a few MiB in a private mount
namespace."""

from __future__ import annotations

import shlex
import sys

import pytest

from support import tiny_fs
from support.snapshot_release import FLAGS, Photo, Release


def test_a_full_disk_is_said_once_and_nothing_published_is_harmed(
    fault_server, tmp_path
):
    if tiny_fs.unavailable():
        pytest.skip(tiny_fs.unavailable())
    release = Release(fault_server, tmp_path / "release", "diskfull")
    for i in range(30):
        release.add(Photo(f"{i + 1:016x}", seed=i))
    flags = release.write()
    tiny = tmp_path / "tiny"
    root = tiny / "snapshots"

    def snapshot(snapshot_id: str, *extra: str) -> str:
        argv = [sys.executable, "-m", "oibeam.pipelines", "snapshot", *flags]
        argv += ["--output", str(root), "--snapshot-id", snapshot_id, "--no-report"]
        return shlex.join([*argv, *FLAGS, *extra])

    oibeam = shlex.join([sys.executable, "-m", "oibeam.pipelines"])
    script = f"""
    {snapshot("s1")} > {tmp_path}/s1.out 2> {tmp_path}/s1.err; echo "s1 $?"
    # leave 40 KiB free: the refresh's first writes fill the disk
    free=$(df --output=avail -k {tiny} | tail -1)
    head -c $(( (free - 40) * 1024 )) /dev/zero > {tiny}/filler
    {snapshot("s2", "--previous", "latest", "--retry-all", "--replan")} \\
        > {tmp_path}/s2.out 2> {tmp_path}/s2.err; echo "s2 $?"
    rm {tiny}/filler
    {oibeam} verify {root} > {tmp_path}/verify.out 2>&1; echo "verify $?"
    cat {root}/LATEST
    """
    done = tiny_fs.run_on_tiny_fs(["sh", "-c", script], tiny, "16m")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:4] == ["s1 0", "s2 1", "verify 0", "s1"], (
        done.stdout,
        (tmp_path / "s2.err").read_text()[-3000:],
    )
    err = (tmp_path / "s2.err").read_text()
    assert err.count("no space left") == 1, err[-3000:]
    assert f"oibeam snapshot: error: no space left on the filesystem of {root}" in err
    assert "Traceback" not in err and "BufferError" not in err
    assert "OK" in (tmp_path / "verify.out").read_text()
