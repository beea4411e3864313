"""LATEST moves atomically, only from what a run saw at its start: locally
(lock + rename) and on GCS (a generation precondition, against the emulator)."""

from __future__ import annotations

import threading

import pytest

from oibeam.transforms.publish.publish_snapshot import (
    LatestMoved,
    move_latest,
    publish,
    read_latest,
)


def _race(root, expected, contenders: int) -> list[str]:
    """`contenders` threads move LATEST from the same `expected` at once."""
    winners, barrier = [], threading.Barrier(contenders)

    def contend(name: str) -> None:
        barrier.wait()
        try:
            move_latest(root, name, expected)
            winners.append(name)
        except LatestMoved:
            pass

    threads = [
        threading.Thread(target=contend, args=(f"snap{i}",)) for i in range(contenders)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return winners


@pytest.fixture(params=["local", "gcs"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "root")
    client = request.getfixturevalue("gcs_emulator")
    bucket = f"publish-{abs(hash(request.node.name)) % 10**8}"
    client.create_bucket(bucket)
    return f"gs://{bucket}/snapshots"


def test_latest_moves_from_what_was_seen(root):
    first = read_latest(root)
    assert first.snapshot_id is None
    move_latest(root, "s1", first)
    seen = read_latest(root)
    assert seen.snapshot_id == "s1"
    move_latest(root, "s2", seen)
    assert read_latest(root).snapshot_id == "s2"
    # A run that started when LATEST said s1 finds it moved: it is left alone.
    with pytest.raises(LatestMoved, match="now 's2'"):
        move_latest(root, "s3", seen)
    assert read_latest(root).snapshot_id == "s2"
    # A retried publish of the snapshot LATEST already names is fine.
    move_latest(root, "s2", seen)


def test_only_one_of_racing_runs_moves_latest(root):
    expected = read_latest(root)
    winners = _race(root, expected, contenders=6)
    assert len(winners) == 1
    assert read_latest(root).snapshot_id == winners[0]


def test_publish_writes_success_then_latest(tmp_path):
    directory = tmp_path / "root" / "s1"
    directory.mkdir(parents=True)
    (directory / "manifest.json").write_text("{}")
    expected = read_latest(str(tmp_path / "root"))
    publish(str(directory / "manifest.json"), str(tmp_path / "root"), "s1", expected)
    assert (directory / "_SUCCESS").exists()
    assert (tmp_path / "root" / "LATEST").read_text() == "s1\n"
