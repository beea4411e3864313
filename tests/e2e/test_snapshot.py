"""`oibeam snapshot` and `oibeam verify` end to end: publish, refresh, verify.

The release lives on the FaultServer (tests/support/snapshot_release.py) and
changes between runs; each run's outputs are read back with pyarrow and tarfile.
"""

from __future__ import annotations

import json
import shutil
import zlib

import pyarrow.parquet as pq
import pytest

from support.paths import REAL
from support.runs import run_cli
from support.snapshot_release import (
    Photo,
    Release,
    comparable,
    diff_rows,
    manifest,
    shard_members,
    shard_paths,
    snapshot_cli,
    unpool,
)

snapshot = snapshot_cli


def ids(n: int, start: int = 1) -> list[str]:
    return [f"{i:016x}" for i in range(start, start + n)]


@pytest.fixture
def release(fault_server, tmp_path, request):
    made = Release(fault_server, tmp_path / "release", request.node.name[:40])
    yield made
    fault_server.outage(())


def statuses(snapshot_dir) -> dict[str, str]:
    table = pq.read_table(snapshot_dir / "tables" / "images")
    return dict(
        zip(table["ImageID"].to_pylist(), table["status"].to_pylist(), strict=True)
    )


def test_first_snapshot_is_published_and_verifies(release, tmp_path):
    photos = ids(8)
    for i, image_id in enumerate(photos):
        release.add(Photo(image_id, seed=i, labels=[("/m/cat", 0.9), ("/m/dog", 0.0)]))
    release.photos[photos[0]].route = "/status/404/{name}"
    flags = release.write()
    root = tmp_path / "root"

    assert snapshot(flags, root, "s1", "--previous", "latest") == 0

    s1 = root / "s1"
    assert (root / "LATEST").read_text() == "s1\n"
    assert (s1 / "_SUCCESS").exists()
    m = manifest(s1)
    assert m["snapshot"]["id"] == "s1" and m["snapshot"]["parent"] is None
    assert m["changes"] == {"added": 8}
    assert m["actions"] == {"fetch": 8}
    assert m["counts"]["status:ok"] == 7 and m["counts"]["status:gone"] == 1
    assert m["rows"]["labels"] == 16  # the flat labels of the selected images
    assert m["rows"]["label_stats"] == 2
    members = shard_members(s1)
    for image_id in photos[1:]:
        assert members[f"{image_id}.jpg"] == release.bytes_of(image_id)
    assert f"{photos[0]}.jpg" not in members
    assert run_cli("verify", s1) == 0
    assert run_cli("verify", root) == 0  # ROOT: follows LATEST


def test_refreshes_fetch_only_what_changed(release, tmp_path, fault_server):
    """Three refreshes over a changing release: images added, removed and
    replaced (new MD5), labels changed, an outage that heals, a final failure
    kept, then retried with --retry-all; and a refresh of unchanged inputs
    that fetches nothing."""
    photos = ids(10)
    for i, image_id in enumerate(photos):
        release.add(Photo(image_id, seed=i))
    gone, down, replaced, relabelled, dropped = photos[:5]
    release.photos[gone].route = "/status/404/{name}"
    fault_server.outage({release.name(down)})
    root = tmp_path / "root"
    assert snapshot(release.write(), root, "s1", "--previous", "latest") == 0
    first = statuses(root / "s1")
    assert first[gone] == "gone" and first[down] == "http_error"
    assert first[replaced] == "ok"

    # s2: the outage healed; one image replaced, one relabelled, one removed,
    # two added.
    fault_server.outage(())
    release.replace(replaced, seed=100)
    release.photos[relabelled].labels = [("/m/dog", 0.8)]
    release.remove(dropped)
    added = ids(2, start=100)
    for n, image_id in enumerate(added):
        release.add(Photo(image_id, seed=200 + n))
    unchanged = photos[5:]
    fault_server.reset_log()
    assert snapshot(release.write(), root, "s2", "--previous", "latest") == 0

    s2 = root / "s2"
    diff = diff_rows(s2)
    expect = {
        gone: ("carried", "keep", "final_failure"),
        down: ("refetched", "fetch", "retryable_failure"),
        replaced: ("changed", "fetch", "bytes_changed"),
        relabelled: ("changed", "share", "metadata_changed"),
        dropped: ("removed", "drop", "not_in_release"),
        **{i: ("added", "fetch", "new") for i in added},
        **{i: ("carried", "share", "unchanged") for i in unchanged},
    }
    assert {
        k: (r["change"], r["action"], r["reason"]) for k, r in diff.items()
    } == expect
    assert diff[relabelled]["changed_columns"] == ["labels"]
    assert diff[down]["previous_status"] == "http_error"
    m = manifest(s2)
    assert m["snapshot"]["parent"]["id"] == "s1"
    assert m["changes"] == {
        "added": 2,
        "carried": 6,
        "changed": 2,
        "refetched": 1,
        "removed": 1,
    }
    now = statuses(s2)
    assert now[down] == "ok" and now[replaced] == "ok" and dropped not in now
    # Carried bytes come from s1's shards: never requested again.
    for image_id in [*unchanged, relabelled, gone]:
        assert release.requests_for(image_id) == 0, image_id
    assert release.requests_for(replaced) == 1
    members = shard_members(s2)
    for image_id in [*unchanged, relabelled, replaced, down, *added]:
        assert members[f"{image_id}.jpg"] == release.bytes_of(image_id)
    labels = pq.read_table(s2 / "tables" / "labels").to_pylist()
    assert {
        (r["ImageID"], r["LabelName"]) for r in labels if r["ImageID"] == relabelled
    } == {(relabelled, "/m/dog")}
    assert run_cli("verify", s2) == 0

    # The refresh equals a full snapshot of the same inputs.
    assert snapshot(release.write(), tmp_path / "full", "f2") == 0
    full = tmp_path / "full" / "f2"
    for table in ("images", "labels", "label_stats"):
        assert comparable(s2, table, False).equals(comparable(full, table, False))
    assert shard_members(s2) == shard_members(tmp_path / "full" / "f2")

    # s3, unchanged inputs: nothing is fetched.
    fault_server.reset_log()
    assert snapshot(release.write(), root, "s3", "--previous", "latest") == 0
    m = manifest(root / "s3")
    assert m["actions"] == {"share": 10, "keep": 1}
    assert m["changes"] == {"carried": 11}
    assert fault_server.requests() == []
    assert shard_members(root / "s3") == shard_members(s2)

    # s4, --retry-all: the final failure is tried again, and only it.
    assert snapshot(release.write(), root, "s4", "--previous", "s3", "--retry-all") == 0
    diff = diff_rows(root / "s4")
    assert diff[gone]["action"] == "fetch" and diff[gone]["reason"] == "retry_all"
    assert manifest(root / "s4")["actions"] == {"share": 10, "fetch": 1}
    assert [r.path.rsplit("/", 1)[-1] for r in fault_server.requests()] == [
        release.name(gone)
    ]
    assert (root / "LATEST").read_text() == "s4\n"


