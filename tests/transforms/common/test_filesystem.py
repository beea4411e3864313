"""Directories asked about and removed the same way locally and on GCS (the
emulator), where a prefix is not an object."""

from __future__ import annotations

import pytest

from oibeam.transforms.common.filesystem import holds_anything, remove_tree


def test_local_directories(tmp_path):
    run = tmp_path / "run"
    assert not holds_anything(str(run))
    (run / "tables" / "images").mkdir(parents=True)
    (run / "tables" / "images" / "part-0.parquet").write_bytes(b"x")
    (run / "manifest.json").write_text("{}")
    assert holds_anything(str(run / "tables"))
    assert holds_anything(str(run / "manifest.json"))
    remove_tree(str(run / "tables") + "/")
    remove_tree(str(run / "gone"))  # nothing there: nothing to do
    assert sorted(p.name for p in run.iterdir()) == ["manifest.json"]


@pytest.fixture
def bucket(gcs_emulator, request):
    made = gcs_emulator.create_bucket(f"fs-{request.node.name[5:25].replace('_', '-')}")
    for name in ("run/tables/images/part-0.parquet", "run/tables/x/y.parquet"):
        made.blob(name).upload_from_string(b"x")
    made.blob("run/manifest.json").upload_from_string(b"{}")
    made.blob("run-2/tables/z").upload_from_string(b"x")  # a sibling prefix
    return made


def test_gcs_prefixes_hold_what_is_under_them(bucket):
    root = f"gs://{bucket.name}"
    assert holds_anything(f"{root}/run/tables")
    assert holds_anything(f"{root}/run/tables/")
    assert holds_anything(f"{root}/run/manifest.json")
    assert not holds_anything(f"{root}/run/shards")
    assert not holds_anything(f"{root}/run/tables/images/part-1.parquet")


def test_gcs_trees_are_removed_whole_and_alone(gcs_emulator, bucket):
    root = f"gs://{bucket.name}"
    remove_tree(f"{root}/run/tables")
    remove_tree(f"{root}/run/shards")  # nothing there: nothing to do
    names = sorted(b.name for b in gcs_emulator.list_blobs(bucket.name))
    assert names == ["run-2/tables/z", "run/manifest.json"]
    remove_tree(f"{root}/run/manifest.json")
    names = sorted(b.name for b in gcs_emulator.list_blobs(bucket.name))
    assert names == ["run-2/tables/z"]
