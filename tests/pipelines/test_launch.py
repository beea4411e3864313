"""Class files read where a command launches (for --label names) are read like
every other input: inflated by our reader, a cut one stops the run naming it,
and their text is bounded."""

import gzip
import shutil

import pytest

from oibeam.pipelines.launch import load_class_names
from oibeam.transforms.read import classes
from oibeam.transforms.read.input_files import InputError

from support.paths import V1_DICT, V3_IMAGES
from support.runs import run_cli


def test_class_names_are_read_from_compressed_files(tmp_path):
    (tmp_path / "dict.csv.gz").write_bytes(gzip.compress(V1_DICT.read_bytes()))
    names = load_class_names((str(tmp_path / "*.csv.gz"),))
    assert len(names) == 7881 and names["/m/0zvk5"] == "helmet"


def test_a_cut_class_file_stops_the_run_naming_it(tmp_path, capsys):
    dictionary = tmp_path / "dict.csv.gz"
    packed = gzip.compress(V1_DICT.read_bytes())
    dictionary.write_bytes(packed[: len(packed) // 2])  # "helmet" is its last row
    out = tmp_path / "out"
    code = run_cli(
        "fetch",
        *("--images", V3_IMAGES, "--classes", dictionary, "--label", "helmet"),
        *("--output", out),
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("oibeam fetch: error: "), err
    assert f"{dictionary}: its gzip data ends early" in err[0]
    assert not (out / "manifest.json").exists()


def test_a_class_file_of_more_text_than_the_cap_is_refused(tmp_path, monkeypatch):
    dictionary = tmp_path / "dict.csv"
    shutil.copy(V1_DICT, dictionary)
    monkeypatch.setattr(classes, "MAX_CLASS_BYTES", 1000)
    with pytest.raises(InputError, match="more than 1,000 bytes") as refused:
        load_class_names((str(dictionary),))
    assert str(dictionary) in str(refused.value)
