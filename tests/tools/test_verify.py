"""`oibeam verify` on every kind of run the product writes (tables, fetch,
snapshot), each made for real here and then damaged on purpose: what verify
checks for each kind, what it says does not apply, the manifest's own digest
in `_SUCCESS`, paths a manifest must keep inside the run, and manifests that
are not manifests.

One release on the FaultServer (tests/support/snapshot_release.py), with an
image that is gone and an input row that is rejected, gives the three runs,
built once per module; each test breaks its own copy.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from oibeam.tools.verify.verify_run import verify_snapshot

from support.runs import run_cli
from support.snapshot_release import FLAGS, Photo, Release

PHOTOS = [f"{i:016x}" for i in range(1, 9)]
GONE = PHOTOS[2]
SHARD_FLAGS = ["--shard-bytes", "2500"]
KINDS = ("tables", "fetch", "snapshot")


@dataclass(frozen=True)
class Runs:
    base: Path

    def path(self, kind: str) -> Path:
        return self.base / ("root/s1" if kind == "snapshot" else kind)


@pytest.fixture(scope="module")
def runs(fault_server, tmp_path_factory) -> Runs:
    base = tmp_path_factory.mktemp("verify")
    release = Release(fault_server, base / "release", "verify-tool")
    for i, image_id in enumerate(PHOTOS):
        release.add(Photo(image_id, seed=i, labels=[("/m/cat", 0.9), ("/m/dog", 0.7)]))
    release.photos[GONE].route = "/status/404/{name}"
    flags = release.write()
    with open(flags[1], "a") as images:  # a row every run rejects (bad_image_id)
        images.write("not-an-id,train,http://x/y.jpg,,,,,,10,AAAA\n")
    assert run_cli("tables", *flags, "--output", base / "tables") == 0
    assert (
        run_cli("fetch", *flags, *FLAGS, *SHARD_FLAGS, "--output", base / "fetch") == 0
    )
    snapshot = [*FLAGS, *SHARD_FLAGS, "--snapshot-id", "s1", "--no-report"]
    assert run_cli("snapshot", *flags, *snapshot, "--output", base / "root") == 0
    return Runs(base)


@pytest.fixture
def copy(runs, tmp_path):
    """A private copy of a run of `kind`, to break."""

    made = 0

    def make(kind: str) -> Path:
        nonlocal made
        made += 1
        target = tmp_path / f"{kind}-{made}"
        if kind == "snapshot":  # the whole root: its shards are in the pool
            shutil.copytree(runs.path(kind).parent, target)
            return target / "s1"
        shutil.copytree(runs.path(kind), target)
        return target

    return make


@pytest.fixture
def verify(capsys):
    """`oibeam verify ARGS` -> (exit status, stdout)."""

    def run(*args) -> tuple[int, str]:
        capsys.readouterr()
        code = run_cli("verify", *args)
        return code, capsys.readouterr().out

    return run


def edit_manifest(run: Path, edit) -> None:
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def first(run: Path, pattern: str) -> Path:
    return sorted(run.glob(pattern))[0]


# --- every kind of run -----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_run_verifies_and_says_what_does_not_apply(runs, verify, kind):
    code, out = verify(runs.path(kind))
    assert code == 0, out
    head, *notes = out.strip().splitlines()
    assert head.startswith(f"{runs.path(kind)}: OK ({kind} run:"), head
    assert "files" in head
    notes = "\n".join(notes)
    if kind == "tables":
        assert "fetched no images" in notes and "shards" in notes
    if kind in ("tables", "fetch"):
        assert f"a {kind} run writes no _SUCCESS" in notes
        assert "manifest not signed" in notes
    else:
        assert "images" in head and "ok images" in head
        assert notes == ""  # everything applies, nothing to say


def test_a_tables_run_is_checked_file_by_file_and_count_by_count(copy, verify):
    good = copy("tables")
    report = verify_snapshot(str(good))
    assert report.ok and report.kind == "tables"
    assert report.checked["files"] == sum(
        1 for p in good.rglob("*") if p.is_file() and p.name != "manifest.json"
    )

    run = copy("tables")
    flip_byte(first(run, "tables/labels/*.parquet"), 40)
    with (run / "tables" / "trainable_labels.csv").open("a") as csv:
        csv.write("/m/cat,Cat\n")
    edit_manifest(run, lambda m: m["inputs"][0].update(rows_read=99))
    code, out = verify(run)
    assert code == 1
    assert "tables/labels/" in out and "checksum differs" in out
    assert "tables/trainable_labels.csv:" in out and "bytes" in out
    assert "read 99 rows, kept 8, rejected 1" in out
    assert "Traceback" not in out

    # Rejected rows: the errors table, the manifest's codes and its inputs agree.
    run = copy("tables")
    edit_manifest(run, lambda m: m["rejected_by_code"].update(bad_image_id=2))
    code, out = verify(run)
    assert code == 1 and "rejected" in out and "bad_image_id" in out


def test_a_fetch_run_is_checked_down_to_the_bytes_of_each_image(copy, verify):
    run = copy("fetch")
    tar = first(run, "shards/*.tar")
    flip_byte(tar, 1024)  # inside the first image's bytes
    code, out = verify(run)
    assert code == 1
    assert "checksum differs" in out and "OriginalMD5" not in out
    assert "_SUCCESS" not in out.split("note:")[0]  # not a problem of a fetch run
    code, out = verify("--deep", run)  # and which image it is
    assert code == 1
    assert "checksum differs" in out and "does not match its OriginalMD5" in out
    with pytest.raises(SystemExit, match="2"):  # one depth or the other
        verify("--quick", "--deep", run)

    run = copy("fetch")
    edit_manifest(run, lambda m: m["statuses"].update(ok=m["statuses"]["ok"] + 1))
    code, out = verify(run)
    assert code == 1 and "statuses in tables/images" in out

    run = copy("fetch")
    first(run, "shards/index/*.parquet").unlink()
    code, out = verify(run)
    assert code == 1 and "missing: shards/index/" in out


# --- the manifest's own digest ----------------------------------------------


def test_success_records_the_digest_of_the_manifest(runs):
    snapshot = runs.path("snapshot")
    digest = hashlib.sha256((snapshot / "manifest.json").read_bytes()).hexdigest()
    lines = (snapshot / "_SUCCESS").read_text().splitlines()
    assert f"{digest}  manifest.json" in lines
    if shutil.which("sha256sum"):  # the standard tool checks it too
        checked = subprocess.run(
            ["sha256sum", "--check", "--strict", "_SUCCESS"],
            cwd=snapshot,
            capture_output=True,
            text=True,
        )
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout == "manifest.json: OK\n"


def _parent(m):
    m["snapshot"]["parent"] = "s0"


def _private_hosts(m):
    m["options"]["fetch"]["policy"]["allow_private_hosts"] = False


def _rule(m):
    m["options"]["rule"]["min_train"] = 1


def _input_md5(m):
    m["inputs"][0]["md5"] = "0" * 32


@pytest.mark.parametrize("edit", [_parent, _private_hosts, _rule, _input_md5])
def test_an_edited_manifest_fails_verify(copy, verify, edit):
    run = copy("snapshot")
    edit_manifest(run, edit)
    code, out = verify(run)
    assert code == 1
    assert "manifest.json has changed since the snapshot was published" in out
    code, out = verify("--quick", run)
    assert code == 1 and "has changed" in out


def test_a_snapshot_from_before_digests_verifies_with_a_note(copy, verify):
    run = copy("snapshot")
    (run / "_SUCCESS").write_text("2026-11-30T10:00:00.000000+00:00\n")
    code, out = verify(run)
    assert code == 0, out
    assert ": OK (" in out
    assert "note: manifest not signed" in out


def test_a_garbled_digest_is_a_problem(copy, verify):
    run = copy("snapshot")
    (run / "_SUCCESS").write_text("# published then\nnot-a-digest  manifest.json\n")
    code, out = verify(run)
    assert code == 1 and "_SUCCESS" in out and "digest" in out


# --- paths a manifest names ---------------------------------------------------

OUTSIDE = [
    "/../../outside.parquet",
    "/etc/passwd",
    "../outside.parquet",
    "tables/labels/../../../outside.parquet",
    "tables//labels/part.parquet",
    "gs://elsewhere/outside.parquet",
]


@pytest.mark.parametrize("path", OUTSIDE)
def test_a_path_outside_the_run_is_a_problem_and_is_not_read(copy, path):
    run = copy("fetch")
    outside = run.parent / "outside.parquet"
    outside.write_bytes(b"PAR1 a file outside the run PAR1")
    entry = {"path": path, "rows": 1, "bytes": 1, "md5": "0" * 32}
    listed = json.loads((run / "manifest.json").read_text())["tables"]["errors"]
    edit_manifest(run, lambda m: m["tables"]["errors"]["files"].append(entry))
    report = verify_snapshot(str(run))
    assert report.problems == [
        f"manifest.json: tables.errors.files[{len(listed['files'])}]: {path!r} is "
        "not a path inside the run's directory: not read"
    ]  # and nothing else: no size, checksum or row count of what is there


def test_a_path_outside_a_snapshot_on_gcs_is_not_read(runs, gcs_emulator, verify):
    bucket = gcs_emulator.create_bucket("verify-paths")
    snapshot = runs.path("snapshot")
    for path in sorted(snapshot.parent.rglob("*")):
        if path.is_file():
            name = path.relative_to(snapshot.parent.parent).as_posix()
            bucket.blob(name).upload_from_filename(str(path))
    root = f"gs://{bucket.name}/root"
    code, out = verify(root)  # follows LATEST; reads every byte from gs://
    assert code == 0, out

    blob = bucket.blob("root/s1/manifest.json")
    manifest = json.loads(blob.download_as_bytes())
    stolen = bucket.blob("root/secret/data.parquet")
    stolen.upload_from_string(b"secret")
    manifest["tables"]["errors"]["files"].append(
        {"path": "../secret/data.parquet", "rows": 0, "bytes": 6, "md5": "0" * 32}
    )
    blob.upload_from_string(json.dumps(manifest))
    code, out = verify(f"{root}/s1")
    assert code == 1
    assert "'../secret/data.parquet' is not a path inside the run's directory" in out
    assert "has changed since the snapshot was published" in out


# --- manifests that are not manifests ------------------------------------------


def _text(**keys) -> str:
    return json.dumps({"tables": {}, "rows": {}, "inputs": [], **keys})


NOT_MANIFESTS = {
    "array": "[]",
    "not-json": '{"tables": ',
    "not-utf8": b'{"tables": "\xff"}',
    "empty-object": "{}",
    "tables-a-list": _text(tables=[]),
    "files-not-a-list": _text(tables={"images": {"files": 3}}),
    "entry-without-path": _text(
        tables={"images": {"rows": 1, "files": [{"rows": 1}]}}, rows={"images": 1}
    ),
    "rows-not-numbers": _text(rows={"images": "many"}, statuses=[]),
}


@pytest.mark.parametrize("kind", ["fetch", "snapshot"])
@pytest.mark.parametrize("text", NOT_MANIFESTS.values(), ids=NOT_MANIFESTS.keys())
def test_a_manifest_that_is_not_one_is_a_problem_not_a_traceback(
    copy, verify, kind, text
):
    run = copy(kind)
    data = text.encode() if isinstance(text, str) else text
    (run / "manifest.json").write_bytes(data)
    code, out = verify(run)
    assert code == 1
    head, *problems = out.strip().splitlines()
    assert "problem(s)" in head
    assert any("manifest.json" in p for p in problems), out


def test_an_entry_missing_a_key_is_a_problem_and_the_rest_is_checked(copy, verify):
    run = copy("fetch")

    def drop_md5(m):
        del m["tables"]["errors"]["files"][0]["md5"]

    edit_manifest(run, drop_md5)
    flip_byte(first(run, "shards/*.tar"), 1024)
    code, out = verify("--deep", run)
    assert code == 1
    assert "tables.errors.files[0]: no md5" in out
    assert "does not match its OriginalMD5" in out  # the rest was still checked


def test_a_table_file_that_is_not_parquet_is_a_problem(copy, verify):
    run = copy("tables")
    part = first(run, "tables/label_stats/*.parquet")
    size = part.stat().st_size
    part.write_bytes(b"x" * size)
    code, out = verify("--quick", run)
    assert code == 1 and "tables/label_stats/" in out and "Parquet" in out
