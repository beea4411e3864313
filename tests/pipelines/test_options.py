"""Flag groups: every flag fills a parameter of the config it builds, defaults
are the config's own, and each command's parser yields the config it runs."""

from __future__ import annotations

import inspect
import os
import re

import pytest

from oibeam.pipelines.options import tool_commands
from oibeam.pipelines.options.beam_commands import (
    FetchRunConfig,
    SnapshotConfig,
    TablesConfig,
    fetch_parser,
    snapshot_parser,
    tables_parser,
)
from oibeam.pipelines.options.fetching import FETCH, POLICY
from oibeam.pipelines.options.inputs import OUTPUT, RULE, inputs_group
from oibeam.pipelines.options.selection import LABELS, SELECTION
from oibeam.pipelines.options.snapshot import SNAPSHOT
from oibeam.transforms.fetch.fetch_config import FetchConfig, FetchPolicy
from oibeam.transforms.select.selection import Selection
from oibeam.transforms.stats.trainable import PRESETS

GROUPS = [inputs_group(True), OUTPUT, RULE, LABELS, SELECTION, FETCH, POLICY, SNAPSHOT]
BASE = ["--images", "i.csv", "--labels", "l.csv", "--output", "out/"]


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.build.__name__)
def test_every_flag_fills_a_parameter_of_what_its_group_builds(group):
    params = inspect.signature(group.build).parameters
    for f in group.flags:
        assert f.target in params, (f.name, f.target)


def _parse(parser, argv):
    args, beam_args = parser.parse_known_args(argv)
    assert beam_args == []
    return args


def test_defaults_are_the_configs_own():
    config = FetchRunConfig.from_args(_parse(fetch_parser(), BASE))
    assert config.fetch == FetchConfig()
    assert config.fetch.policy == FetchPolicy()
    assert config.selection == Selection()
    assert config.rule == PRESETS["v1"]
    # Absolute (workers run in other directories), trailing slash dropped.
    assert config.output.output == os.path.abspath("out")
    assert config.inputs.images == (os.path.abspath("i.csv"),)


def test_a_full_fetch_command_line():
    argv = BASE + [
        "--label",
        "Dog",
        "--label",
        "/m/cat",
        "--subset",
        "validation",
        "--subset",
        "validation",
        "--label-source",
        "human",
        "--image-source",
        "thumbnail",
        "--min-confidence",
        "0.5",
        "--max-per-label",
        "7",
        "--timeout",
        "3",
        "--allow-private-hosts",
        "--concurrency",
        "4",
        "--trainable-rule",
        "v2",
        "--min-train-images",
        "9",
    ]
    config = FetchRunConfig.from_args(_parse(fetch_parser(), argv))
    assert config.labels.names == ("Dog", "/m/cat")
    assert config.selection.subsets == ("validation",)
    assert config.selection.source == "human"
    assert config.selection.min_confidence == 0.5
    assert config.selection.max_per_label == 7
    assert config.fetch.source == "thumbnail"
    assert config.fetch.concurrency == 4
    assert config.fetch.policy.timeout == 3.0
    assert config.fetch.policy.allow_private_hosts
    assert config.fetch.policy.deadline == FetchPolicy().deadline
    assert (config.rule.name, config.rule.min_train) == ("v2+custom", 9)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--source", "human", "--source", "machine"], "two values for --label-source"),
        (["--label-source", "human", "--source", "machine"], "two values for"),
        (["--with-descendants", "--label", "Dog"], "--with-descendants needs"),
        (["--limit", "0"], "--limit must be >= 1"),
        (["--expand-ancestors"], "--expand-ancestors needs --hierarchy"),
    ],
)
def test_what_cannot_work_is_refused(argv, message):
    with pytest.raises(ValueError, match=message):
        FetchRunConfig.from_args(_parse(fetch_parser(), BASE + argv))


@pytest.mark.parametrize("output", ["/", "//", ""])
def test_an_output_root_of_nothing_is_refused(output):
    argv = ["--images", "i.csv", "--labels", "l.csv", "--output", output]
    with pytest.raises(ValueError, match="--output is required"):
        TablesConfig.from_args(_parse(tables_parser(), argv))


def test_labels_are_required_where_they_are(capsys):
    argv = ["--images", "i.csv", "--output", "o"]
    FetchRunConfig.from_args(_parse(fetch_parser(), argv))
    for parser in (tables_parser, snapshot_parser):
        with pytest.raises(SystemExit):
            parser().parse_known_args(argv)
        assert "required: --labels" in capsys.readouterr().err
    for flag, without in (
        ("--images", ["--output", "o"]),
        ("--output", ["--images", "i.csv"]),
    ):  # required everywhere
        with pytest.raises(SystemExit):
            fetch_parser().parse_known_args(without)
        assert f"required: {flag}" in capsys.readouterr().err
    usage = " ".join(tables_parser().format_usage().split())
    assert "--labels PATTERN [PATTERN ...] [--classes" in usage  # not [bracketed]


