"""Finding a finished run and reading what its manifest says, for every
manifest shape a run of oibeam has written."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oibeam.tools.runs import NotARun, Run, resolve_run, statuses_of

RULE = {
    "name": "v2",
    "train_source": "human",
    "min_train": 30,
    "validation_source": "human",
    "min_validation": 5,
}


def _run(directory, options: dict) -> Run:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps({"options": options}))
    return Run.load(str(directory))


@pytest.mark.parametrize(
    "options",
    [
        # by flag group (every command now)
        {"inputs": {"expand_ancestors": True}, "rule": RULE, "fetch": {}},
        # `oibeam tables` before flag groups: at the top
        {"expand_ancestors": True, "rule": RULE},
        # fetch and snapshot before flag groups: under `tables`
        {"tables": {"expand_ancestors": True, "rule": RULE}, "fetch": {}},
    ],
    ids=["groups", "old-tables", "old-fetch"],
)
def test_table_options_are_found_in_every_manifest_shape(tmp_path, options):
    run = _run(tmp_path / "run", options)
    assert run.table_option("rule") == RULE
    assert run.table_option("expand_ancestors") is True
    assert run.table_option("hierarchy") is None


def test_a_snapshot_root_resolves_to_its_latest(tmp_path):
    _run(tmp_path / "root" / "s1", {})
    (tmp_path / "root" / "LATEST").write_text("s1\n")
    assert resolve_run(str(tmp_path / "root")) == str(tmp_path / "root" / "s1")
    assert resolve_run(str(tmp_path / "root" / "s1") + "/") == str(
        tmp_path / "root" / "s1"
    )


def test_no_manifest_and_no_latest_is_not_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotARun, match="no manifest.json"):
        resolve_run(str(tmp_path / "empty"))
    # LATEST naming an unfinished snapshot: only verify asks for it anyway
    (tmp_path / "root" / "s2").mkdir(parents=True)
    (tmp_path / "root" / "LATEST").write_text("s2\n")
    with pytest.raises(NotARun):
        resolve_run(str(tmp_path / "root"))
    assert resolve_run(str(tmp_path / "root"), complete=False).endswith("/s2")


def test_table_files_from_the_manifest_else_the_folder(tmp_path):
    directory = tmp_path / "run"
    images = directory / "tables" / "images"
    images.mkdir(parents=True)
    for name in ("part-00001.parquet", "part-00000.parquet", ".part-9.parquet"):
        pq.write_table(pa.table({"x": [1]}), images / name)
    run = Run.load(str(_run(directory, {}).directory))
    assert [p.rsplit("/", 1)[1] for p in run.table_files("images")] == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]  # a hidden temporary file is not a part
    listed = {
        "tables": {"images": {"files": [{"path": "tables/images/part-00001.parquet"}]}}
    }
    (directory / "manifest.json").write_text(json.dumps(listed))
    assert Run.load(str(directory)).table_files("images") == [
        f"{directory}/tables/images/part-00001.parquet"
    ]


def test_statuses_of_every_manifest_shape():
    assert statuses_of({"statuses": {"ok": 3, "gone": 1}, "counts": {}}) == {
        "ok": 3,
        "gone": 1,
    }
    older = {"counts": {"selected": 4, "status:ok": 3, "status:gone": 1}}
    assert statuses_of(older) == {"ok": 3, "gone": 1}
    assert statuses_of({"counts": {}}) == {} == statuses_of({})
