"""A run's output directory is claimed only when it holds no earlier run, or
with --overwrite; locally and on GCS alike."""

from __future__ import annotations

import pytest

from oibeam.pipelines.layout import OutputExists, RunLayout


def test_an_earlier_local_run_is_refused_or_replaced(tmp_path):
    layout = RunLayout(str(tmp_path / "out"))
    layout.claim(overwrite=False)  # nothing there yet
    images = tmp_path / "out" / "tables" / "images"
    images.mkdir(parents=True)
    (images / "part-00000.parquet").write_bytes(b"x")
    with pytest.raises(OutputExists, match="already holds a run"):
        layout.claim(overwrite=False)
    layout.claim(overwrite=True)
    assert not (tmp_path / "out" / "tables").exists()


def test_an_earlier_run_on_gcs_is_seen_though_gcs_has_no_directories(gcs_emulator):
    bucket = gcs_emulator.create_bucket("claim-earlier-run")
    bucket.blob("out/shards/images-00000-of-00001.tar").upload_from_string(b"x")
    bucket.blob("out/_exchange/images/b00000/x.arrow").upload_from_string(b"x")
    bucket.blob("other/keep.txt").upload_from_string(b"x")
    layout = RunLayout(f"gs://{bucket.name}/out")
    with pytest.raises(OutputExists, match="shards"):
        layout.claim(overwrite=False)
    layout.claim(overwrite=True)
    assert [b.name for b in gcs_emulator.list_blobs(bucket.name)] == ["other/keep.txt"]


def test_a_file_is_not_an_output_directory(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(OutputExists, match="is a file"):
        RunLayout(str(tmp_path / "out")).claim(overwrite=True)
