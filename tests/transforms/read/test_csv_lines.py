"""Over-long lines cut out in linear time and bounded memory, every other line
kept with its number; the end of a whole-file stream marked, so a file cut
inside a quoted field is caught."""

import gzip
import hashlib
import io
import random
import time
import tracemalloc

import numpy as np
import pyarrow as pa
import pytest

from oibeam.transforms.read.csv_blocks import WholeFile, read_range_bytes
from oibeam.transforms.read.csv_inputs import plan_inputs
from oibeam.transforms.read.csv_lines import (
    CutStream,
    LineCutter,
    LongLine,
    ends_in_quoted_field,
    move_long_lines,
)
from oibeam.transforms.read.csv_parse import (
    STREAM_BLOCK_BYTES,
    OpenQuoteAtEnd,
    ParsedRows,
    iter_stream_blocks,
)

from support.headers import LABELS_HEADER

MiB = 1 << 20
COLUMNS = tuple(LABELS_HEADER.split(","))


def _expected(data: bytes, limit: int, first_line: int = 1):
    """Independent reference: split on newlines, blank out the long lines."""
    lines = data.split(b"\n")
    ends_open = lines[-1] != b""
    if not ends_open:
        lines.pop()
    out, cut = [], []
    for number, line in enumerate(lines, start=first_line):
        if len(line) > limit:
            cut.append(LongLine(number, len(line), line[:1024]))
            line = b""
        out.append(line)
    text = b"\n".join(out)
    if out and (not ends_open or cut and cut[-1].line == len(lines) + first_line - 1):
        text += b"\n"
    return text, cut


def _random_lines(seed: int, limit: int) -> bytes:
    rng = random.Random(seed)
    lengths = [rng.choice([0, 1, 5, 40, limit - 1, limit, limit + 1, 3 * limit + 7])]
    lengths += [rng.randrange(0, 3 * limit) for _ in range(60)]
    lines = [bytes([97 + i % 26]) * n for i, n in enumerate(lengths)]
    return b"\n".join(lines) + rng.choice([b"", b"\n"])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("chunk", [1, 7, 64, 1000, 5000, 1 << 20])
def test_the_cutter_keeps_short_lines_whatever_the_chunks(seed, chunk):
    limit = 1024
    data = _random_lines(seed, limit)
    cutter = LineCutter(limit, first_line=3)
    out = []
    for start in range(0, len(data), chunk):
        out.extend(cutter.feed(data[start : start + chunk]))
    out.extend(cutter.finish())
    assert (b"".join(out), cutter.cut) == _expected(data, limit, first_line=3)


