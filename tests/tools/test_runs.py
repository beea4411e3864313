"""Finding a finished run and reading what its manifest says, for every
manifest shape a run of oibeam has written."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oibeam.tools.runs import BadManifest, NotARun, Run, resolve_run, statuses_of

from support.runs import run_cli

RULE = {
    "name": "v2",
    "train_source": "human",
    "min_train": 30,
    "validation_source": "human",
    "min_validation": 5,
}


def _manifest(**keys) -> dict:
    """The least a manifest has (every one oibeam ever wrote has more)."""
    return {"tables": {}, "rows": {}, "inputs": [], **keys}


def _run(directory, options: dict) -> Run:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps(_manifest(options=options)))
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
    listed = _manifest(
        tables={"images": {"files": [{"path": "tables/images/part-00001.parquet"}]}}
    )
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


def test_latest_must_name_a_snapshot_under_the_root(tmp_path):
    outside = tmp_path / "elsewhere"
    _run(outside, {})
    root = tmp_path / "root"
    root.mkdir()
    for named in ("../elsewhere", str(outside), "s1/../../elsewhere"):
        (root / "LATEST").write_text(f"{named}\n")
        with pytest.raises(NotARun, match="not a snapshot under"):
            resolve_run(str(root))
        with pytest.raises(NotARun, match="not a snapshot under"):
            resolve_run(str(root), complete=False)


OUTSIDE = [
    "/../../etc/passwd",
    "/etc/passwd",
    "../elsewhere/part.parquet",
    "tables/images/../../../elsewhere/part.parquet",
    "tables/images/./part.parquet",
    "tables//images/part.parquet",
    "gs://bucket/part.parquet",
    "tables\\..\\..\\part.parquet",
    "",
    7,
]


@pytest.mark.parametrize("path", OUTSIDE)
def test_table_files_refuse_a_path_outside_the_run(tmp_path, path):
    directory = tmp_path / "run"
    directory.mkdir()
    listed = _manifest(tables={"images": {"files": [{"path": path}]}})
    (directory / "manifest.json").write_text(json.dumps(listed))
    with pytest.raises(BadManifest, match="not a path inside the run's directory"):
        Run.load(str(directory))
    # A Run made some other way refuses it all the same, when read.
    run = Run(str(directory), listed)
    with pytest.raises(BadManifest, match=re.escape(f"{path!r} is not a path inside")):
        run.table_files("images")


def _text(**keys) -> str:
    return json.dumps(_manifest(**keys))


NOT_MANIFESTS = {
    "array": "[]",
    "not-json": '{"tables": ',
    "not-utf8": b'{"tables": "\xff"}',
    "empty-object": "{}",
    "no-rows": json.dumps({"tables": {}, "inputs": []}),
    "tables-a-list": _text(tables=[]),
    "table-a-list": _text(tables={"images": []}),
    "files-not-a-list": _text(tables={"images": {"files": 3}}),
    "entry-without-path": _text(tables={"images": {"files": [{"rows": 1}]}}),
    "rows-a-list": _text(rows=[]),
    "counts-not-numbers": _text(counts={"x": "1"}),
    "inputs-not-objects": _text(inputs=[1]),
    "snapshot-a-string": _text(snapshot="s1"),
}


@pytest.mark.parametrize("text", NOT_MANIFESTS.values(), ids=NOT_MANIFESTS.keys())
def test_a_manifest_that_is_not_one_is_refused_by_load(tmp_path, text):
    directory = tmp_path / "run"
    directory.mkdir()
    data = text.encode() if isinstance(text, str) else text
    (directory / "manifest.json").write_bytes(data)
    with pytest.raises(BadManifest, match="manifest.json"):
        Run.load(str(directory))


@pytest.mark.parametrize("tool", ["report", "export"])
@pytest.mark.parametrize(
    "text",
    [*NOT_MANIFESTS.values(), None],
    ids=[*NOT_MANIFESTS.keys(), "outside"],
)
def test_report_and_export_say_one_line_and_exit_2(tmp_path, capsys, tool, text):
    directory = tmp_path / "run"
    (directory / "tables" / "images").mkdir(parents=True)
    if text is None:
        text = json.dumps(
            _manifest(tables={"images": {"files": [{"path": "/../../etc/passwd"}]}})
        )
    data = text.encode() if isinstance(text, str) else text
    (directory / "manifest.json").write_bytes(data)
    capsys.readouterr()
    args = ["--format", "jsonl"] if tool == "export" else []
    assert run_cli(tool, directory, *args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"oibeam {tool}: error: "), lines
    assert "manifest.json" in lines[0]
    assert not (directory / "report.html").exists()
    assert not (directory / "exports").exists()
