"""Ctrl-C on a fetch: one line that says how to resume, no tracebacks; and
running the same command again resumes it, fetching only the shards that were
not committed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq

from support.snapshot_release import FLAGS, Photo, Release

IMAGES = 48


def _fetch_command(flags: list[str], output) -> list[str]:
    return [
        sys.executable,
        "-m",
        "oibeam.pipelines",
        "fetch",
        *flags,
        "--output",
        str(output),
        "--shard-bytes",
        "1",  # a shard per image: shards are committed while the run goes on
        "--concurrency",
        "2",
        *FLAGS,
    ]


def test_ctrl_c_says_how_to_resume_and_the_rerun_resumes(fault_server, tmp_path):
    release = Release(fault_server, tmp_path / "release", "interrupt")
    for i in range(IMAGES):
        photo = Photo(f"{i + 1:016x}", seed=i, route="/delay/0.15/{name}")
        release.add(photo)
    command = _fetch_command(release.write(), tmp_path / "out")
    fault_server.reset_log()
    run = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # Interrupt once some images were fetched (a few shards committed).
    deadline = time.monotonic() + 60
    while len(fault_server.requests("/delay/")) < IMAGES // 3:
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 130, err[-3000:]
    assert "oibeam fetch: interrupted; run the same command again to resume" in err
    assert "Traceback" not in err, err[-3000:]
    assert not (tmp_path / "out" / "manifest.json").exists()
    first = len(fault_server.requests("/delay/"))

    fault_server.reset_log()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed an unfinished run" in done.stdout
    again = len(fault_server.requests("/delay/"))
    assert again < IMAGES  # committed shards were not fetched again
    assert first + again >= IMAGES
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["statuses"] == {"ok": IMAGES} and manifest["resumed"] is True
    images = pq.read_table(tmp_path / "out" / "tables" / "images")
    assert sorted(images["ImageID"].to_pylist()) == sorted(release.photos)
    index = pq.read_table(tmp_path / "out" / "shards" / "index")
    assert index.num_rows == IMAGES
