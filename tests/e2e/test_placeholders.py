"""A placeholder served at an image's own URL (no tell-tale redirect) is
`gone`, told by its content; a replaced photo stays `changed`."""

from __future__ import annotations

import hashlib

import pyarrow.parquet as pq
import pytest

from support.paths import IMAGES
from support.snapshot_release import Photo, Release, snapshot_cli

PLACEHOLDER = "pillow_tests_hopper.png"  # what a deleted photo's URL now serves
OTHER = "pillow_tests_hopper_gray.jpg"  # another photo's bytes: a replacement


@pytest.fixture
def release(fault_server, tmp_path, request):
    made = Release(fault_server, tmp_path / "release", request.node.name[:40])
    for i in range(6):
        made.add(Photo(f"{i + 1:016x}", seed=i))
    for i in (1, 2, 3):  # three deleted photos, the same placeholder bytes
        made.photos[f"{i:016x}"].route = f"/img/{PLACEHOLDER}"
    made.photos[f"{4:016x}"].route = f"/img/{OTHER}"  # replaced once
    return made


def _statuses(snapshot) -> dict[str, tuple[str, str | None]]:
    table = pq.read_table(snapshot / "tables" / "images")
    return {
        r["ImageID"]: (r["status"], r["error"])
        for r in table.select(["ImageID", "status", "error"]).to_pylist()
    }


def test_the_same_bytes_for_several_images_are_a_placeholder(release, tmp_path):
    root = tmp_path / "snapshots"
    assert snapshot_cli(release.write(), root, "s1") == 0
    got = _statuses(root / "s1")
    for i in (1, 2, 3):
        status, error = got[f"{i:016x}"]
        assert status == "gone" and "a placeholder" in error, error
        assert "came for 3 images" in error
    assert got[f"{4:016x}"][0] == "changed"
    assert {got[f"{i:016x}"][0] for i in (5, 6)} == {"ok"}


def test_a_listed_placeholder_digest_is_gone_alone(release, tmp_path):
    digest = hashlib.md5((IMAGES / OTHER).read_bytes()).hexdigest()
    root = tmp_path / "snapshots"
    flags = release.write()
    assert snapshot_cli(flags, root, "s1", "--placeholder-md5", digest) == 0
    status, error = _statuses(root / "s1")[f"{4:016x}"]
    assert status == "gone" and f"known placeholder image (md5 {digest})" in error
    assert snapshot_cli(flags, root, "s2", "--placeholder-md5", "XYZ") == 2
