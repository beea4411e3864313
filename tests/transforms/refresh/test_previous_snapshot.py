"""The previous snapshot of a refresh: only a complete one loads (else
NotASnapshot), and ReadPreviousSnapshot parks its image rows, with the place of
each ok image's bytes, in exchange files split by the current join buckets.

The snapshot read here is a real one: `oibeam snapshot` over a release served
by the FaultServer (tests/support/snapshot_release.py), built once per module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.testing.util import assert_that, equal_to

from oibeam.schemas.elements import BucketPiece
from oibeam.schemas.tables import images_with_status_schema
from oibeam.transforms.common.exchange import read_piece
from oibeam.transforms.common.image_keys import bucket_of, parse_image_ids
from oibeam.transforms.fetch.image_tasks import (
    PREV_INDEX,
    PREV_OFFSET,
    PREV_SIZE,
    PREV_TAR,
)
from oibeam.transforms.refresh.previous_snapshot import (
    NotASnapshot,
    PreviousSnapshot,
    ReadPreviousSnapshot,
    read_part,
)
from oibeam.transforms.shard.locations import shard_location
from oibeam.transforms.shard.shard_outputs import ShardOutputs

from support.runs import run_cli
from support.snapshot_release import FLAGS, Photo, Release

PHOTOS = [f"{i:016x}" for i in range(1, 11)]
GONE = PHOTOS[1]  # served as a 404: a row without bytes in any shard


@dataclass
class Published:
    release: Release
    snapshot: Path

    @property
    def manifest(self) -> dict:
        return json.loads((self.snapshot / "manifest.json").read_text())


@pytest.fixture(scope="module")
def published(fault_server, tmp_path_factory) -> Published:
    """A complete snapshot `s1` of 10 images (one gone) in several shards."""
    base = tmp_path_factory.mktemp("previous")
    release = Release(fault_server, base / "release", "previous-snapshot")
    for i, image_id in enumerate(PHOTOS):
        release.add(Photo(image_id, seed=i))
    release.photos[GONE].route = "/status/404/{name}"
    flags = release.write()
    root = base / "root"
    code = run_cli(
        "snapshot",
        *flags,
        "--output",
        root,
        "--snapshot-id",
        "s1",
        *FLAGS,
        "--shard-bytes",
        "2000",
    )
    assert code == 0
    return Published(release, root / "s1")


@pytest.fixture
def copy(published, tmp_path):
    """A copy of the snapshot to break, under tmp_path/root/<name>."""

    def make(name: str = "s1") -> Path:
        target = tmp_path / "root" / name
        shutil.copytree(published.snapshot, target)
        return target

    return make


def _edit_manifest(snapshot: Path, edit) -> None:
    path = snapshot / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def _parts_on_disk(snapshot: Path) -> list[str]:
    return sorted(p.name for p in (snapshot / "tables" / "images").glob("part-*"))


def test_a_complete_snapshot_loads(published):
    s1 = published.snapshot
    previous = PreviousSnapshot.load(str(s1))
    assert previous.path == str(s1)
    assert previous.snapshot_id == "s1"
    names = _parts_on_disk(s1)
    assert len(names) > 1, "the snapshot should have several shards"
    assert previous.parts == tuple(
        (f"{s1}/tables/images/{n}", f"{s1}/shards/index/{n}") for n in names
    )
    for images, index in previous.parts:
        assert os.path.isfile(images) and os.path.isfile(index)
    # The fetch options of its run, as given on its command line.
    assert previous.fetch_options["policy"]["allow_private_hosts"] is True
    assert previous.fetch_options["shard_bytes"] == 2000
    assert PreviousSnapshot.load(f"{s1}/") == previous


def test_without_success_it_is_not_a_snapshot(copy):
    half = copy("half")
    (half / "_SUCCESS").unlink()
    with pytest.raises(NotASnapshot, match=re.escape(f"{half}: no _SUCCESS")):
        PreviousSnapshot.load(str(half))


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_what_is_not_a_snapshot_directory(tmp_path, make):
    path = tmp_path / "root" / "s0"
    if make == "empty":
        path.mkdir(parents=True)
    elif make == "file":
        path.parent.mkdir(parents=True)
        path.write_text("s0\n")
    with pytest.raises(NotASnapshot, match="not a complete snapshot"):
        PreviousSnapshot.load(str(path))


def test_success_without_a_manifest_is_an_error_the_caller_reports(copy):
    broken = copy()
    (broken / "manifest.json").unlink()
    # pipelines/snapshot.find_previous turns both into a usage error.
    with pytest.raises((NotASnapshot, OSError)):
        PreviousSnapshot.load(str(broken))


def test_an_images_part_without_its_index_part_is_not_a_snapshot(copy):
    broken = copy()
    lost = sorted(
        f["path"]
        for f in json.loads((broken / "manifest.json").read_text())["tables"][
            "shard_index"
        ]["files"]
    )[-1]

    def drop(manifest) -> None:
        files = manifest["tables"]["shard_index"]["files"]
        files[:] = [f for f in files if f["path"] != lost]

    _edit_manifest(broken, drop)
    part = lost.rsplit("/", 1)[1]
    with pytest.raises(NotASnapshot, match=f"tables/images/{part} has no matching"):
        PreviousSnapshot.load(str(broken))


def test_an_images_part_outside_the_images_table_is_not_a_snapshot(copy):
    broken = copy()

    def move(manifest) -> None:
        first = manifest["tables"]["images"]["files"][0]
        first["path"] = first["path"].replace("tables/images/", "tables/other/")

    _edit_manifest(broken, move)
    with pytest.raises(NotASnapshot, match="tables/other/part-"):
        PreviousSnapshot.load(str(broken))


def test_the_id_falls_back_to_the_directory_name(copy):
    older = copy("2026-01-01")

    def strip(manifest) -> None:
        del manifest["snapshot"]
        del manifest["options"]

    _edit_manifest(older, strip)
    previous = PreviousSnapshot.load(str(older))
    assert previous.snapshot_id == "2026-01-01"
    assert previous.fetch_options == {}
    assert [os.path.basename(i) for i, _ in previous.parts] == _parts_on_disk(older)


@pytest.mark.parametrize(
    "manifest", ['{"command": "snapshot", "tab', '{"files": ["part-0.parquet"]}']
)
def test_a_foreign_manifest_is_not_a_snapshot(copy, manifest):
    broken = copy()
    (broken / "manifest.json").write_text(manifest)
    with pytest.raises(NotASnapshot, match="not an oibeam manifest"):
        PreviousSnapshot.load(str(broken))


def _place_of_bytes(snapshot: Path) -> dict[str, tuple[str, int, int]]:
    """ImageID -> (tar, offset, size), from the shard index, read independently."""
    index = pq.read_table(snapshot / "shards" / "index").to_pylist()
    return {
        r["ImageID"]: (
            shard_location(str(snapshot), r["shard"]),
            r["offset"],
            r["size"],
        )
        for r in index
    }


def _read_at(path: str, offset: int, size: int) -> bytes:
    with FileSystems.open(path) as handle:
        handle.seek(offset)
        return handle.read(size)


def test_read_part_places_the_bytes_of_every_ok_image(published):
    s1 = published.snapshot
    place = _place_of_bytes(s1)
    previous = PreviousSnapshot.load(str(s1))
    seen = []
    for images_path, index_path in previous.parts:
        table = read_part(images_path, index_path, previous.path)
        part = pq.read_table(images_path)
        assert table.column_names == part.column_names + [
            PREV_TAR,
            PREV_OFFSET,
            PREV_SIZE,
            *PREV_INDEX.values(),
        ]
        assert table.select(part.column_names).equals(
            part.replace_schema_metadata(None)
        )
        assert table.schema.metadata is None  # no fingerprint carried over
        for row in table.to_pylist():
            seen.append(row["ImageID"])
            where = (row[PREV_TAR], row[PREV_OFFSET], row[PREV_SIZE])
            if row["status"] == "ok":
                assert where == place[row["ImageID"]]
                data = _read_at(*where)
                assert data == published.release.bytes_of(row["ImageID"])
            else:
                assert where == (None, None, None)
    assert sorted(seen) == PHOTOS
    assert GONE not in place


def test_read_previous_snapshot_parks_rows_by_bucket(published, pipeline, tmp_path):
    s1 = published.snapshot
    previous = PreviousSnapshot.load(str(s1))
    exchange = str(tmp_path / "_exchange")
    buckets = 3
    expected, rows_by_bucket = [], {}
    for images_path, _ in previous.parts:
        ids = pq.read_table(images_path)["ImageID"]
        keys, ok = parse_image_ids(ids.combine_chunks())
        assert ok.all()
        which = bucket_of(keys, buckets)
        name = os.path.basename(images_path).removesuffix(".parquet")
        for bucket in sorted(set(which.tolist())):
            count = int(np.sum(which == bucket))
            path = f"{exchange}/previous/b{bucket:05d}/{name}.arrow"
            expected.append((bucket, BucketPiece("previous", path, count)))
            rows_by_bucket.setdefault(bucket, set()).update(
                i for i, b in zip(ids.to_pylist(), which, strict=True) if b == bucket
            )
    assert len(rows_by_bucket) > 1

    with pipeline as p:
        read = p | ReadPreviousSnapshot(previous, buckets, exchange)
        assert_that(read["previous"], equal_to(expected))
        assert_that(read["deleted"], equal_to([]), label="NoDeleted")

    # Each piece holds its bucket's rows of one part, bytes placed.
    whole = {}
    for images_path, index_path in previous.parts:
        for row in read_part(images_path, index_path, previous.path).to_pylist():
            whole[row["ImageID"]] = row
    parked = {}
    for bucket, piece in expected:
        for row in read_piece(piece).to_pylist():
            assert row["ImageID"] in rows_by_bucket[bucket]
            parked[row["ImageID"]] = row
    assert parked == whole
    assert sorted(parked) == PHOTOS


def test_empty_parts_park_nothing(pipeline, tmp_path):
    snapshot = tmp_path / "root" / "s0"
    outputs = ShardOutputs(
        f"{snapshot}/shards",
        f"{snapshot}/tables/images",
        images_with_status_schema(()),
        "zstd",
    )
    parts = []
    for shard in range(2):
        outputs.empty(shard, 2)
        paths = outputs.paths(shard, 2)
        parts.append((paths.images, paths.index))
        assert read_part(paths.images, paths.index, str(snapshot)).num_rows == 0
    previous = PreviousSnapshot(str(snapshot), "s0", tuple(parts), {})
    exchange = tmp_path / "_exchange"
    with pipeline as p:
        read = p | ReadPreviousSnapshot(previous, 4, str(exchange))
        assert_that(read["previous"], equal_to([]))
    assert not exchange.exists()


def test_a_snapshot_on_gcs_loads_and_reads(published, gcs_emulator):
    bucket = gcs_emulator.create_bucket("previous-snapshot")
    s1 = published.snapshot
    for path in sorted(s1.parent.rglob("*")):  # the snapshot and its pool
        if path.is_file():
            relative = path.relative_to(s1.parent.parent).as_posix()
            bucket.blob(relative).upload_from_filename(str(path))
    root = f"gs://{bucket.name}/root/s1"
    previous = PreviousSnapshot.load(root)
    assert previous.snapshot_id == "s1"
    assert [(os.path.basename(i), os.path.basename(x)) for i, x in previous.parts] == [
        (n, n) for n in _parts_on_disk(s1)
    ]
    statuses = {}
    for images_path, index_path in previous.parts:
        assert images_path.startswith(f"{root}/tables/images/")
        for row in read_part(images_path, index_path, root).to_pylist():
            statuses[row["ImageID"]] = row["status"]
            if row["status"] != "ok":
                continue
            assert row[PREV_TAR].startswith(f"gs://{bucket.name}/root/pool/s1/images-")
            data = _read_at(row[PREV_TAR], row[PREV_OFFSET], row[PREV_SIZE])
            assert data == published.release.bytes_of(row["ImageID"])
    assert sorted(statuses) == PHOTOS
    assert [i for i, s in statuses.items() if s != "ok"] == [GONE]

    bucket.blob("root/s1/_SUCCESS").delete()
    with pytest.raises(NotASnapshot):
        PreviousSnapshot.load(root)


@pytest.mark.parametrize(
    "name",
    [
        "../../../../elsewhere/part-00000.parquet",
        "/etc/part-00000.parquet",
        "..",
        "sub/part-00000.parquet",
        "",
    ],
)
def test_a_part_outside_the_images_table_is_refused(copy, name):
    """The images part and its index part name the same file elsewhere: that
    would pair up, but neither is a part of the snapshot's tables."""
    broken = copy()

    def point(manifest) -> None:
        manifest["tables"]["images"]["files"][0]["path"] = f"tables/images/{name}"
        manifest["tables"]["shard_index"]["files"][0]["path"] = f"shards/index/{name}"

    _edit_manifest(broken, point)
    with pytest.raises(NotASnapshot, match="not a file directly in tables/images/"):
        PreviousSnapshot.load(str(broken))