def test_same_inputs_same_snapshot(release, tmp_path):
    for i, image_id in enumerate(ids(12)):
        release.add(Photo(image_id, seed=i, labels=[("/m/car", 0.7)]))
    flags = release.write()
    assert snapshot(flags, tmp_path / "a", "x", "--shard-bytes", "2000") == 0
    assert snapshot(flags, tmp_path / "b", "x", "--shard-bytes", "2000") == 0
    a, b = tmp_path / "a" / "x", tmp_path / "b" / "x"
    tars = shard_paths(a)
    assert len(tars) > 1
    assert [p.name for p in tars] == [p.name for p in shard_paths(b)]
    for path in tars:
        assert (
            path.read_bytes()
            == (tmp_path / "b" / "pool" / "x" / path.name).read_bytes()
        )
    for table in ("images", "labels", "label_counts", "label_stats", "diff", "errors"):
        assert comparable(a, table).equals(comparable(b, table)), table


def test_verify_finds_what_is_wrong(release, tmp_path, capsys):
    for i, image_id in enumerate(ids(6)):
        release.add(Photo(image_id, seed=i))
    assert snapshot(release.write(), tmp_path / "root", "s1") == 0
    good = tmp_path / "root" / "s1"

    def broken(name: str, damage) -> str:
        """Damages a copy of the whole root (pool and all): its s1 dir."""
        shutil.copytree(tmp_path / "root", tmp_path / name)
        copy = tmp_path / name / "s1"
        damage(copy)
        capsys.readouterr()
        assert run_cli("verify", "--deep", copy) == 1
        return capsys.readouterr().out

    def flip_a_byte(snapshot_dir):
        tar = shard_paths(snapshot_dir)[0]
        data = bytearray(tar.read_bytes())
        data[1024] ^= 0xFF  # inside the first image's bytes
        tar.write_bytes(bytes(data))

    out = broken("flipped", flip_a_byte)
    assert "checksum differs" in out and "does not match its OriginalMD5" in out
    assert run_cli("verify", "--quick", tmp_path / "flipped" / "s1") == 0  # sizes

    def truncate(snapshot_dir):
        tar = shard_paths(snapshot_dir)[0]
        tar.write_bytes(tar.read_bytes()[:-512])

    broken("truncated", truncate)
    capsys.readouterr()
    assert run_cli("verify", "--quick", tmp_path / "truncated" / "s1") == 1
    assert "bytes, the manifest says" in capsys.readouterr().out
    out = broken(
        "missing", lambda d: next((d / "tables" / "labels").glob("*")).unlink()
    )
    assert "missing: tables/labels/" in out
    out = broken(
        "stray", lambda d: (d / "shards" / "index" / "extra.tar").write_bytes(b"x")
    )
    assert "not in the manifest: shards/index/extra.tar" in out
    out = broken("unfinished", lambda d: (d / "_SUCCESS").unlink())
    assert "not complete" in out

    def legacy_crc(snapshot_dir, wrong=False):
        """Shards as manifests before 2026-11-24 recorded them: zlib CRC32
        (and `_SUCCESS` then held only a time, no digest of the manifest)."""
        path = snapshot_dir / "manifest.json"
        manifest = json.loads(path.read_text())
        for entry in manifest["tables"]["shards"]["files"]:
            assert entry["md5"].startswith("crc32c:")
            crc = zlib.crc32((snapshot_dir / entry["path"]).read_bytes())
            entry["md5"] = f"crc32:{crc ^ wrong:08x}"
        path.write_text(json.dumps(manifest))
        (snapshot_dir / "_SUCCESS").write_text("2026-11-20T04:00:00+00:00\n")

    out = broken("legacy-wrong", lambda d: legacy_crc(d, wrong=True))
    assert "checksum differs" in out
    shutil.copytree(tmp_path / "root", tmp_path / "legacy")
    legacy_crc(tmp_path / "legacy" / "s1")
    assert run_cli("verify", tmp_path / "legacy" / "s1") == 0
    assert run_cli("verify", good) == 0


