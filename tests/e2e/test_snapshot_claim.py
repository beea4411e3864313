"""Two runs of the same --snapshot-id at once: one builds and publishes the
snapshot, the other is refused before it writes anything, and the snapshot
verifies."""

from __future__ import annotations

import subprocess
import sys

from support.runs import run_cli
from support.snapshot_release import FLAGS, Photo, Release


def test_a_second_run_of_the_same_snapshot_id_is_refused(fault_server, tmp_path):
    release = Release(fault_server, tmp_path / "release", "claim")
    for i in range(40):
        release.add(Photo(f"{i + 1:016x}", seed=i))
    root = tmp_path / "snapshots"
    command = [
        sys.executable,
        "-m",
        "oibeam.pipelines",
        "snapshot",
        *release.write(),
        "--output",
        str(root),
        "--snapshot-id",
        "same",
        "--no-report",
        *FLAGS,
    ]
    runs = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outcomes = sorted((run.wait(timeout=300), run.stderr.read()) for run in runs)
    assert [code for code, _ in outcomes] == [0, 2], outcomes
    refused = outcomes[1][1]
    assert "snapshot same under" in refused and "being built by another run" in refused
    assert "Traceback" not in refused
    assert (root / "LATEST").read_text() == "same\n"
    assert run_cli("verify", root / "same") == 0
