"""Shard names an index may hold, and where each one lives."""

from __future__ import annotations

import pytest

from oibeam.transforms.shard.locations import (
    from_run_relative,
    is_shard_name,
    listed_path,
    pool_parts,
    pooled,
    run_relative,
    shard_location,
)

TAR = "images-00001-of-00004.tar"


@pytest.mark.parametrize("run", ["/data/root/s2", "/data/root/s2/", "gs://b/root/s2"])
def test_both_forms_resolve_beside_the_run(run):
    base = run.rstrip("/").rsplit("/", 1)[0]
    assert shard_location(run, TAR) == f"{run.rstrip('/')}/shards/{TAR}"
    assert shard_location(run, pooled("s1", TAR)) == f"{base}/pool/s1/{TAR}"
    assert run_relative(TAR) == f"shards/{TAR}"
    assert run_relative(f"pool/s1/{TAR}") == f"../pool/s1/{TAR}"
    assert listed_path(run, f"../pool/s1/{TAR}") == f"{base}/pool/s1/{TAR}"
    assert listed_path(run, "tables/images/part-0.parquet") == (
        f"{run.rstrip('/')}/tables/images/part-0.parquet"
    )


def test_pool_names_round_trip():
    name = pooled("20261206T031500Z", TAR)
    assert name == f"pool/20261206T031500Z/{TAR}"
    assert pool_parts(name) == ("20261206T031500Z", TAR)
    assert from_run_relative(run_relative(name)) == name
    assert from_run_relative(f"shards/{TAR}") is None


@pytest.mark.parametrize(
    "shard",
    [
        "",
        ".",
        "..",
        "/etc/passwd",
        "../elsewhere.tar",
        "sub/x.tar",
        "a\\b.tar",
        "x\n.tar",
        "pool/x.tar",
        "pool/../x.tar",
        "pool/s1/../x.tar",
        "pool/s1/sub/x.tar",
        "pool/.s1/x.tar",
        "pool/-s1/x.tar",
        "pool/s1/",
        "pool//x.tar",
        "../pool/s1/x.tar",
        "other/s1/x.tar",
        None,
        7,
    ],
)
def test_every_other_name_is_refused(shard):
    assert not is_shard_name(shard)
    assert pool_parts(shard) is None
    with pytest.raises(ValueError, match="not a shard name"):
        shard_location("/data/root/s2", shard)
    with pytest.raises(ValueError, match="not a shard name"):
        run_relative(shard)


@pytest.mark.parametrize(
    "path", ["../pool/../x.tar", "../../pool/s1/x.tar", "../x.tar", "..", "../pool"]
)
def test_a_manifest_path_leaving_the_run_is_not_a_pooled_shard(path):
    assert from_run_relative(path) is None