def test_a_path_that_is_not_text_is_not_a_snapshot(copy):
    broken = copy()

    def number(manifest) -> None:
        manifest["tables"]["images"]["files"][0]["path"] = 7

    _edit_manifest(broken, number)
    with pytest.raises(NotASnapshot, match="not an oibeam manifest"):
        PreviousSnapshot.load(str(broken))


@pytest.mark.parametrize(
    "shard",
    [
        "../../elsewhere.tar",
        "/etc/passwd",
        "..",
        "",
        "pool/../../x.tar",
        "pool/s1/../../x.tar",
        "pool/.hidden/x.tar",
        "pool/s1/sub/x.tar",
        "../pool/s1/images-00000-of-00004.tar",
    ],
)
def test_a_shard_outside_the_snapshot_is_refused(copy, shard):
    """The shard index names the tar of each ok image: a name that leaves the
    snapshot's shards/ is refused before anything is read from it."""
    broken = copy()
    previous = PreviousSnapshot.load(str(broken))
    images_path, index_path = next(
        (i, x) for i, x in previous.parts if pq.read_metadata(x).num_rows
    )
    index = pq.read_table(index_path)
    shards = index["shard"].to_pylist()
    shards[0] = shard
    where = index.schema.get_field_index("shard")
    pq.write_table(
        index.set_column(where, "shard", pa.array(shards, index["shard"].type)),
        index_path,
    )
    with pytest.raises(NotASnapshot, match="neither a file name in .* nor a shard"):
        read_part(images_path, index_path, previous.path)