def test_local_paths_are_made_absolute_and_uris_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["--images", "a/*.csv", "gs://b/i.csv", "--labels", "~/l.csv"]
    argv += ["--hierarchy", "h.json", "--boxes", "../x.csv", "--output", "gs://o/r/"]
    config = TablesConfig.from_args(_parse(tables_parser(), argv))
    assert config.inputs.images == (f"{tmp_path}/a/*.csv", "gs://b/i.csv")
    assert config.inputs.labels == (os.path.expanduser("~/l.csv"),)
    assert config.inputs.hierarchy == f"{tmp_path}/h.json"
    assert config.inputs.boxes == (f"{tmp_path.parent}/x.csv",)
    assert config.output.output == "gs://o/r"


def test_snapshot_options():
    config = SnapshotConfig.from_args(
        _parse(snapshot_parser(), BASE + ["--snapshot-id", "n1", "--no-report"])
    )
    assert config.directory == os.path.abspath("out/n1")
    assert not config.snapshot.report and not config.snapshot.retry_all
    args = _parse(snapshot_parser(), BASE)
    assert args.snapshot_id is None  # the time is taken when the config is built
    default = SnapshotConfig.from_args(args)
    assert default.snapshot.snapshot_id.endswith("Z")  # the UTC time
    with pytest.raises(ValueError, match="never overwritten"):
        SnapshotConfig.from_args(_parse(snapshot_parser(), BASE + ["--overwrite"]))
    for refused in ("LATEST", "pool", "gc", "nl\n", "a/b", ".hidden", "x" * 129):
        with pytest.raises(ValueError, match="--snapshot-id"):
            SnapshotConfig.from_args(
                _parse(snapshot_parser(), BASE + ["--snapshot-id", refused])
            )


def test_the_manifest_records_options_by_group():
    config = SnapshotConfig.from_args(_parse(snapshot_parser(), BASE))
    recorded = config.as_json()
    assert set(recorded) == {
        "inputs",
        "output",
        "rule",
        "labels",
        "selection",
        "fetch",
        "snapshot",
        "duplicates",
    }
    # a refresh compares these with its parent's (PreviousSnapshot.fetch_options)
    assert {"source", "url_template", "verify"} <= set(recorded["fetch"])


def test_the_deprecated_source_still_says_both_things(caplog):
    argv = BASE + ["--source", "human", "thumbnail"]
    config = FetchRunConfig.from_args(_parse(fetch_parser(), argv))
    assert (config.selection.source, config.fetch.source) == ("human", "thumbnail")
    assert "--source is deprecated" in caplog.text


@pytest.mark.parametrize(
    "flag, values, field",
    [
        ("--label", ["Car", "Dog", "Person"], lambda c: c.labels.names),
        ("--subset", ["validation", "train"], lambda c: c.selection.subsets),
        ("--labels", ["l.csv", "m.csv", "n.csv"], lambda c: c.inputs.labels),
    ],
)
def test_every_value_after_a_repeatable_flag_is_taken(flag, values, field):
    argv = ["--images", "i.csv", "--output", "o", flag, *values]
    if flag != "--labels":
        argv += ["--labels", "l.csv", "m.csv", "n.csv"]
    args, beam_args = fetch_parser().parse_known_args(argv)
    assert beam_args == []
    if flag == "--labels":  # paths are made absolute
        values = [os.path.abspath(v) for v in values]
    assert field(FetchRunConfig.from_args(args)) == tuple(values)


def _described(parser) -> dict[str, str]:
    """Each flag's entry in --help, whitespace collapsed."""
    options = parser.format_help().split("\n  --")[1:]
    return {o.split()[0]: " ".join(o.split()) for o in options}


def test_help_shows_defaults():
    described = _described(fetch_parser())
    for flag in ("timeout", "concurrency", "trainable-rule", "split-bytes"):
        assert "(default: " in described[flag], described[flag]


@pytest.mark.parametrize(
    "parser",
    [
        tables_parser,
        fetch_parser,
        snapshot_parser,
        tool_commands.verify_parser,
        tool_commands.report_parser,
        tool_commands.export_parser,
        tool_commands.sample_parser,
        tool_commands.sample_server_parser,
    ],
    ids=lambda p: p.__name__,
)
def test_every_flag_is_described_not_only_named(parser):
    bare = [
        name
        for name, text in _described(parser()).items()
        if len(re.sub(r"\(default: [^)]*\)", "", text).split()) <= 2
    ]
    assert bare == []
