"""Class descriptions: V1 dict.csv and V3 class-descriptions.csv, read for real."""

import csv

from oibeam.transforms.read.classes import ParsedClasses, parse_classes

from support.paths import V1_DICT, V3_CLASSES


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
