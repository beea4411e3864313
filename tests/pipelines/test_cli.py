"""The command line: runner defaults, flag handling, help and errors."""

import re

import apache_beam
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
        + ["--output", "o"]
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
    with pytest.raises(SystemExit) as exited:  # argparse: a required flag
        run_cli("tables", "--images", V3_IMAGES, "--output", tmp_path / "o")
    assert exited.value.code == 2
    assert "the following arguments are required: --labels" in capsys.readouterr().err


def test_python_dash_m_oibeam_pipelines_is_the_cli(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "oibeam.pipelines", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # the installed package, not the checkout's folders
    )
    assert done.returncode == 0
    assert "tables" in done.stdout and "sample" in done.stdout


def test_version(capsys):
    assert run_cli("--version") == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"oibeam \S+ \(apache-beam \S+\)\n", out), out
    assert apache_beam.__version__ in out


def test_sample_server_without_served_images_is_a_clear_error(tmp_path, capsys):
    assert run_cli("sample-server", "--root", tmp_path, "--port", "0") == 2
    err = capsys.readouterr().err
    assert "holds no images to serve" in err and "--serve-base" in err
    assert "Traceback" not in err
