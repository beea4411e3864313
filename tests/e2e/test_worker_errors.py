"""A user's error raised inside a worker process (a damaged input, too many
rejected rows) reaches the launcher as text: it still ends the run with one
line and exit status 2, without Beam's step annotation."""

from __future__ import annotations

import subprocess
import sys

from support.bombs import write_images_bomb, write_labels

MiB = 1 << 20


def test_a_damaged_input_found_by_a_worker_process_is_one_line(tmp_path):
    full = tmp_path / "full.csv.gz"
    write_images_bomb(full, 8 * MiB)  # the launcher reads only its first MiB
    data = full.read_bytes()
    images = tmp_path / "images.csv.gz"
    images.write_bytes(data[: len(data) * 3 // 4])
    labels = tmp_path / "labels.csv"
    write_labels(labels, 10)
    done = subprocess.run(
        [
            str(a)
            for a in (
                sys.executable,
                "-m",
                "oibeam.pipelines",
                "tables",
                *("--images", images, "--labels", labels, "--output", tmp_path / "out"),
                *("--direct_running_mode", "multi_processing"),
                *("--direct_num_workers", 2),
            )
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2, done.stderr[-3000:]
    assert last == (
        f"oibeam tables: error: {images}: its gzip data ends early: the file is "
        "cut short or corrupt; fetch it again, then run again"
    )
    assert not (tmp_path / "out" / "manifest.json").exists()
