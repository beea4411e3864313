"""The parsed blocks of one planned read: a byte range of a split file, or a
whole file read as a stream (no Beam here).

Either way memory is bounded by what one read holds, never by the file: a range
is read a chunk at a time (its lines plus --max-line-bytes), a stream in blocks
of csv_parse.STREAM_BLOCK_BYTES (or --max-line-bytes, if more; pyarrow reads up
to 32 blocks ahead), and a line longer than --max-line-bytes is cut on the way
(csv_lines).
A file that ends inside a quoted field, or whose quoting breaks down, is a
CsvStructureError; a damaged compressed file a DamagedInput (input_files).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import NamedTuple

import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.elements import CsvFile, CsvRange
from oibeam.transforms.read import csv_lines, csv_parse, validate_rows
from oibeam.transforms.read.csv_lines import LineCutter
from oibeam.transforms.read.input_files import open_hashed

_READ_BYTES = 1 << 20


class CsvStructureError(ValueError):
    """A whole file whose quoting cannot be parsed (not one bad row), or that
    ends inside a quoted field (cut short)."""


def _cut_in_quotes(path: str, where: str) -> CsvStructureError:
    return CsvStructureError(
        f"{path}: the file ends inside a quoted field ({where}): it is cut short, "
        "or a quote is unbalanced; fix or fetch the file again, then run again"
    )


class RangeBytes(NamedTuple):
    data: bytes  # whole lines, each over-long one left empty
    md5: str  # hex, of the file's bytes [start, end)
    cut: list[csv_lines.LongLine]  # the over-long lines, numbered from 1 in data


def read_range_bytes(
    path: str,
    start: int,
    end: int,
    header_bytes: int,
    max_line_bytes: int = csv_lines.DEFAULT_MAX_LINE_BYTES,
) -> RangeBytes:
    """The whole lines whose first byte lies in [start, end) of a file (lines
    longer than `max_line_bytes` cut, see csv_lines), and the MD5 of the
    file's bytes [start, end).

    Range 0 starts after the header. A line that crosses `end` is read to its
    end; the partial line at `start` belongs to the previous range. Reads a
    chunk at a time: time is linear and memory the range's lines plus
    `max_line_bytes`, however long a line.
    """
    cutter = LineCutter(max_line_bytes)
    md5 = hashlib.md5()
    out: list = []
    skip = header_bytes if start == 0 else -1  # bytes to skip; -1: to a newline
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        position = 0 if start == 0 else start - 1
        f.seek(position)
        while position < end:
            chunk = f.read(min(_READ_BYTES, end - position))
            if not chunk:
                break
            md5.update(memoryview(chunk)[max(start - position, 0) :])
            position += len(chunk)
            first = 0
            if skip > 0:
                first = min(skip, len(chunk))
                skip -= first
            elif skip < 0:  # the previous range's line ends at the first newline
                newline = chunk.find(b"\n")
                first, skip = (len(chunk), -1) if newline < 0 else (newline + 1, 0)
            if skip == 0:
                out.extend(cutter.feed(chunk, first))
        while skip == 0 and cutter.in_line:  # our last line crosses `end`
            chunk = f.read(_READ_BYTES)
            if not chunk:
                break
            newline = chunk.find(b"\n")
            out.extend(cutter.feed(chunk if newline < 0 else chunk[: newline + 1]))
    out.extend(cutter.finish())
    return RangeBytes(b"".join(out), md5.hexdigest(), cutter.cut)


def range_block(
    f: CsvFile, item: CsvRange, max_line_bytes: int
) -> tuple[bytes, csv_parse.ParsedRows, str]:
    """(the range's lines, their parsed block, the MD5 of the range's bytes);
    CsvStructureError when the file ends inside a quoted field."""
    got = read_range_bytes(f.path, item.start, item.end, f.header_bytes, max_line_bytes)
    data = got.data
    if item.end >= f.size and data and not data.endswith(b"\n"):
        last = data[data.rfind(b"\n") + 1 :]
        if csv_lines.ends_in_quoted_field(last.rstrip(b"\r")):
            raise _cut_in_quotes(f.path, "its last line")
    fast = validate_rows.LABEL_FAST_TYPES if f.kind == "labels" else {}
    parsed = csv_parse.parse_line_block(data, f.layout.columns, fast)
    return data, csv_lines.move_long_lines(parsed, got.cut, max_line_bytes), got.md5


class WholeFile:
    """The parsed blocks of a whole file read as one stream (compressed, or a
    kind that is not split), over-long lines moved to `too_long`; its MD5 once
    every block was read. Raises CsvStructureError for a file whose quoting
    breaks down or that ends inside a quoted field, DamagedInput for a
    damaged compressed file: the run stops, and nothing of it is published."""

    def __init__(self, f: CsvFile, max_line_bytes: int) -> None:
        self._f = f
        self._limit = max_line_bytes
        self._raw = None
        self.md5: str | None = None

    @property
    def position(self) -> int:
        """Bytes of the file as stored read so far (for progress)."""
        return self._raw.position if self._raw is not None else 0

    def __iter__(self) -> Iterator[csv_parse.ParsedRows]:
        path, columns = self._f.path, self._f.layout.columns
        stream, raw = open_hashed(path, self._f.compressed)
        self._raw = raw
        cutter = LineCutter(self._limit, first_line=2)  # the header is line 1
        marker = csv_lines.end_marker()
        text = csv_lines.CutStream(stream, cutter, self._f.header_bytes, marker)
        # A record of up to a block always parses: blocks hold any line kept.
        block_bytes = max(csv_parse.STREAM_BLOCK_BYTES, self._limit + 4096)
        with stream:
            blocks = csv_parse.iter_stream_blocks(text, columns, block_bytes, marker)
            try:
                for parsed in blocks:
                    cut = cutter.take_cut(parsed.line_count)
                    yield csv_lines.move_long_lines(parsed, cut, self._limit)
            except pa.ArrowInvalid as e:
                raise CsvStructureError(
                    f"{path}: the CSV structure breaks down ({e}); a quote is "
                    "probably unbalanced: fix the file, then run again"
                ) from e
            except csv_parse.OpenQuoteAtEnd as e:
                raise _cut_in_quotes(path, f"the record on line {e.line}") from e
            if cutter.cut:  # not expected (each is in a block): still counted
                no_rows = csv_parse.no_rows(columns)
                yield csv_lines.move_long_lines(no_rows, cutter.cut, self._limit)
            self.md5 = raw.finish()
