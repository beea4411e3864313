"""`oibeam gc`'s decisions (tools/gc/plan.py) and its usage errors."""

from __future__ import annotations

import datetime

import pytest

from oibeam.tools.gc.plan import (
    Found,
    dead_images,
    plan_pool,
    published_at,
    retain,
)

from support.runs import run_cli

NOW = datetime.datetime(2026, 12, 10, 12, 0, tzinfo=datetime.timezone.utc)


def days_ago(n: float) -> datetime.datetime:
    return NOW - datetime.timedelta(days=n)


# s1 oldest ... s5 newest; u1 unfinished.
FOUND = [
    Found("s3", True, days_ago(5)),
    Found("s1", True, days_ago(30)),
    Found("s5", True, days_ago(0.5)),
    Found("u1", False),
    Found("s2", True, days_ago(20)),
    Found("s4", True, days_ago(2)),
]


def test_keep_n_keeps_the_newest_by_publish_time():
    kept = retain(FOUND, "s5", keep=2, keep_days=None, now=NOW)
    assert kept.kept == ("s5", "s4")
    assert kept.expired == ("s3", "s2", "s1")
    assert kept.unfinished == ("u1",)


def test_keep_days_keeps_what_was_published_within_them():
    kept = retain(FOUND, "s5", keep=None, keep_days=6, now=NOW)
    assert kept.kept == ("s5", "s4", "s3")
    assert kept.expired == ("s2", "s1")
    both = retain(FOUND, "s5", keep=4, keep_days=1, now=NOW)
    assert both.kept == ("s5", "s4", "s3", "s2")


def test_latest_is_always_kept_and_unfinished_never_expire():
    kept = retain(FOUND, "s1", keep=1, keep_days=None, now=NOW)
    assert kept.kept == ("s5", "s1")
    assert "u1" not in kept.kept + kept.expired
    assert kept.unfinished == ("u1",)
    only_unfinished = retain([Found("u1", False)], None, 1, None, NOW)
    assert only_unfinished == (
        type(only_unfinished)((), (), ("u1",))
    )  # nothing complete: nothing kept or expired


def test_keep_or_keep_days_is_required_and_keep_is_at_least_one():
    with pytest.raises(ValueError, match="--keep"):
        retain(FOUND, "s5", keep=None, keep_days=None, now=NOW)
    with pytest.raises(ValueError, match="at least 1"):
        retain(FOUND, "s5", keep=0, keep_days=None, now=NOW)


def test_publish_time_comes_from_success_else_the_manifest():
    when = "2026-12-06T05:03:43.802619+00:00"
    expected = datetime.datetime.fromisoformat(when)
    assert published_at(f"# published {when}\nabc  manifest.json\n") == expected
    assert published_at("2026-11-20T04:00:00+00:00\n") == datetime.datetime(
        2026, 11, 20, 4, tzinfo=datetime.timezone.utc
    )  # _SUCCESS before digests: only the time
    assert published_at("", when) == expected
    assert published_at("garbage\n", when) == expected
    with pytest.raises(ValueError):
        published_at("garbage\n", None)


def test_pool_files_no_kept_snapshot_lists_are_deleted():
    referenced = {"pool/s1/images-00000-of-00002.tar", "pool/s2/images-00000.tar"}
    files = [
        "pool/s1/images-00000-of-00002.tar",  # kept: s2 shares it
        "pool/s1/images-00000-of-00002.tar.erased.json",  # its erasure record
        "pool/s1/images-00001-of-00002.tar",  # no kept snapshot lists it
        "pool/s1/images-00001-of-00002.tar.erased.json",
        "pool/s1/.tmp-0123-images-00001-of-00002.tar",  # a dead run's leftover
        "pool/s2/images-00000.tar",
        "pool/u1/images-00000.tar",  # an unfinished snapshot's: untouched
        "pool/u1/.tmp-4567-images-00001.tar",
        "pool/s0/images-00000.tar",  # of a snapshot long gone
        "pool/s0/_EXPIRED",
        "pool/stray.txt",
    ]
    plan = plan_pool(files, referenced, ["u1"], ["s2"], expired=["s1"])
    assert plan.delete == (
        "pool/s0/_EXPIRED",
        "pool/s0/images-00000.tar",
        "pool/s1/.tmp-0123-images-00001-of-00002.tar",
        "pool/s1/images-00001-of-00002.tar",
        "pool/s1/images-00001-of-00002.tar.erased.json",
        "pool/stray.txt",
    )
    # s1 is expired but s2 shares its shards: its pool is marked, and the mark
    # stays; s2 is kept, so its own pool needs none.
    assert plan.marks == ("s1",)
    again = plan_pool([*files, "pool/s1/_EXPIRED"], referenced, ["u1"], ["s2"])
    assert "pool/s1/_EXPIRED" not in again.delete


def test_the_mark_of_a_pool_that_keeps_nothing_goes_with_it():
    plan = plan_pool(["pool/s1/a.tar"], set(), [], ["s2"], expired=["s1"])
    assert plan.marks == ("s1",)
    assert plan.delete == ("pool/s1/_EXPIRED", "pool/s1/a.tar")


def test_dead_images_are_deleted_somewhere_and_indexed_nowhere():
    deleted = [("a", "pool/s1/x.tar"), ("b", "pool/s1/x.tar"), ("c", "pool/s1/y.tar")]
    live = [("b", "pool/s1/x.tar"), ("c", "pool/s2/z.tar"), ("c", "pool/s1/y.tar")]
    assert dead_images(deleted, live) == {"pool/s1/x.tar": {"a"}}
    assert dead_images(deleted, []) == {
        "pool/s1/x.tar": {"a", "b"},
        "pool/s1/y.tar": {"c"},
    }


def test_usage_errors_exit_2(tmp_path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    assert run_cli("gc", root) == 2
    assert "give --keep N, --keep-days D or both" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        run_cli("gc", root, "--keep", "0")
    assert exit_.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    assert run_cli("gc", tmp_path / "nope", "--keep", "1") == 2
    assert "no such snapshot root" in capsys.readouterr().err
    assert run_cli("gc", "s3://bucket/root", "--keep", "1") == 2
    assert "local paths and gs:// only" in capsys.readouterr().err
    assert list(root.iterdir()) == []


def test_an_empty_root_has_nothing_to_do(tmp_path, capsys):
    assert run_cli("gc", tmp_path, "--keep-days", "3") == 0
    assert capsys.readouterr().out.strip().startswith("total: expired 0 snapshot(s)")
