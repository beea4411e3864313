"""`oibeam export --format webdataset`: a self-contained copy of a refreshed
snapshot (tests/support/refreshed_snapshot.py) that verifies, moves, reads
back the same, and holds nothing of what the snapshot does not."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import zlib
from pathlib import Path

import google_crc32c
import pyarrow.parquet as pq
import pytest

from oibeam.tools.dataset import samples
from oibeam.tools.export.run_export import ExportConfig
from oibeam.tools.export.webdataset_shards import _Checked, plan
from oibeam.transforms.shard.shard_writer import checksum_label

from support.refreshed_snapshot import REMOVED, REPLACED, build
from support.runs import run_cli
from support.snapshot_release import shard_members


@pytest.fixture(scope="module")
def runs(fault_server, tmp_path_factory):
    return build(fault_server, tmp_path_factory.mktemp("export_wds"))


@pytest.fixture(scope="module")
def copy(runs, tmp_path_factory) -> Path:
    """OUT/webdataset of s2, exported once for the module (read only)."""
    out = tmp_path_factory.mktemp("copy")
    assert run_cli("export", runs.s2, "--format", "webdataset", "--output", out) == 0
    return out / "webdataset"


def _export(run: Path, out: Path) -> int:
    return run_cli("export", run, "--format", "webdataset", "--output", out)


def _tree(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _samples(run: Path) -> list[tuple]:
    return [
        (s["__key__"], s["jpg"], s["json"], sorted(map(str, s["labels"])))
        for s in samples(str(run))
    ]


def test_the_copy_verifies_and_lists_nothing_outside_itself(copy):
    assert run_cli("verify", copy) == 0
    text = (copy / "manifest.json").read_text()
    assert "../" not in text
    manifest = json.loads(text)
    assert "diff" not in manifest["tables"] and "changes" not in manifest
    assert manifest["export"]["snapshot"] == "s2"
    for table in manifest["tables"].values():
        for entry in table["files"]:
            assert not entry["path"].startswith(("/", ".")), entry
            assert (copy / entry["path"]).is_file()
    tars = sorted(p.name for p in (copy / "shards").glob("*.tar"))
    assert len(tars) > 1 and tars[0] == f"images-00000-of-{len(tars):05d}.tar"
    index = pq.read_table(copy / "shards" / "index")
    images = pq.read_table(copy / "tables" / "images")
    assert set(index["shard"].to_pylist()) == set(tars)
    assert set(images["shard"].drop_null().to_pylist()) == set(tars)
    assert pq.read_table(copy / "tables" / "deleted").num_rows == 0


def test_its_tars_hold_the_live_samples_member_for_member(runs, copy):
    members = {}
    for path in sorted((copy / "shards").glob("*.tar")):
        with tarfile.open(path) as tar:
            for member in tar:
                assert member.name not in members
                members[member.name] = tar.extractfile(member).read()
    assert members == shard_members(runs.s2)  # image and JSON, byte for byte


def test_moved_away_from_a_deleted_root_it_verifies_and_reads_the_same(runs, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(runs.root, root)
    assert _export(root / "s2", tmp_path / "out") == 0
    moved = tmp_path / "elsewhere" / "copy"
    moved.parent.mkdir()
    shutil.move(tmp_path / "out" / "webdataset", moved)
    shutil.rmtree(root)
    assert run_cli("verify", moved) == 0
    assert _samples(moved) == _samples(runs.s2)
    read = {k: (jpg, labels) for k, jpg, _, labels in _samples(moved)}
    assert {k: v[0] for k, v in read.items()} == {
        k: v[0] for k, v in runs.expected_s2.items()
    }


def test_what_the_snapshot_does_not_hold_is_in_no_byte_of_the_copy(runs, copy):
    banned = [REMOVED.encode(), *runs.old_bytes.values()]
    files = _tree(copy)
    for name, data in files.items():
        assert not any(b in data for b in banned), name
        if name.endswith(".parquet"):  # compressed: read the values too
            assert REMOVED not in str(pq.read_table(copy / name).to_pylist()), name
    new = runs.expected_s2[REPLACED][0]  # its new bytes are in
    assert any(new in data for data in files.values())


def test_exports_are_byte_identical_and_a_rerun_sweeps_what_it_did_not_write(
    runs, copy, tmp_path
):
    out = tmp_path / "again"
    stale = [
        out / "webdataset" / "shards" / "images-00009-of-00010.tar",
        out / "webdataset" / "shards" / ".tmp-0-images-00000-of-00001.tar",
        out / "webdataset" / "tables" / "diff" / "part-00000.parquet",
    ]
    kept = out / "webdataset" / "exports" / "jsonl" / "images.jsonl"
    for path in [*stale, kept]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"old")
    assert _export(runs.s2, out) == 0
    assert not any(p.exists() for p in stale)
    assert kept.read_bytes() == b"old"  # below the copy's own directories
    kept.unlink()
    assert _tree(out / "webdataset") == _tree(copy)


def test_a_corrupt_source_tar_fails_and_leaves_no_run(runs, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(runs.root, root)
    out = tmp_path / "out"
    assert _export(root / "s2", out) == 0
    tar = sorted((root / "pool" / "s1").glob("*.tar"))[0]
    data = bytearray(tar.read_bytes())
    data[-1] ^= 1  # an end block: no member changes, the checksum does
    tar.write_bytes(bytes(data))
    assert _export(root / "s2", out) == 2
    assert not (out / "webdataset" / "manifest.json").exists()
    assert not (out / "webdataset" / "_SUCCESS").exists()
    assert run_cli("verify", out / "webdataset") != 0


def test_the_copy_may_not_hold_the_run_it_copies(runs, tmp_path):
    root = tmp_path / "webdataset" / "root"
    shutil.copytree(runs.root, root)
    assert _export(root / "s2", tmp_path) == 2
    assert (root / "s2" / "manifest.json").exists()


def test_a_fetch_run_copies_too(runs, tmp_path):
    assert _export(runs.fetch, tmp_path) == 0
    assert run_cli("verify", tmp_path / "webdataset") == 0
    assert _samples(tmp_path / "webdataset") == _samples(runs.fetch)


def test_all_leaves_the_copy_out():
    assert "webdataset" not in ExportConfig.asked("run", ["all"]).formats
    both = ExportConfig.asked("run", ["all", "webdataset"]).formats
    assert both[-1] == "webdataset" and "tencent" in both


def test_a_copy_on_gcs_verifies_and_reads_the_same(runs, copy, gcs_emulator):
    bucket = gcs_emulator.create_bucket("oibeam-wds-copy")
    out = f"gs://{bucket.name}/exports"
    assert _export(runs.s2, out) == 0
    assert run_cli("verify", f"{out}/webdataset") == 0
    assert _samples(f"{out}/webdataset") == _samples(copy)
    blob = bucket.blob("exports/webdataset/shards/images-00000-of-00001.tar")
    blob.upload_from_string(b"stale")
    assert _export(runs.s2, out) == 0
    assert not blob.exists()


def test_tars_are_filled_to_about_the_target_in_order():
    assert plan([], 10).tolist() == []
    assert plan([4, 4, 4, 20, 1, 9, 1], 10).tolist() == [0, 0, 1, 2, 3, 3, 4]


@pytest.mark.parametrize(
    "checksum",
    [
        lambda d: checksum_label(google_crc32c.value(d)),
        lambda d: f"crc32:{zlib.crc32(d):08x}",  # manifests before 2026-11-24
        lambda d: hashlib.md5(d).hexdigest(),
    ],
)
def test_a_source_tar_is_checked_in_the_form_its_manifest_records(checksum):
    data = bytes(range(256)) * 40
    expected = checksum(data)
    read = _Checked(io.BytesIO(data), expected)
    while read.read(1000):
        pass
    assert read.matches({"bytes": len(data), "md5": expected})
    assert not read.matches({"bytes": len(data), "md5": checksum(data[1:])})
    assert not read.matches({"bytes": len(data) + 1, "md5": expected})
