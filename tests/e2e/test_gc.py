"""`oibeam gc` end to end: real snapshots (the release on the FaultServer), a
refresh that drops an image, then gc: the old snapshot expires, the dropped
image's bytes are erased from the shard the newer snapshot still shares, and
that snapshot verifies and reads back; a dry run changes nothing; gc and
snapshot runs never overlap. Locally and on GCS (the emulator)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import threading
import time

import pytest

from oibeam.transforms.publish.claim import GC_CLAIM, claimed

from support.claims import claim_held
from support.runs import run_cli
from support.snapshot_release import (
    Photo,
    Release,
    manifest,
    shard_members,
    shard_paths,
    snapshot_cli,
    upload_release,
)

IDS = [f"{i:016x}" for i in range(1, 11)]


def snapshot(flags, root, snapshot_id, *extra) -> int:
    return snapshot_cli(
        flags, root, snapshot_id, "--previous", "latest", "--no-report", *extra
    )


@pytest.fixture(scope="module")
def built(fault_server, tmp_path_factory):
    """s1 (10 images), then s2: a refresh with IDS[3] removed from the
    release. Returns (root, release, removed id); tests copy the root."""
    release = Release(fault_server, tmp_path_factory.mktemp("release"), "gc-e2e")
    for i, image_id in enumerate(IDS):
        release.add(Photo(image_id, seed=300 + i))
    root = tmp_path_factory.mktemp("built") / "root"
    assert snapshot(release.write(), root, "s1") == 0
    removed = IDS[3]
    removed_bytes = release.bytes_of(removed)
    release.remove(removed)
    assert snapshot(release.write(), root, "s2") == 0
    return root, release, removed, removed_bytes


@pytest.fixture
def root(built, tmp_path):
    copy = tmp_path / "root"
    shutil.copytree(built[0], copy)
    return copy


def everything(root) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def holding(data: bytes, files: dict[str, bytes]) -> list[str]:
    return [name for name, content in files.items() if data in content]


def test_gc_expires_the_old_snapshot_and_erases_the_removed_image(built, root, capsys):
    _, release, removed, removed_bytes = built
    shared = [p for p in shard_paths(root / "s2") if p.parent.name == "s1"]
    assert shared and holding(removed_bytes, everything(root)) == [
        str(shared[0].relative_to(root))
    ]

    # A dry run says what it would do and changes nothing, not even a claim.
    before = everything(root)
    capsys.readouterr()
    assert run_cli("gc", root, "--keep", "1", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would expire snapshot s1 (" in out
    assert f"would erase 1 image(s) from pool/s1/{shared[0].name}" in out
    assert "total: would expire 1 snapshot(s), delete 0 pool file(s), erase 1" in out
    assert everything(root) == before

    assert run_cli("gc", root, "--keep", "1") == 0
    out = capsys.readouterr().out
    assert "expired snapshot s1 (" in out
    assert f"erased 1 image(s) from pool/s1/{shared[0].name}" in out
    assert not (root / "s1").exists()
    assert (root / "LATEST").read_text() == "s2\n"
    files = everything(root)
    assert holding(removed_bytes, files) == []
    assert (root / "pool" / "s1" / "_EXPIRED").exists()
    assert run_cli("verify", root / "s2") == 0
    assert "erased by oibeam gc" in capsys.readouterr().out
    # The record must explain the checksum, and erase nothing s2 has.
    record_path = shared[0].parent / f"{shared[0].name}.erased.json"
    original = record_path.read_text()
    record = json.loads(original)
    assert record["erased"] == [removed]
    for change, says in [
        ({"erased": [removed, IDS[0]]}, f"it erased {IDS[0]}, which this snapshot"),
        ({"crc32c": "crc32c:00000000"}, "and from the one its erasure record"),
        ({"was": "crc32c:00000000"}, "its erasure record starts from"),
    ]:
        record_path.write_text(json.dumps(record | change))
        assert run_cli("verify", root / "s2") == 1
        assert says in capsys.readouterr().out
    record_path.write_text(original)
    members = shard_members(root / "s2")
    for image_id in release.photos:
        assert members[f"{image_id}.jpg"] == release.bytes_of(image_id)
    assert f"{removed}.jpg" not in members and f"{removed}.json" not in members

    # A second gc has nothing left to do.
    assert run_cli("gc", root, "--keep", "1") == 0
    again = everything(root)
    assert again.pop(GC_CLAIM) and files.pop(GC_CLAIM)  # who held it, when
    assert again == files
    assert "total: expired 0 snapshot(s), deleted 0 pool file(s), erased 0" in (
        capsys.readouterr().out
    )

    # What a gc killed while it expired s1 would leave (no _SUCCESS, its pool
    # marked expired) is not an unfinished snapshot: the next gc removes it.
    (root / "s1" / "tables").mkdir(parents=True)
    (root / "s1" / "tables" / "left.parquet").write_bytes(b"x" * 10)
    assert run_cli("gc", root, "--keep", "1") == 0
    assert "expired snapshot s1 (10 bytes)" in capsys.readouterr().out
    assert not (root / "s1").exists()

    # Refreshing goes on from s2; the expired id is not reused (its pool
    # directory still holds shards s2 shares).
    flags = release.write()
    assert snapshot(flags, root, "s1") == 2
    assert "was expired by oibeam gc" in capsys.readouterr().err
    assert snapshot(flags, root, "s3") == 0
    assert manifest(root / "s3")["actions"] == {"share": 9}
    assert run_cli("verify", root / "s3") == 0


def test_unfinished_snapshots_are_left_alone(built, root, capsys):
    (root / "u1" / "tables").mkdir(parents=True)
    (root / "u1" / "tables" / "part.parquet").write_bytes(b"x" * 100)
    (root / "pool" / "u1").mkdir()
    (root / "pool" / "u1" / "images-00000-of-00001.tar").write_bytes(b"y" * 50)
    (root / "pool" / "s1" / ".tmp-dead-images.tar").write_bytes(b"z" * 7)
    (root / "pool" / "s0").mkdir()  # of a snapshot long gone
    (root / "pool" / "s0" / "images-00000-of-00001.tar").write_bytes(b"w" * 3)
    capsys.readouterr()
    assert run_cli("gc", root, "--keep", "2") == 0
    out = capsys.readouterr().out
    assert "unfinished snapshot u1 (150 bytes): left alone" in out
    assert "deleted pool/s1/.tmp-dead-images.tar (7 bytes)" in out
    assert "deleted pool/s0/images-00000-of-00001.tar (3 bytes)" in out
    assert not (root / "pool" / "s0").exists()  # left empty: removed
    assert (root / "s1" / "_SUCCESS").exists()  # --keep 2: both stay
    assert (root / "u1" / "tables" / "part.parquet").exists()
    assert (root / "pool" / "u1" / "images-00000-of-00001.tar").exists()
    # The removed image is in s1 still: nothing is erased.
    assert holding(built[3], everything(root))


def test_a_shard_that_is_not_a_valid_archive_is_not_erased(built, root, capsys):
    (tar,) = [p for p in shard_paths(root / "s2") if p.parent.name == "s1"]
    data = bytearray(tar.read_bytes())
    data[1] ^= 0x01  # the first header's name: its checksum fails
    tar.write_bytes(bytes(data))
    capsys.readouterr()
    assert run_cli("gc", root, "--keep", "1") == 1
    captured = capsys.readouterr()
    assert f"failed to erase from pool/s1/{tar.name}: header at offset 0" in (
        captured.out
    )
    assert "1 shard(s) not erased" in captured.err
    assert tar.read_bytes() == bytes(data)
    assert not (root / "s1").exists()  # the rest of gc was done
    assert sorted(p.name for p in tar.parent.iterdir()) == ["_EXPIRED", tar.name]


def test_gc_refuses_while_a_snapshot_is_being_built(root, capsys):
    before = everything(root)
    held, release = threading.Event(), threading.Event()

    def build() -> None:
        with claimed(str(root), "s3"):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=build)
    thread.start()
    try:
        assert held.wait(10)
        capsys.readouterr()
        assert run_cli("gc", root, "--keep", "1") == 2
        err = capsys.readouterr().err
        assert "snapshot s3 is being built; run gc when it is done" in err
        assert run_cli("gc", root, "--keep", "1", "--dry-run") == 2
    finally:
        release.set()
        thread.join()
    after = everything(root)
    # The lock files, as snapshot runs leave theirs.
    assert after.pop(GC_CLAIM) is not None and after.pop(".s3.claim") is not None
    assert after == before
    assert run_cli("gc", root, "--keep", "1") == 0  # the run is over


def test_a_snapshot_waits_for_gc_then_completes(built, root, caplog):
    _, release, _, _ = built
    caplog.set_level("INFO", logger="oibeam.transforms.publish.claim")
    with claim_held(str(root), GC_CLAIM, 2) as released_at:
        assert snapshot(release.write(), root, "s3") == 0
        finished_at = time.monotonic()
    assert finished_at > released_at[0]
    assert "waiting for oibeam gc on" in caplog.text
    assert (root / "LATEST").read_text() == "s3\n"
    assert run_cli("verify", root / "s3") == 0


def _objects(bucket, prefix: str) -> dict[str, bytes]:
    return {
        b.name[len(prefix) :]: b.download_as_bytes()
        for b in bucket.list_blobs(prefix=prefix)
    }


@pytest.mark.slow
def test_gc_on_gcs(gcs_emulator, fault_server, tmp_path, capsys):
    bucket = gcs_emulator.create_bucket("oibeam-gc")
    release = Release(fault_server, tmp_path / "release", "gc-gcs")
    for i, image_id in enumerate(IDS[:6]):
        release.add(Photo(image_id, seed=400 + i))
    root = f"gs://{bucket.name}/openimages"
    assert snapshot(upload_release(bucket, release.write()), root, "s1") == 0
    removed = IDS[2]
    removed_bytes = release.bytes_of(removed)
    release.remove(removed)
    assert snapshot(upload_release(bucket, release.write()), root, "s2") == 0
    before = _objects(bucket, "openimages/")
    assert [n for n, data in before.items() if removed_bytes in data] == [
        "pool/s1/images-00000-of-00001.tar"
    ]

    capsys.readouterr()
    assert run_cli("gc", root, "--keep", "1", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would expire snapshot s1" in out
    assert "would erase 1 image(s) from pool/s1/images-00000-of-00001.tar" in out
    assert _objects(bucket, "openimages/") == before

    assert run_cli("gc", root, "--keep", "1") == 0
    assert "erased 1 image(s) from pool/s1/" in capsys.readouterr().out
    after = _objects(bucket, "openimages/")
    assert not [n for n in after if n.startswith("s1/")]
    assert GC_CLAIM not in after  # the lease object is gone with the run
    assert [n for n, data in after.items() if removed_bytes in data] == []
    assert after["LATEST"] == b"s2\n"
    assert "pool/s1/images-00000-of-00001.tar.erased.json" in after
    assert "pool/s1/_EXPIRED" in after  # s2 shares s1's shard
    assert run_cli("verify", root) == 0
    with tarfile.open(
        fileobj=io.BytesIO(after["pool/s1/images-00000-of-00001.tar"])
    ) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert {n.split(".")[0] for n in members} == set(release.photos)
    for image_id in release.photos:
        assert members[f"{image_id}.jpg"] == release.bytes_of(image_id)
