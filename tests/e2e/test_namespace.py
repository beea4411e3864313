"""oibeam's code is imported as oibeam.*, so modules of a user's own named
like our folders (transforms.py, pipelines.py, schemas.py, tools.py) in the
working directory change nothing, in the launcher or in worker processes."""

from __future__ import annotations

import json
import subprocess
import sys

from support.paths import V3_CLASSES, V3_HUMAN, V3_IMAGES, V3_MACHINE

DECOYS = ("transforms", "pipelines", "schemas", "tools")


def test_a_users_modules_named_like_our_folders_change_nothing(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    imported = tmp_path / "imported"
    for name in DECOYS:
        (work / f"{name}.py").write_text(
            f"open({str(imported)!r}, 'a').write('{name}\\n')\n"
            f"raise ImportError('the decoy {name}.py was imported')\n"
        )
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "oibeam.pipelines",  # -m: the working directory comes first on sys.path
            "tables",
            "--images",
            str(V3_IMAGES),
            "--labels",
            str(V3_HUMAN),
            str(V3_MACHINE),
            "--classes",
            str(V3_CLASSES),
            "--output",
            str(out),
            "--direct_running_mode",
            "multi_processing",  # workers are processes started in `work` too
            "--direct_num_workers",
            "2",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not imported.exists(), imported.read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"]["images"] > 0
    assert manifest["runner"] == "FnApiRunner"
