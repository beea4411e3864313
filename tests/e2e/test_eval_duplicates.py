"""--drop-eval-duplicates end to end: `oibeam fetch` and `oibeam snapshot` over
a release whose train images repeat validation and test images, every dropped
image counted, and `oibeam verify` content with the runs."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from oibeam.pipelines.eval_duplicates import listed_duplicates
from oibeam.tools.report.write_report import write_report
from oibeam.transforms.select.leakage import BY_MD5, LISTED
from oibeam.transforms.select.selection import Selection

from support.duplicates import replace_duplicates
from support.runs import run_cli
from support.snapshot_release import FLAGS, Photo, Release, diff_rows, snapshot_cli

IDS = [f"{i:016x}" for i in range(1, 7)]
# 1 is train with the bytes (so the OriginalMD5) of validation image 3; 5 is a
# train image a duplicates table puts in one group with test image 4.
SUBSETS = ["train", "train", "validation", "test", "train", "train"]
SEEDS = [1, 2, 1, 4, 5, 6]


def _release(server, directory: Path, prefix: str, subsets=SUBSETS) -> list[str]:
    release = Release(server, directory, prefix)
    for image_id, subset, seed in zip(IDS, subsets, SEEDS, strict=True):
        release.add(Photo(image_id, seed=seed, subset=subset))
    return release.write()


PAIRS = [
    (IDS[0], IDS[0], "train", "exact", "csv_md5", 0, IDS[2]),
    (IDS[0], IDS[2], "validation", "exact", "csv_md5", 0, IDS[0]),
    (IDS[3], IDS[3], "test", "near", "phash", 4, IDS[4]),
    (IDS[3], IDS[4], "train", "near", "phash", 4, IDS[3]),
]


def write_duplicates(run: Path, rows=PAIRS) -> None:
    """`run`'s duplicates table replaced: the exact pair 1/3 and the near
    pair 4/5 (or `rows`; [] for none at all, as in older runs)."""
    replace_duplicates(run, rows)


def _fetch(flags, out: Path, *extra) -> dict:
    assert run_cli("fetch", *flags, *FLAGS, "--output", out, *extra) == 0
    assert run_cli("verify", out) == 0
    return json.loads((out / "manifest.json").read_text())


def _selected(run: Path) -> set[str]:
    return set(pq.read_table(run / "tables" / "images")["ImageID"].to_pylist())


def _images_kept(manifest: dict) -> int:
    return sum(i["rows_kept"] for i in manifest["inputs"] if i["kind"] == "images")


@pytest.fixture(scope="module")
def release(fault_server, tmp_path_factory):
    directory = tmp_path_factory.mktemp("eval-duplicates")
    return directory, _release(fault_server, directory / "release", "evaldup")


@pytest.fixture(scope="module")
def plain(release):
    """A fetch without the flag, with a duplicates table added afterwards."""
    directory, flags = release
    out = directory / "plain"
    manifest = _fetch(flags, out)
    write_duplicates(out)
    return out, manifest


def test_without_the_flag_every_image_is_kept(plain):
    out, manifest = plain
    assert _selected(out) == set(IDS)
    assert "dropped" not in manifest
    assert not any(k.startswith("dropped:") for k in manifest["counts"])


def test_a_train_image_with_an_eval_md5_is_dropped(release, capsys):
    directory, flags = release
    out = directory / "md5"
    manifest = _fetch(flags, out, "--drop-eval-duplicates")
    assert (
        "train images dropped as duplicates of validation/test images: 1 "
        f"({LISTED} 0, {BY_MD5} 1)"
    ) in capsys.readouterr().out
    assert _selected(out) == set(IDS) - {IDS[0]}
    assert manifest["dropped"] == {BY_MD5: 1, LISTED: 0}
    assert manifest["counts"][f"dropped:{BY_MD5}"] == 1
    assert set(manifest["drop_vocabulary"]) == {BY_MD5, LISTED}
    # Every image of the inputs is selected or dropped with a reason.
    selected = manifest["counts"]["selected"]
    assert _images_kept(manifest) == selected + sum(manifest["dropped"].values())
    assert manifest["options"]["selection"]["drop_eval_duplicates"] is True
    # The report lists the drop with its reason.
    page = Path(write_report(str(out))).read_text(encoding="utf-8")
    table = page[page.index('<table id="dropped-table">') :]
    table = table[: table.index("</table>")]
    assert re.search(rf"<code>{BY_MD5}</code></td><td class=\"num\">1<", table)
    assert re.search(rf"<code>{LISTED}</code></td><td class=\"num\">0<", table)


def test_duplicates_from_drops_the_near_duplicate_too(release, plain):
    directory, flags = release
    source, _ = plain
    out = directory / "near"
    manifest = _fetch(flags, out, "--drop-eval-duplicates", "--duplicates-from", source)
    assert _selected(out) == set(IDS) - {IDS[0], IDS[4]}
    # 1 is listed too, but counted once: by its MD5, the first reason.
    assert manifest["dropped"] == {BY_MD5: 1, LISTED: 1}
    assert manifest["duplicates_from"] == {"path": str(source), "listed": 2}
    selected = manifest["counts"]["selected"]
    assert _images_kept(manifest) == selected + 2


def test_duplicates_from_a_run_without_the_table_is_refused(
    release, tmp_path, capsys, caplog
):
    directory, flags = release
    plain_run = tmp_path / "older"
    assert run_cli("fetch", *flags, *FLAGS, "--output", plain_run) == 0
    write_duplicates(plain_run, [])  # as a run from before duplicates
    code = run_cli(
        "fetch",
        *flags,
        *FLAGS,
        "--output",
        tmp_path / "out",
        "--drop-eval-duplicates",
        "--duplicates-from",
        plain_run,
    )
    assert code == 2
    assert "no duplicates table" in capsys.readouterr().err
    assert not (tmp_path / "out" / "manifest.json").exists()
    # As a refresh's --previous, such a run is no error: MD5s alone decide.
    selection = Selection(drop_eval_duplicates=True)
    with caplog.at_level(logging.INFO):
        listed, info = listed_duplicates(selection, str(plain_run))
    assert len(listed) == 0 and "duplicates_from" not in info
    assert "has no duplicates table" in caplog.text


def test_duplicates_from_needs_the_flag(release, plain, tmp_path, capsys):
    _, flags = release
    source, _ = plain
    out = tmp_path / "out"
    assert run_cli("fetch", *flags, "--output", out, "--duplicates-from", source) == 2
    assert "--duplicates-from goes with --drop-eval-duplicates" in (
        capsys.readouterr().err
    )


def test_without_eval_subsets_the_flag_is_a_no_op(fault_server, tmp_path, caplog):
    flags = _release(fault_server, tmp_path / "release", "evaldup-train", ["train"] * 6)
    with caplog.at_level(logging.INFO):
        manifest = _fetch(flags, tmp_path / "out", "--drop-eval-duplicates")
    assert _selected(tmp_path / "out") == set(IDS)
    assert manifest["dropped"] == {BY_MD5: 0, LISTED: 0}
    assert "the inputs have no validation or test image" in caplog.text


def test_a_refresh_reads_the_previous_snapshots_table(fault_server, tmp_path):
    flags = _release(fault_server, tmp_path / "release", "evaldup-snap")
    root = tmp_path / "snapshots"
    assert snapshot_cli(flags, root, "s1", "--no-report") == 0
    write_duplicates(root / "s1")
    args = ["--previous", "latest", "--drop-eval-duplicates", "--no-report"]
    assert snapshot_cli(flags, root, "s2", *args) == 0
    assert run_cli("verify", root / "s2") == 0
    assert _selected(root / "s2") == set(IDS) - {IDS[0], IDS[4]}
    manifest = json.loads((root / "s2" / "manifest.json").read_text())
    assert manifest["dropped"] == {BY_MD5: 1, LISTED: 1}
    assert manifest["duplicates_from"]["path"] == str(root / "s1")
    diff = diff_rows(root / "s2")
    assert {diff[i]["change"] for i in (IDS[0], IDS[4])} == {"removed"}
    assert {diff[i]["reason"] for i in (IDS[0], IDS[4])} == {"eval_duplicate"}
    # Nothing changed since s2, but its table is the one that counts now:
    # a third refresh with the flag has nothing left to drop.
    write_duplicates(root / "s2")
    assert snapshot_cli(flags, root, "s3", *args) == 0
    assert _selected(root / "s3") == _selected(root / "s2")
