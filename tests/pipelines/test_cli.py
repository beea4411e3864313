"""The command line: runner defaults, flag handling, help and errors."""

import pytest

from oibeam.pipelines.beam_options import (
    LOCAL_WORKERS,
    BeamFlagError,
    check_known,
    with_local_default,
)
from oibeam.pipelines.options.beam_commands import tables_parser

from support.paths import V3_HUMAN, V3_IMAGES
from support.runs import run_cli


def test_local_runner_is_chosen_explicitly():
    assert with_local_default([]) == [
        "--runner=FnApiRunner",
        f"--direct_num_workers={LOCAL_WORKERS}",
    ]
    assert with_local_default(["--runner", "DirectRunner"])[:2] == [
        "--runner",
        "FnApiRunner",
    ]
    assert with_local_default(["--runner=DirectRunner", "--direct_num_workers=1"]) == [
        "--runner=FnApiRunner",
        "--direct_num_workers=1",
    ]
    dataflow = ["--runner=DataflowRunner", "--project=p"]
    assert with_local_default(dataflow) == dataflow


def test_unknown_flags_are_refused_not_dropped():
    check_known(["--runner=FnApiRunner", "--temp_location=/tmp", "--label", "team=ml"])
    with pytest.raises(BeamFlagError, match="--temp_locatoin"):
        check_known(["--temp_locatoin=/tmp"])


def test_label_is_beams_job_label_not_our_labels_flag():
    args, beam_args = tables_parser().parse_known_args(
        ["--labels", "a.csv", "b.csv", "--label", "team=ml", "--images", "i.csv"]
    )
    assert args.labels == ["a.csv", "b.csv"]
    assert beam_args == ["--label", "team=ml"]


def test_help_and_usage(capsys):
    with pytest.raises(SystemExit) as e:
        run_cli("tables", "--help")
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--images",
        "--labels",
        "--classes",
        "--output",
        "--trainable-rule",
        "--min-train-images",
        "--split-bytes",
    ):
        assert flag in out
    assert run_cli() == 2
    assert "commands:" in capsys.readouterr().err


def test_bad_flags_exit_2_with_a_message(tmp_path, capsys):
    code = run_cli(
        "tables",
        "--images",
        V3_IMAGES,
        "--labels",
        V3_HUMAN,
        "--output",
        tmp_path / "o",
        "--no_such_beam_flag=1",
    )
    assert code == 2
    assert "unknown flag(s): --no_such_beam_flag=1" in capsys.readouterr().err
    code = run_cli("tables", "--images", V3_IMAGES, "--output", tmp_path / "o")
    assert code == 2
    assert "--labels is required" in capsys.readouterr().err


def test_python_dash_m_pipelines_is_the_cli():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "tables" in done.stdout and "sample" in done.stdout