def test_refuses_what_would_break_a_snapshot(release, tmp_path, capsys):
    release.add(Photo(ids(1)[0], seed=1))
    flags = release.write()
    root = tmp_path / "root"
    assert snapshot(flags, root, "s1") == 0
    capsys.readouterr()
    assert snapshot(flags, root, "s1") == 2
    assert "immutable" in capsys.readouterr().err
    (root / "half").mkdir()
    assert snapshot(flags, root, "s2", "--previous", "half") == 2
    assert "not a complete snapshot" in capsys.readouterr().err
    assert snapshot(flags, root, "s2", "--overwrite") == 2
    assert snapshot(flags, root, "LATEST") == 2
    assert snapshot(flags, root, "../up") == 2
    assert (root / "LATEST").read_text() == "s1\n"


def test_label_with_descendants_selects_along_the_hierarchy(release, tmp_path, capsys):
    hierarchy = str(REAL / "bbox_labels_600_hierarchy.json")
    toy, doll, balloon, other = "/m/0138tl", "/m/0167gd", "/m/01j51", "/m/0242l"
    photos = ids(3)
    for i, (image_id, mid) in enumerate(
        zip(photos, (doll, balloon, other), strict=True)
    ):
        release.add(Photo(image_id, seed=i, labels=[(mid, 0.9)]))
    flags = release.write()
    root = tmp_path / "root"
    select = ["--label", toy, "--hierarchy", hierarchy]
    assert snapshot(flags, root, "s1", *select, "--with-descendants") == 0
    assert sorted(statuses(root / "s1")) == photos[:2]
    assert snapshot(flags, root, "s2", *select) == 0  # Toy itself: no image has it
    assert statuses(root / "s2") == {}
    capsys.readouterr()
    assert snapshot(flags, root, "s3", "--label", toy, "--with-descendants") == 2
    assert "--with-descendants needs --hierarchy" in capsys.readouterr().err
    missing = str(tmp_path / "nope.json")
    assert (
        snapshot(
            flags, root, "s4", *select[:2], "--hierarchy", missing, "--with-descendants"
        )
        == 2
    )
    assert "nope.json: cannot read it" in capsys.readouterr().err


def test_a_snapshot_from_before_pools_is_refreshed_by_copying(
    release, fault_server, tmp_path
):
    """A snapshot whose tars are its own (ROOT/ID/shards/) is not shared from:
    its bytes are copied, verified, into the refresh's pooled shards once;
    the refresh after that shares them."""
    photos = ids(6)
    for i, image_id in enumerate(photos):
        release.add(Photo(image_id, seed=i))
    root = tmp_path / "root"
    assert snapshot(release.write(), root, "old", "--shard-bytes", "2000") == 0
    unpool(root, "old")
    assert run_cli("verify", root / "old") == 0
    assert list((root / "pool").iterdir()) == []

    fault_server.reset_log()
    assert snapshot(release.write(), root, "s2", "--previous", "latest") == 0
    assert fault_server.requests() == []  # copied, not fetched
    m = manifest(root / "s2")
    assert m["actions"] == {"copy": 6}
    assert {f["path"].rsplit("/", 1)[0] for f in m["tables"]["shards"]["files"]} == {
        "../pool/s2"
    }
    members = shard_members(root / "s2")
    for image_id in photos:
        assert members[f"{image_id}.jpg"] == release.bytes_of(image_id)
    assert run_cli("verify", root / "s2") == 0

    assert snapshot(release.write(), root, "s3", "--previous", "latest") == 0
    assert manifest(root / "s3")["actions"] == {"share": 6}
    assert fault_server.requests() == []
