"""A --label that selects no image says so: the manifest counts the images
each --label selected (0 included) and the summary names the empty ones."""

from __future__ import annotations

import json

from support.runs import run_cli
from support.snapshot_release import FLAGS, Photo, Release


def test_a_label_that_selects_nothing_is_named(fault_server, tmp_path, capsys):
    release = Release(fault_server, tmp_path / "release", "labelfeedback")
    release.add(Photo("0000000000000001", seed=1, labels=[("/m/cat", 0.9)]))
    release.add(Photo("0000000000000002", seed=2, labels=[("/m/cat", 0.8)]))
    release.add(Photo("0000000000000003", seed=3, labels=[("/m/dog", 0.7)]))
    out = tmp_path / "out"
    code = run_cli(
        "fetch",
        *release.write(),
        "--output",
        out,
        "--label",
        "/m/cat",
        "Dog",  # by display name, through --classes
        "/m/nothing",
        *FLAGS,
    )
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["images_per_label"] == {"/m/cat": 2, "/m/dog": 1, "/m/nothing": 0}
    assert manifest["counts"]["selected"] == 3
    printed = capsys.readouterr().out
    assert "no image was selected by --label /m/nothing" in printed
