"""Class descriptions: V1 dict.csv and V3 class-descriptions.csv, read for real;
the plan accepts the files the parser reads; class files are read bounded."""

import csv
import gzip
import hashlib
import shutil

import pytest

from oibeam.schemas import releases
from oibeam.schemas.tables import LINE
from oibeam.transforms.read import classes
from oibeam.transforms.read.classes import (
    ParsedClasses,
    ReadClassDescriptions,
    parse_classes,
    read_class_file,
    starts_like_classes,
)
from oibeam.transforms.read.csv_inputs import plan_inputs
from oibeam.transforms.read.input_files import DamagedInput, InputError

from support.headers import LABELS_HEADER
from support.paths import V1_DICT, V3_CLASSES
from support.runs import local_pipeline


def _reference(path):
    """Independent reading with the csv module (universal newlines)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [row for row in csv.reader(f) if row]


def test_v1_dict_every_mid_with_its_name():
    parsed = ParsedClasses()
    parse_classes(V1_DICT.read_bytes(), 0, 0, parsed)
    reference = _reference(V1_DICT)
    assert len(parsed.names) == len({mid for mid, _ in reference}) == 7881
    assert parsed.names["/m/06ht1"] == "room"
    assert not parsed.errors
    names = list(parsed.names.values())
    assert len(set(names)) < len(names)  # display names are not unique in V1


def test_v3_class_descriptions_mixed_line_endings_and_commas():
    data = V3_CLASSES.read_bytes()
    assert b"\r\n" in data and data.count(b"\n") > data.count(b"\r\n")  # mixed
    parsed = ParsedClasses()
    parse_classes(data, 3, 7, parsed)
    reference = _reference(V3_CLASSES)
    assert len(parsed.names) == len(reference) == 19995
    assert parsed.read == {3: 19995} and parsed.rows == {3: 19995}
    with_comma = [(mid, name) for mid, name in reference if "," in name]
    assert with_comma
    for mid, name in with_comma:
        assert parsed.names[mid] == name
    assert all("\r" not in name for name in parsed.names.values())


def test_header_duplicates_and_bad_rows():
    data = (
        b"LabelName,DisplayName\r\n"
        b"/m/a,Apple\n"
        b'"/m/b","Bee, small"\r\n'
        b"/m/a,Another apple\n"
        b"\n"
        b"/m/c,\n"
        b"not-a-mid,Thing\n"
        b"/m/d,Dee,extra\n"
        b"/m/e,Caf\xe9\n"
    )
    parsed = ParsedClasses()
    parse_classes(data, 0, 5, parsed)
    assert parsed.names == {"/m/a": "Apple", "/m/b": "Bee, small"}
    assert [(e["_line"], e["code"]) for e in parsed.errors] == [
        (4, "duplicate_class"),
        (5, "empty_line"),
        (6, "empty_display_name"),
        (7, "bad_label"),
        (8, "wrong_field_count"),
        (9, "invalid_utf8"),
    ]
    assert (parsed.errors[0]["_ref_src"], parsed.errors[0]["_ref_line"]) == (5, 2)
    assert parsed.read == {0: 8} and parsed.rows == {0: 2}


def test_a_first_row_is_a_header_only_if_it_reads_like_one():
    parsed = ParsedClasses()
    parse_classes(b"bad first row,Thing\n/m/a,Apple\n", 0, 0, parsed)
    assert parsed.names == {"/m/a": "Apple"}
    assert [(e["_line"], e["code"]) for e in parsed.errors] == [(1, "bad_label")]
    parsed = ParsedClasses()
    parse_classes(b"id,name\n/m/a,Apple\n", 0, 0, parsed)
    assert parsed.names == {"/m/a": "Apple"} and not parsed.errors


@pytest.mark.parametrize(
    "first",
    [
        "LabelName,DisplayName",
        '"LabelName","DisplayName"',
        "\ufeffLabelName,DisplayName",
        "labelname, displayname",
        "id,name",
        "mid,name",
        "/m/a,Apple",
        '"/m/a","Apple, red"',
    ],
)
def test_what_the_parser_reads_the_plan_accepts(tmp_path, first):
    data = f"{first}\r\n/m/b,Bee\n".encode()
    parsed = ParsedClasses()
    parse_classes(data, 0, 0, parsed)
    assert not parsed.errors and "/m/b" in parsed.names
    assert starts_like_classes(first.lstrip("\ufeff"))
    path = tmp_path / "classes.csv"
    path.write_bytes(data)
    assert len(plan_inputs([], [], [str(path)]).of_kind("classes")) == 1


@pytest.mark.parametrize(
    "first, said",
    [
        ("bad first row,Thing", "is neither a mid with a name"),
        ("DisplayName,LabelName", "is neither a mid with a name"),
        (LABELS_HEADER, "looks like an Open Images labels file"),
        ('{"LabelName": "/m/0bl9f"}', "it is JSON (a label hierarchy?"),
    ],
)
def test_what_the_parser_does_not_read_as_classes_the_plan_refuses(
    tmp_path, first, said
):
    parsed = ParsedClasses()
    parse_classes(f"{first}\n/m/b,Bee\n".encode(), 0, 0, parsed)
    assert [e[LINE] for e in parsed.errors][:1] == [1]
    assert not starts_like_classes(first)
    path = tmp_path / "classes.csv"
    path.write_text(f"{first}\n/m/b,Bee\n")
    with pytest.raises(InputError, match="given as --classes") as refused:
        plan_inputs([], [], [str(path)])
    assert str(path) in str(refused.value) and said in str(refused.value)


def test_the_wrong_kind_message_is_the_one_other_flags_give(tmp_path):
    path = tmp_path / "classes.csv"
    path.write_text(f"{LABELS_HEADER}\n0123456789abcdef,machine,/m/a,0.5\n")
    with pytest.raises(InputError) as refused:
        plan_inputs([], [], [str(path)])
    columns = tuple(LABELS_HEADER.split(","))
    assert str(refused.value) == releases.wrong_kind(str(path), columns, "classes")


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_a_class_file_of_more_text_than_the_cap_is_refused(
    tmp_path, monkeypatch, suffix
):
    data = b"".join(b"/m/%d,Class %d\n" % (n, n) for n in range(100))
    path = tmp_path / f"dict.csv{suffix}"
    path.write_bytes(gzip.compress(data) if suffix else data)
    monkeypatch.setattr(classes, "MAX_CLASS_BYTES", len(data))
    assert read_class_file(str(path), bool(suffix)) == (
        data,
        hashlib.md5(path.read_bytes()).hexdigest(),
    )
    monkeypatch.setattr(classes, "MAX_CLASS_BYTES", len(data) - 1)
    with pytest.raises(
        InputError, match=f"more than {len(data) - 1:,} bytes"
    ) as refused:
        read_class_file(str(path), bool(suffix))
    assert str(path) in str(refused.value)


def test_a_cut_compressed_class_file_is_damaged(tmp_path):
    path = tmp_path / "dict.csv.gz"
    packed = gzip.compress(V1_DICT.read_bytes())
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DamagedInput, match="ends early") as refused:
        read_class_file(str(path), True)
    assert str(path) in str(refused.value)


def test_the_pipeline_reads_class_files_bounded(tmp_path, monkeypatch):
    path = tmp_path / "dict.csv"
    shutil.copy(V1_DICT, path)
    plan = plan_inputs([], [], [str(path)])
    monkeypatch.setattr(classes, "MAX_CLASS_BYTES", 1000)
    with pytest.raises(InputError, match="more than 1,000 bytes") as refused:
        with local_pipeline() as p:
            _ = p | ReadClassDescriptions(plan.files, plan.ranges)
    assert str(path) in str(refused.value)