def _labels_with_a_long_line(path, line_bytes: int) -> tuple[bytes, str]:
    header = f"{LABELS_HEADER}\n".encode()
    with path.open("wb") as f:
        f.write(header + b"0000000000000001,machine,/m/01,0.5\n")
        f.write(b"0000000000000002,machine,/m/0")
        for _ in range(line_bytes // MiB):
            f.write(b"x" * MiB)
        f.write(b",0.5\n0000000000000003,machine,/m/03,0.5\n")
    return header, "0000000000000002,machine,/m/0" + "x" * (1024 - 29)


@pytest.mark.parametrize("whole", [True, False])
def test_a_huge_line_is_read_in_linear_time_and_bounded_memory(tmp_path, whole):
    path = tmp_path / "labels.csv"
    header, head = _labels_with_a_long_line(path, 64 * MiB)
    # A range that ends just after the line starts reads the line to its end
    # (before: 19 s and 128 MiB, growing the line by 64 KiB at a time).
    end = path.stat().st_size if whole else len(header) + 100
    tracemalloc.start()
    try:
        started = time.perf_counter()
        got = read_range_bytes(str(path), 0, end, len(header))
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"{peak / MiB:.0f} MiB held at once"
    assert seconds < 5
    data, _, cut = got
    last = b"0000000000000003,machine,/m/03,0.5\n" if whole else b""
    assert data == b"0000000000000001,machine,/m/01,0.5\n\n" + last
    assert cut == [LongLine(2, 29 + 64 * MiB + 4, head.encode())]


@pytest.mark.parametrize("step", [4096, 5000, 1 << 16, 1 << 30])
def test_ranges_cut_each_long_line_once(tmp_path, step):
    rng = random.Random(step)
    lines = [
        f"{n:016x},machine,/m/0{'x' * rng.choice([1, 10, 3000, 5000, 20_000])},0.5"
        for n in range(300)
    ]
    header = f"{LABELS_HEADER}\n"
    path = tmp_path / "labels.csv"
    path.write_text(header + "\n".join(lines) + "\n")
    raw = path.read_bytes()
    data, cut = b"", []
    offset = 1  # lines of earlier ranges (the header is line 1)
    for start in range(0, len(raw), step):
        end = min(start + step, len(raw))
        got = read_range_bytes(str(path), start, end, len(header), 4096)
        assert got.md5 == hashlib.md5(raw[start:end]).hexdigest()
        cut += [c._replace(line=c.line + offset) for c in got.cut]
        offset += got.data.count(b"\n")
        data += got.data
    want, want_cut = _expected(raw[len(header) :], 4096, first_line=2)
    assert data == want
    assert cut == want_cut
    assert len(cut) == sum(len(line) > 4096 for line in lines) > 0


@pytest.mark.parametrize(
    "line, open_",
    [
        (b'a,"b', True),
        (b'a,"b""', True),
        (b'a,"b"""', False),
        (b'a,"b,c",d', False),
        (b'"', True),
        (b'""', False),
        (b'a,b"c', False),  # a quote inside an unquoted field is a character
        (b'a,"b"c,"d', True),
        (b"", False),
        (b"a,", False),
    ],
)
def test_ends_in_quoted_field(line, open_):
    assert ends_in_quoted_field(line) is open_


def _stream_rows(data: bytes, marker: str = "END-123", limit: int = 4096):
    cutter = LineCutter(limit, first_line=2)
    header = data.index(b"\n") + 1
    stream = CutStream(io.BytesIO(data), cutter, header, marker)
    blocks = list(iter_stream_blocks(stream, COLUMNS, 1 << 16, end_marker=marker))
    return blocks, cutter


def test_the_end_marker_comes_back_and_is_dropped():
    for body in (b"a,b,c,d\n", b"a,b,c,d", b"a,b,c,d\r\n", b'a,"b\nc",c,d\n', b""):
        data = f"{LABELS_HEADER}\n".encode() + body
        blocks, _ = _stream_rows(data)
        rows = sum(b.table.num_rows for b in blocks)
        assert rows == (1 if body else 0), body
        assert not any(b.invalid for b in blocks), body
        assert blocks[-1].line_count == data.count(b"\n") + (
            0 if data.endswith(b"\n") else 1
        )


def test_a_stream_cut_inside_a_quoted_field_raises():
    data = f'{LABELS_HEADER}\na,b,c,d\na,"b\nc,d\na,b'.encode()
    with pytest.raises(OpenQuoteAtEnd) as raised:
        _stream_rows(data)
    assert raised.value.line == 3


def test_the_stream_reads_are_full():
    data = b"h\n" + b"".join(b"%d,x\n" % n for n in range(300_000))
    stream = CutStream(io.BytesIO(data), LineCutter(4096, 2), 2, "END")
    sizes = []
    while piece := stream.read(100_000):
        sizes.append(len(piece))
    assert set(sizes[:-1]) == {100_000}
    assert sum(sizes) == len(data) + len(b"END\n")


def test_a_record_holding_a_long_line_becomes_one_too_long_entry():
    table = pa.table(
        {c: ["a\n\nb" if c == "LabelName" else "v"] * 2 for c in COLUMNS}
    )  # two records of three lines each: lines 2-4 and 5-7
    parsed = ParsedRows(
        table=table,
        lines=np.array([2, 5], np.int64),
        invalid=[(8, "x", 1)],
        line_count=8,
    )
    cut = [LongLine(3, 5000, b"y" * 1024), LongLine(8, 6000, b"z" * 1024)]
    moved = move_long_lines(parsed, cut, 4096)
    assert moved.lines.tolist() == [5]
    assert moved.invalid == []
    assert [(t[0], t[1][:1]) for t in moved.too_long] == [(2, "y"), (8, "z")]
    assert moved.too_long[0][2].startswith("line 3 of this record has 5,000 bytes")
    assert moved.too_long[1][2].startswith("the line has 6,000 bytes")


@pytest.mark.parametrize("extra", [0, 1])
def test_a_kept_line_longer_than_a_stream_block_parses(tmp_path, extra):
    limit = STREAM_BLOCK_BYTES + 1000
    line = f"0000000000000002,machine,/m/0{'x' * (limit - 33 + extra)},0.5"
    path = tmp_path / "labels.csv.gz"
    path.write_bytes(
        gzip.compress(f"{LABELS_HEADER}\nA,b,c,d\n{line}\nB,b,c,d\n".encode())
    )
    (f,) = plan_inputs([], [str(path)]).files
    blocks = list(WholeFile(f, limit))
    assert sum(b.table.num_rows for b in blocks) == 3 - extra
    assert [t[0] for b in blocks for t in b.too_long] == ([3] if extra else [])
    assert blocks[-1].line_count == 4
