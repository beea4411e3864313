"""Snapshots on Google Cloud Storage: inputs read from gs://, snapshots written
to gs://, refreshed there, LATEST moved with a generation precondition and
verified from gs:// (a GCS emulator on 127.0.0.1, see conftest.gcs_emulator)."""

from __future__ import annotations

import io
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from support.runs import run_cli
from support.snapshot_release import Photo, Release, upload_release

pytestmark = pytest.mark.slow

FLAGS = [
    "--allow-private-hosts",
    "--retries",
    "1",
    "--direct_running_mode",
    "in_memory",
]


def test_snapshot_and_refresh_on_gcs(gcs_emulator, fault_server, tmp_path):
    bucket = gcs_emulator.create_bucket("oibeam-snapshots")
    release = Release(fault_server, tmp_path / "release", "gcs")
    for i in range(6):
        release.add(Photo(f"{i + 1:016x}", seed=i))
    root = f"gs://{bucket.name}/openimages"

    flags = upload_release(bucket, release.write())
    assert (
        run_cli(
            "snapshot",
            *flags,
            "--output",
            root,
            "--snapshot-id",
            "s1",
            "--previous",
            "latest",
            *FLAGS,
        )
        == 0
    )
    latest = bucket.get_blob("openimages/LATEST")
    first_generation = latest.generation  # (a download resets it)
    assert latest.download_as_bytes() == b"s1\n"
    assert bucket.get_blob("openimages/s1/_SUCCESS") is not None
    manifest = json.loads(
        bucket.blob("openimages/s1/manifest.json").download_as_bytes()
    )
    assert manifest["counts"]["status:ok"] == 6
    assert all(i["path"].startswith("gs://") for i in manifest["inputs"])
    tars = [
        b
        for b in bucket.list_blobs(prefix="openimages/pool/s1/")
        if b.name.endswith(".tar")
    ]
    members = {}
    for blob in tars:
        with tarfile.open(fileobj=io.BytesIO(blob.download_as_bytes())) as tar:
            for m in tar.getmembers():
                members[m.name] = tar.extractfile(m).read()
    for image_id in release.photos:
        assert members[f"{image_id}.jpg"] == release.bytes_of(image_id)

    # A refresh on GCS: one image added; the others stay in s1's pooled shards.
    release.add(Photo(f"{100:016x}", seed=100))
    flags = upload_release(bucket, release.write())
    fault_server.reset_log()
    assert (
        run_cli(
            "snapshot",
            *flags,
            "--output",
            root,
            "--snapshot-id",
            "s2",
            "--previous",
            "latest",
            *FLAGS,
        )
        == 0
    )
    manifest = json.loads(
        bucket.blob("openimages/s2/manifest.json").download_as_bytes()
    )
    assert manifest["changes"] == {"added": 1, "carried": 6}
    assert manifest["actions"] == {"share": 6, "fetch": 1}
    assert len(fault_server.requests()) == 1
    latest = bucket.get_blob("openimages/LATEST")
    assert latest.generation != first_generation
    assert latest.download_as_bytes() == b"s2\n"
    assert run_cli("verify", root) == 0  # follows LATEST, reads every byte from gs://
    diff = pq.read_table(
        io.BytesIO(
            next(
                b
                for b in bucket.list_blobs(prefix="openimages/s2/tables/diff/")
                if b.name.endswith(".parquet")
                and b.size > 0
                and pq.read_metadata(io.BytesIO(b.download_as_bytes())).num_rows
            ).download_as_bytes()
        )
    )
    assert set(diff["change"].to_pylist()) <= {"added", "carried"}


def _table(bucket, prefix: str) -> pa.Table:
    """Every Parquet part under `prefix`, read back as one table."""
    parts = [
        pq.read_table(io.BytesIO(b.download_as_bytes()))
        for b in bucket.list_blobs(prefix=prefix)
        if b.name.endswith(".parquet")
    ]
    return pa.concat_tables(parts)


def _objects(bucket, prefix: str) -> dict[str, int]:
    return {b.name: b.size for b in bucket.list_blobs(prefix=prefix)}


def test_refreshes_on_gcs_write_only_what_changed(gcs_emulator, fault_server, tmp_path):
    """The refresh scenarios on gs://: no change, a relabel and a removal
    write no shard object at all; an added image writes one small shard; every
    snapshot verifies from gs:// and the removed image is listed as deleted."""
    bucket = gcs_emulator.create_bucket("oibeam-shared")
    release = Release(fault_server, tmp_path / "release", "gcs-shared")
    photos = [f"{i + 1:016x}" for i in range(8)]
    for i, image_id in enumerate(photos):
        release.add(Photo(image_id, seed=i, labels=[("/m/cat", 0.9)]))
    root = f"gs://{bucket.name}/oi"

    def refresh(snapshot_id: str) -> dict:
        flags = upload_release(bucket, release.write())
        args = ["--output", root, "--snapshot-id", snapshot_id, "--previous", "latest"]
        assert run_cli("snapshot", *flags, *args, *FLAGS, "--no-report") == 0
        assert run_cli("verify", f"{root}/{snapshot_id}") == 0
        return json.loads(
            bucket.blob(f"oi/{snapshot_id}/manifest.json").download_as_bytes()
        )

    refresh("s1")
    first = _objects(bucket, "oi/pool/")
    assert first and all(k.startswith("oi/pool/s1/") for k in first)

    fault_server.reset_log()
    unchanged = refresh("s2")  # written without a pipeline, tables copied on GCS
    assert unchanged["actions"] == {"share": 8}
    assert unchanged["runner"].startswith("none: nothing changed")
    release.photos[photos[0]].labels = [("/m/dog", 0.8)]
    assert refresh("s3")["actions"] == {"share": 8}
    release.remove(photos[1])
    assert refresh("s4")["actions"] == {"share": 7, "drop": 1}
    assert fault_server.requests() == []
    assert _objects(bucket, "oi/pool/") == first  # not one byte of shard written
    deleted = _table(bucket, "oi/s4/tables/deleted/")
    assert deleted["ImageID"].to_pylist() == [photos[1]]
    labels = _table(bucket, "oi/s3/tables/labels/")
    assert ("/m/dog", photos[0]) in zip(
        labels["LabelName"].to_pylist(), labels["ImageID"].to_pylist(), strict=True
    )

    release.add(Photo(f"{100:016x}", seed=100))
    assert refresh("s5")["actions"] == {"share": 7, "fetch": 1}
    added = set(_objects(bucket, "oi/pool/")) - set(first)
    assert added and all(k.startswith("oi/pool/s5/") for k in added)
    assert sum(_objects(bucket, "oi/pool/")[k] for k in added) < 8 * 1024
