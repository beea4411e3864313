"""tools/dataset over real runs: a snapshot, its refresh sharing its tars, a
fetch run; read with `samples` and with the standard WebDataset reader through
the manifest's URLs (tests/support/refreshed_snapshot.py)."""

from __future__ import annotations

import json
import pickle
import tarfile

import pytest
import webdataset as wds

from oibeam.tools.dataset import (
    deleted,
    samples,
    shard_urls,
    skip_deleted,
    with_labels,
)
from oibeam.tools.runs import NotARun

from support.refreshed_snapshot import REMOVED, REPLACED, build
from support.snapshot_release import shard_paths


@pytest.fixture(scope="module")
def runs(fault_server, tmp_path_factory):
    return build(fault_server, tmp_path_factory.mktemp("dataset"))


def _labels(sample) -> set:
    return {(r["LabelName"], r["Confidence"], r["Source"]) for r in sample["labels"]}


def _read(run) -> dict:
    """ImageID -> (jpg, labels) of samples(run); each key once."""
    found = {}
    for sample in samples(str(run)):
        assert sample["__key__"] not in found, sample["__key__"]
        assert json.loads(sample["json"])["ImageID"] == sample["__key__"]
        found[sample["__key__"]] = (sample["jpg"], _labels(sample))
    return found


def test_manifest_urls_resolve_the_pool(runs):
    urls = shard_urls(str(runs.s2))
    assert urls == [str(p) for p in shard_paths(runs.s2)]
    assert any("/pool/s1/" in u for u in urls) and any("/pool/s2/" in u for u in urls)
    assert all("/../" not in u for u in urls)
    assert shard_urls(str(runs.root)) == urls  # ROOT: its LATEST, s2


def test_refresh_yields_exactly_its_images_with_its_labels(runs):
    old = set(runs.old_bytes.values())
    # s2's tars do hold what it must not yield: the removed image and the
    # replaced image's old bytes, in the s1 tars it shares.
    in_tars = set()
    for url in shard_urls(str(runs.s2)):
        with tarfile.open(url) as tar:
            in_tars |= {tar.extractfile(m).read() for m in tar if m.isfile()}
    assert old <= in_tars
    gone = deleted(str(runs.s2))
    assert {i for ids in gone.values() for i in ids} == {REMOVED, REPLACED}
    assert set(gone) <= set(shard_urls(str(runs.s2)))

    found = _read(runs.s2)
    assert found == runs.expected_s2
    assert REMOVED not in found
    assert not old & {jpg for jpg, _ in found.values()}


def test_the_first_snapshot_still_reads_as_it_was(runs):
    assert deleted(str(runs.s1)) == {}
    assert _read(runs.s1) == runs.expected_s1


def test_without_labels(runs):
    first = next(samples(str(runs.s2), labels=False))
    assert set(first) == {"__key__", "__url__", "jpg", "json"}


def test_standard_webdataset_reader_reads_the_refresh_through_its_manifest(runs):
    run = str(runs.s2)
    pipeline = (
        wds.WebDataset(shard_urls(run), shardshuffle=False)
        .select(skip_deleted(run))
        .map(with_labels(run))
    )
    # As DataLoader workers get them: pickled.
    pickled = (
        wds.WebDataset(shard_urls(run), shardshuffle=False)
        .select(pickle.loads(pickle.dumps(skip_deleted(run))))
        .map(pickle.loads(pickle.dumps(with_labels(run))))
    )
    read = [(s["__key__"], s["__url__"], s["jpg"], _labels(s)) for s in pipeline]
    ours = [(s["__key__"], s["__url__"], s["jpg"], _labels(s)) for s in samples(run)]
    assert read == ours
    assert [(s["__key__"], s["jpg"], _labels(s)) for s in pickled] == [
        (k, jpg, labels) for k, _, jpg, labels in ours
    ]
    assert {k: (jpg, labels) for k, _, jpg, labels in read} == runs.expected_s2
    # Without the select, the reader would yield the bytes s2 does not hold.
    raw = {s["__key__"] for s in wds.WebDataset(shard_urls(run), shardshuffle=False)}
    assert REMOVED in raw


def test_the_callables_refuse_a_url_shard_urls_did_not_give(runs):
    sample = next(samples(str(runs.s1), labels=False))
    sample["__url__"] = sample["__url__"].replace("/root/", "/root/./")
    with pytest.raises(ValueError, match="not a tar of"):
        skip_deleted(str(runs.s2))(sample)
    with pytest.raises(ValueError, match="not a tar of"):
        with_labels(str(runs.s2))(sample)


def test_a_fetch_run_has_nothing_deleted_and_labels_from_its_images_table(runs):
    assert deleted(str(runs.fetch)) == {}
    assert all("/shards/" in u for u in shard_urls(str(runs.fetch)))
    assert _read(runs.fetch) == runs.expected_s2


def test_not_a_run(tmp_path):
    with pytest.raises(NotARun):
        shard_urls(str(tmp_path))
