"""An unchanged refresh is published without a pipeline (and without loading
Beam), and is the snapshot the pipeline would have published."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from support.runs import run_cli
from support.snapshot_release import FLAGS, Photo, Release, manifest, snapshot_cli

NO_PIPELINE = "none: nothing changed since the previous snapshot"
# Run in a fresh interpreter: which modules `oibeam snapshot` loaded.
_PROBE = """
import sys
from oibeam.pipelines.cli import main
code = main(sys.argv[1:])
print("LOADED", "apache_beam" in sys.modules, "matplotlib" in sys.modules)
sys.exit(code)
"""


@pytest.fixture
def release(fault_server, tmp_path, request):
    made = Release(fault_server, tmp_path / "release", request.node.name[:40])
    for i in range(12):
        made.add(Photo(f"{i + 1:016x}", seed=i, labels=[("/m/cat", 0.8)]))
    made.photos[f"{5:016x}"].route = "/status/404/{name}"  # a final failure
    yield made
    fault_server.outage(())


def _snapshot(flags, root, snapshot_id, *extra) -> tuple[int, bool, bool]:
    """`oibeam snapshot` in its own process, without Beam flags (those are
    checked by Beam, so they load it): (exit status, Beam loaded, matplotlib
    loaded)."""
    oibeam_flags = FLAGS[: FLAGS.index("--direct_running_mode")]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, "snapshot", *flags, "--output", str(root)]
        + ["--snapshot-id", snapshot_id, *oibeam_flags, *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    loaded = [line for line in done.stdout.splitlines() if line.startswith("LOADED")]
    assert loaded, done.stderr[-2000:]
    _, beam, matplotlib = loaded[0].split()
    return done.returncode, beam == "True", matplotlib == "True"


def _without_run_facts(document: dict) -> dict:
    """A manifest less what differs between two runs of one snapshot (the
    tables' files are compared by their rows)."""
    facts = ("started", "finished", "runner", "versions", "snapshot", "options")
    facts += ("tables",)
    return {k: v for k, v in document.items() if k not in facts}


def _rows(snapshot, table: str):
    return pq.read_table(snapshot / table).sort_by("ImageID")


def test_unchanged_refresh_is_the_pipelines_snapshot_without_beam(
    release, tmp_path, fault_server
):
    flags = release.write()
    root = tmp_path / "snapshots"
    assert snapshot_cli(flags, root, "s1") == 0
    fault_server.reset_log()

    code, beam, matplotlib = _snapshot(flags, root, "s2", "--previous", "latest")
    assert (code, beam, matplotlib) == (0, False, False)
    assert fault_server.requests() == []
    s2 = manifest(root / "s2")
    assert s2["runner"] == NO_PIPELINE
    assert s2["snapshot"]["parent"]["id"] == "s1"
    assert s2["changes"] == {"carried": 12}
    assert s2["actions"] == {"keep": 1, "share": 11}
    assert (root / "LATEST").read_text().strip() == "s2"
    assert 'data-chart="' in (root / "s2" / "report.html").read_text()

    # The pipeline, asked to plan the same refresh, writes the same files.
    assert snapshot_cli(flags, root, "s3", "--previous", "s1", "--replan") == 0
    s3 = manifest(root / "s3")
    assert s3["runner"] != NO_PIPELINE
    assert _without_run_facts(s2) == _without_run_facts(s3)
    assert s2["options"]["selection"] == s3["options"]["selection"]
    for table in ("images", "diff", "labels", "deleted"):
        assert _rows(root / "s2", f"tables/{table}").equals(
            _rows(root / "s3", f"tables/{table}")
        ), table
    assert _rows(root / "s2", "shards/index").equals(_rows(root / "s3", "shards/index"))
    for table in ("diff", "labels", "label_stats", "label_counts", "errors"):
        assert s2["tables"][table] == s3["tables"][table], table  # byte for byte

    # Unchanged tables are the parent's files, linked; verify follows them.
    for table in ("tables/labels", "tables/images", "shards/index"):
        for s1_file in (root / "s1" / table).glob("*.parquet"):
            s2_file = root / "s2" / table / s1_file.name
            assert s1_file.stat().st_ino == s2_file.stat().st_ino
    assert run_cli("verify", "--deep", str(root / "s2")) == 0
    assert run_cli("export", str(root / "s2"), "--format", "jsonl") == 0


def test_a_changed_input_or_option_runs_the_pipeline(release, tmp_path):
    flags = release.write()
    root = tmp_path / "snapshots"
    assert snapshot_cli(flags, root, "s1") == 0

    # Same bytes under another name: still unchanged (contents are compared).
    moved = tmp_path / "moved.csv"
    labels = flags[flags.index("--labels") + 1]
    moved.write_bytes(open(labels, "rb").read())
    renamed = [str(moved) if f == labels else f for f in flags]
    assert snapshot_cli(renamed, root, "s2", "--previous", "latest") == 0
    assert manifest(root / "s2")["runner"] == NO_PIPELINE
    assert manifest(root / "s2")["inputs"][1]["path"] == str(moved)

    # One label changed (same size): the pipeline runs and sees it.
    text = open(labels).read()
    assert "0.8" in text
    open(labels, "w").write(text.replace("0.8", "0.7", 1))
    assert snapshot_cli(flags, root, "s3", "--previous", "latest") == 0
    s3 = manifest(root / "s3")
    assert s3["runner"] != NO_PIPELINE
    assert s3["changes"] == {"carried": 11, "changed": 1}

    # Another selection: the pipeline.
    assert snapshot_cli(flags, root, "s4", "--previous", "latest", "--limit", "5") == 0
    assert manifest(root / "s4")["runner"] != NO_PIPELINE


def test_retryable_failures_are_retried_by_the_pipeline(
    release, tmp_path, fault_server
):
    flags = release.write()
    root = tmp_path / "snapshots"
    fault_server.outage({release.name(f"{2:016x}")})
    assert snapshot_cli(flags, root, "s1") == 0
    fault_server.outage(())
    assert snapshot_cli(flags, root, "s2", "--previous", "latest") == 0
    s2 = manifest(root / "s2")
    assert s2["runner"] != NO_PIPELINE
    assert s2["actions"]["fetch"] == 1
    # Now nothing is left to do: the next refresh needs no pipeline, and
    # with --retry-all (a final failure to retry) it does.
    assert snapshot_cli(flags, root, "s3", "--previous", "latest") == 0
    assert manifest(root / "s3")["runner"] == NO_PIPELINE
    assert snapshot_cli(flags, root, "s4", "--previous", "latest", "--retry-all") == 0
    assert manifest(root / "s4")["runner"] != NO_PIPELINE


def test_an_unchanged_refresh_publishes_like_the_pipeline(release, tmp_path):
    """Immutable ids, LATEST moved only from what it said, the parent's id."""
    flags = release.write()
    root = tmp_path / "snapshots"
    assert snapshot_cli(flags, root, "s1") == 0
    assert snapshot_cli(flags, root, "s2", "--previous", "s1") == 0
    assert snapshot_cli(flags, root, "s2", "--previous", "s1") == 2  # complete
    # No pipeline runs, yet a mistyped Beam flag is refused, and a dry run
    # publishes nothing.
    assert snapshot_cli(flags, root, "s9", "--previous", "s1", "--num_wokers=2") == 2
    dataflow_dry_run = [
        "--shared-paths",  # the dry run reads the release and s1 here
        *("--runner", "DataflowRunner", "--dry_run", "True"),
        *("--project", "oibeam-tests", "--region", "us-central1"),
        *("--temp_location", "gs://oibeam-tests-bucket/tmp"),
    ]
    assert snapshot_cli(flags, root, "s9", "--previous", "s1", *dataflow_dry_run) == 0
    assert not (root / "s9").exists()
    assert (root / "LATEST").read_text().strip() == "s2"
    assert snapshot_cli(flags, root, "s3", "--previous", str(root / "s2")) == 0
    s3 = manifest(root / "s3")
    assert (s3["runner"], s3["snapshot"]["parent"]["id"]) == (NO_PIPELINE, "s2")
    success = (root / "s3" / "_SUCCESS").read_text()
    digest = hashlib.sha256((root / "s3" / "manifest.json").read_bytes())
    assert digest.hexdigest() in success
    assert json.loads((root / "s3" / "manifest.json").read_text())["rows"]["diff"] == 12
