"""CSV bytes -> tables whose every row (and every rejected row) knows its line."""

import csv
import hashlib
import io

import numpy as np
import pyarrow as pa
import pytest

from oibeam.transforms.common.csv_text import line_texts
from oibeam.transforms.read.csv_blocks import read_range_bytes
from oibeam.transforms.read.csv_parse import iter_stream_blocks, parse_line_block
from oibeam.transforms.read.validate_rows import LABEL_FAST_TYPES

from support.headers import LABELS_HEADER

COLUMNS = tuple(LABELS_HEADER.split(","))


def _records_by_line(text: str) -> dict[int, list[str]]:
    """Independent reference: csv module records keyed by their first line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    out, previous = {}, 0
    for fields in reader:
        out[previous + 1] = fields
        previous = reader.line_num
    return out


def test_clean_block_takes_the_fast_typed_path():
    data = b"000002b66c9c498e,machine,/m/05_4_,0.7\n000002b66c9c498e,human,/m/0krfg,1\n"
    parsed = parse_line_block(data, COLUMNS, LABEL_FAST_TYPES)
    assert parsed.lines.tolist() == [1, 2]
    assert parsed.line_count == 2
    assert parsed.table.schema.field("Confidence").type == pa.string()
    assert pa.types.is_dictionary(parsed.table.schema.field("Source").type)
    assert pa.types.is_fixed_size_binary(parsed.table.schema.field("ImageID").type)


def test_bad_block_is_reparsed_with_every_line_placed():
    data = (
        b"000002b66c9c498e,machine,/m/05_4_,0.7\n"
        b"000002b66c9c498e,machine\n"  # 2 fields
        b"\n"  # empty line: a row of empty values
        b"000002b66c9c498e,machine,/m/05_4_,high\n"  # not a number
        b"000002b66c9c498e,machine,/m/05_4_,0.9,extra\n"  # 5 fields
        b"000002b66c9c498e,machine,/m/0krfg,1.0"  # no final newline
    )
    parsed = parse_line_block(data, COLUMNS, LABEL_FAST_TYPES)
    assert parsed.table.schema.field("Confidence").type == pa.string()
    assert parsed.lines.tolist() == [1, 3, 4, 6]
    assert parsed.table.column("Confidence").to_pylist() == ["0.7", "", "high", "1.0"]
    assert parsed.invalid == [
        (2, "000002b66c9c498e,machine", 2),
        (5, "000002b66c9c498e,machine,/m/05_4_,0.9,extra", 5),
    ]
    assert parsed.line_count == 6
    assert line_texts(data, np.array([4, 6])) == [
        "000002b66c9c498e,machine,/m/05_4_,high",
        "000002b66c9c498e,machine,/m/0krfg,1.0",
    ]


def test_invalid_utf8_rows_are_marked_and_repaired():
    data = (
        b"000002b66c9c498e,machine,/m/05_4_,0.7\n000002b66c9c498e,mach\xffine,/m/x,1\n"
    )
    parsed = parse_line_block(data, COLUMNS, LABEL_FAST_TYPES)
    assert parsed.bad_utf8.tolist() == [False, True]
    assert parsed.table.column("Source").to_pylist() == ["machine", "mach\ufffdine"]


@pytest.mark.parametrize("block_bytes", [64, 200, 1 << 20])
def test_stream_lines_with_multiline_values_match_the_csv_module(block_bytes):
    header = "ImageID,Title,OriginalSize\n"
    rows = []
    for i in range(40):
        if i % 7 == 3:
            rows.append(f'{i:016x},"two\nline title {i}",{i}\n')
        elif i % 11 == 5:
            rows.append(f"{i:016x},too,many,fields\n")
        elif i % 13 == 6:
            rows.append(f'{i:016x},"a\r\nb\nc",{i}\r\n')
        else:
            rows.append(f'{i:016x},"plain, quoted {i}",{i}\n')
    text = header + "".join(rows)
    columns = ("ImageID", "Title", "OriginalSize")
    accepted, rejected, last = {}, {}, None
    for parsed in iter_stream_blocks(
        pa.BufferReader(text.encode()), columns, block_bytes
    ):
        for line, row in zip(
            parsed.lines.tolist(), parsed.table.to_pylist(), strict=True
        ):
            accepted[line] = [row[c] for c in columns]
        for line, raw, fields in parsed.invalid:
            rejected[line] = (raw, fields)
        last = parsed
    reference = _records_by_line(text)
    del reference[1]  # the header
    assert set(accepted) | set(rejected) == set(reference)
    assert not set(accepted) & set(rejected)
    for line, fields in reference.items():
        if line in accepted:
            assert accepted[line] == fields
        else:
            assert rejected[line][1] == len(fields) == 4
    assert last.line_count == text.count("\n")


def test_ranges_hold_every_line_exactly_once(tmp_path):
    lines = [f"{i:016x},machine,/m/0{i % 97},0.{i % 10}" for i in range(1500)]
    header = f"{LABELS_HEADER}\n"
    path = tmp_path / "labels.csv"
    path.write_text(header + "\n".join(lines) + "\n")
    size = path.stat().st_size
    raw = path.read_bytes()
    for step in (3, 38, 39, 40, 1000, 4096, size):
        got = []
        for start in range(0, size, step):
            end = min(start + step, size)
            data, md5, cut = read_range_bytes(str(path), start, end, len(header))
            got.extend(data.decode().splitlines())
            assert md5 == hashlib.md5(raw[start:end]).hexdigest()
            assert cut == []
        assert got == lines, f"step {step}"


def test_crlf_line_block_values_and_raw_text():
    data = (
        b"000002b66c9c498e,machine,/m/05_4_,0.7\r\n000002b66c9c498e,machine,/m/x,9\r\n"
    )
    parsed = parse_line_block(data, COLUMNS, LABEL_FAST_TYPES)
    assert parsed.table.column("LabelName").to_pylist() == ["/m/05_4_", "/m/x"]
    assert parsed.lines.tolist() == [1, 2]
    assert line_texts(data, np.array([2])) == ["000002b66c9c498e,machine,/m/x,9"]


def test_quotes_never_join_lines_in_a_split_file():
    data = (
        b'000002b66c9c498e,"machine",/m/05_4_,0.7\n'
        b'000002b66c9c498e,"machine,/m/x,1\n'  # a stray quote
        b"000002b66c9c498e,machine,/m/y,0.5\n"
        b'"000002b66c9c498e","human","/m/z","1"\n'
    )
    parsed = parse_line_block(data, COLUMNS, LABEL_FAST_TYPES)
    assert parsed.lines.tolist() == [1, 2, 3, 4]
    sources = parsed.table.column("Source").to_pylist()
    assert sources == ["machine", '"machine', "machine", "human"]  # 2: a bad Source
    assert parsed.table.column("LabelName").to_pylist()[2:] == ["/m/y", "/m/z"]
    assert parsed.invalid == []


def test_long_lines_and_lone_carriage_returns():
    long_line = b"000002b66c9c498e,machine,/m/" + b"x" * (3 << 20) + b",0.5\n"
    data = b"000002b66c9c498e,machine,/m/a,0.5\n" + long_line
    parsed = parse_line_block(data, COLUMNS, LABEL_FAST_TYPES)
    assert parsed.lines.tolist() == [1, 2]
    assert len(parsed.table.column("LabelName")[1].as_py()) == 3 + (3 << 20)
    lone = (
        b"000002b66c9c498e,machine,/m/a,0.5\r000002b66c9c498f,x\n"
        b"00000000000000ab,human,/m/b,1\n"
    )
    parsed = parse_line_block(lone, COLUMNS, LABEL_FAST_TYPES)
    # Lines end at LF: the lone CR stays inside line 1, which has 5 fields.
    assert parsed.lines.tolist() == [2]
    assert [(n, f) for n, _, f in parsed.invalid] == [(1, 5)]
    assert line_texts(lone, np.array([2])) == ["00000000000000ab,human,/m/b,1"]
