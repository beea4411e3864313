"""Shards begun one after another share the worker's window: while the first
shard's last images are awaited, the next one's are already in flight, and
each tar still holds its own images in ImageID order. A failure removes every
open shard's tar."""

from __future__ import annotations

import base64
import hashlib
import os
import tarfile

import pyarrow as pa
import pytest

from oibeam.transforms.fetch.fetch_config import FetchConfig, FetchPolicy
from oibeam.transforms.fetch.shard_fetch import ShardFetcher
from oibeam.transforms.shard.shard_outputs import ShardOutputs

from support.busy_server import BusyServer
from support.snapshot_release import jpeg

HOSTS = ["127.0.0.1", "127.0.0.2"]
BODY = jpeg(7)  # every URL answers this photo
SCHEMA = pa.schema(
    [
        pa.field("ImageID", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("shard", pa.string()),
    ]
)


def _tasks(server: BusyServer, first: int, n: int) -> pa.Table:
    ids = [f"{i:016x}" for i in range(first, first + n)]
    return pa.table(
        {
            "ImageID": ids,
            "OriginalURL": [server.url(HOSTS[i % 2], f"{i}.jpg") for i in range(n)],
            "OriginalSize": [len(BODY)] * n,
            "OriginalMD5": [base64.b64encode(hashlib.md5(BODY).digest()).decode()] * n,
        }
    )


def _fetcher(tmp_path) -> ShardFetcher:
    outputs = ShardOutputs(
        str(tmp_path / "shards"), str(tmp_path / "images"), SCHEMA, "zstd"
    )
    policy = FetchPolicy(allow_private_hosts=True, timeout=10, deadline=60)
    return ShardFetcher(FetchConfig(concurrency=20, policy=policy), outputs)


def test_the_next_shard_is_in_flight_while_the_last_one_drains(tmp_path):
    with BusyServer(HOSTS, hold=0.3, body=BODY) as server:
        fetcher = _fetcher(tmp_path)
        outputs = fetcher._outputs
        first = fetcher.begin(outputs.paths(0, 2), _tasks(server, 0, 30), "a")
        commits = []  # (job, requests the server held as it was committed)

        def complete(feeding: bool) -> None:
            for job, done in fetcher.complete(lambda status: None, feeding):
                commits.append((job, server.now))
                results[job] = done

        results = {}
        complete(feeding=True)  # returns once the first shard's tasks started
        assert commits == []
        second = fetcher.begin(outputs.paths(1, 2), _tasks(server, 100, 30), "b")
        complete(feeding=True)
        complete(feeding=False)
        fetcher.close()
    # The first shard committed with the second's requests held by the
    # server (one shard at a time, none would be).
    assert [job for job, _ in commits] == [first, second]
    assert commits[0][1] > 0
    last = [(second, results[second])]
    assert [job for job, _ in last] == [second]
    for _, (images, _) in last:
        assert set(images["status"].to_pylist()) == {"ok"}
    assert server.answered == 60
    for job, start in ((first, 0), (second, 100)):
        with tarfile.open(job.paths.tar) as tar:
            names = tar.getnames()
        expected = [f"{i:016x}" for i in range(start, start + 30)]
        assert names[0::2] == [f"{i}.jpg" for i in expected]
        assert names[1::2] == [f"{i}.json" for i in expected]


def test_a_failure_removes_every_open_shards_tar(tmp_path):
    with BusyServer(HOSTS, hold=0.05, body=BODY) as server:
        fetcher = _fetcher(tmp_path)
        outputs = fetcher._outputs
        for shard in range(2):
            fetcher.begin(outputs.paths(shard, 2), _tasks(server, 100 * shard, 10), "x")

        seen = []

        def fail_on_the_fifth(status) -> None:
            seen.append(status)
            if len(seen) == 5:
                raise OSError("disk full")

        with pytest.raises(OSError, match="disk full"):
            list(fetcher.complete(fail_on_the_fifth))
        fetcher.close()
    left = [f for _, _, files in os.walk(tmp_path) for f in files]
    assert left == []
