"""A run's output directory: a finished run there is replaced only with
--overwrite, an unfinished one is resumed (fetch) or started over (tables);
locally and on GCS alike."""

from __future__ import annotations

import pytest

from oibeam.pipelines.layout import OutputExists, RunLayout


def _unfinished(root):
    images = root / "tables" / "images"
    images.mkdir(parents=True)
    (images / "part-00000-of-00002.parquet").write_bytes(b"x")
    (root / "_exchange" / "shards").mkdir(parents=True)
    (root / "_exchange" / "shards" / "piece.arrow").write_bytes(b"x")


def test_a_finished_local_run_is_refused_or_replaced(tmp_path):
    layout = RunLayout(str(tmp_path / "out"))
    assert layout.claim(overwrite=False) is False  # nothing there yet
    _unfinished(tmp_path / "out")
    (tmp_path / "out" / "manifest.json").write_text("{}")
    with pytest.raises(OutputExists, match="already holds a finished run"):
        layout.claim(overwrite=False)
    with pytest.raises(OutputExists):
        layout.claim(overwrite=False, resumable=True)
    assert layout.claim(overwrite=True) is False
    assert list((tmp_path / "out").iterdir()) == []


def test_an_unfinished_run_is_resumed_when_the_command_can(tmp_path):
    root = tmp_path / "out"
    _unfinished(root)
    assert RunLayout(str(root)).claim(overwrite=False, resumable=True) is True
    assert (root / "tables" / "images" / "part-00000-of-00002.parquet").exists()
    assert not (root / "_exchange").exists()  # rebuilt by the run
    # a command that cannot resume starts over
    assert RunLayout(str(root)).claim(overwrite=False) is False
    assert not (root / "tables").exists()


def test_an_earlier_run_on_gcs_is_seen_though_gcs_has_no_directories(gcs_emulator):
    bucket = gcs_emulator.create_bucket("claim-earlier-run")
    bucket.blob("out/shards/images-00000-of-00001.tar").upload_from_string(b"x")
    bucket.blob("out/manifest.json").upload_from_string(b"{}")
    bucket.blob("out/_exchange/images/b00000/x.arrow").upload_from_string(b"x")
    bucket.blob("other/keep.txt").upload_from_string(b"x")
    layout = RunLayout(f"gs://{bucket.name}/out")
    with pytest.raises(OutputExists, match="finished run"):
        layout.claim(overwrite=False)
    layout.claim(overwrite=True)
    assert [b.name for b in gcs_emulator.list_blobs(bucket.name)] == ["other/keep.txt"]
    bucket.blob("out/shards/images-00000-of-00001.tar").upload_from_string(b"x")
    bucket.blob("out/_exchange/images/b00000/x.arrow").upload_from_string(b"x")
    assert layout.claim(overwrite=False, resumable=True) is True
    names = sorted(b.name for b in gcs_emulator.list_blobs(bucket.name))
    assert names == ["other/keep.txt", "out/shards/images-00000-of-00001.tar"]


def test_a_file_is_not_an_output_directory(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(OutputExists, match="is a file"):
        RunLayout(str(tmp_path / "out")).claim(overwrite=True)
