"""Parse CSV bytes into Arrow tables that remember the line of every row.

Two shapes of input:
- a block of whole lines from a split file, where no value may hold a newline
  (labels files): parsed with `parse_line_block`, multi-threaded, typed on the
  fast path, re-parsed carefully (strings, one thread) only if that fails;
- a whole file as a stream, where quoted values may hold newlines (images files,
  compressed files): parsed with `iter_stream_blocks`, strings, one thread.
Rows with the wrong number of columns never reach the table: they come back in
`invalid` with their line and text. Lines are physical, 1-based, and relative to
the start of the bytes parsed (the header, when read, is line 1).

Longer than most modules on purpose: both shapes share the record numbering
that turns pyarrow's record numbers into physical lines, its hardest part.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

# Blocks of a whole file read as a stream; a record may be about as long. Small
# on purpose: pyarrow's streaming reader reads up to 32 blocks ahead.
STREAM_BLOCK_BYTES = 4 << 20


@dataclass
class ParsedRows:
    """Rows of one block with their physical lines."""

    table: pa.Table
    lines: np.ndarray  # int64, one per table row
    # Rows with a wrong number of fields: (line, text, fields found).
    invalid: list[tuple[int, str, int]] = field(default_factory=list)
    bad_utf8: np.ndarray | None = None  # bool per row: text was not UTF-8
    line_count: int = 0  # physical lines the block covered
    # Records with an over-long line (see csv_lines): (line, raw, reason).
    too_long: list[tuple[int, str, str]] = field(default_factory=list)


class _InvalidRows:
    """invalid_row_handler that remembers (record number, text, fields), skips;
    notes the row that is `end_marker` (see iter_stream_blocks)."""

    def __init__(self, end_marker: str | None = None) -> None:
        self.rows: list[tuple[int | None, str, int]] = []
        self._end_marker = end_marker
        self.saw_end_marker = False

    def __call__(self, row) -> str:
        if self._end_marker is not None and row.text == self._end_marker:
            self.saw_end_marker = True
        else:
            self.rows.append((row.number, row.text, row.actual_columns))
        return "skip"

    def take(self) -> list[tuple[int | None, str, int]]:
        """The rows remembered since the last take."""
        rows, self.rows = self.rows, []
        return rows


class OpenQuoteAtEnd(ValueError):
    """The input ended inside a quoted field of the record on `line`."""

    def __init__(self, line: int) -> None:
        super().__init__(f"the input ends inside a quoted field (line {line})")
        self.line = line


def _string_types(columns: tuple[str, ...]) -> dict[str, pa.DataType]:
    return {c: pa.string() for c in columns}


def _empty(columns: tuple[str, ...]) -> pa.Table:
    return pa.table({c: pa.array([], pa.string()) for c in columns})


def no_rows(columns: tuple[str, ...], line_count: int = 0) -> ParsedRows:
    """A block without rows (of `line_count` physical lines)."""
    return ParsedRows(
        table=_empty(columns),
        lines=np.zeros(0, dtype=np.int64),
        line_count=line_count,
    )


def parse_line_block(
    data: bytes, columns: tuple[str, ...], fast_types: dict[str, pa.DataType]
) -> ParsedRows:
    """Parses a block of whole lines of a split file: one line, one record.

    Quotes never join lines here (a stray quote must not swallow the rest of a
    range): quoting is off, and a field wrapped in quotes is unwrapped after.
    Tries `fast_types` with all cores first; on any conversion error, invalid
    UTF-8 or wrong field count, parses again as strings on one thread, which
    gives the line of every rejected row; lines pyarrow cannot take (longer than
    a block, a lone CR) are split in Python.
    """
    if not data:
        return no_rows(columns)
    if data.count(b"\r") != data.count(b"\r\n"):
        return _parse_each_line(data, columns)  # pyarrow ends a record at a lone CR
    lines_in_block = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    handler = _InvalidRows()
    try:
        table = pv.read_csv(
            pa.py_buffer(data),
            read_options=pv.ReadOptions(column_names=list(columns), use_threads=True),
            parse_options=_line_parse_options(handler),
            convert_options=pv.ConvertOptions(
                column_types={c: fast_types.get(c, pa.string()) for c in columns},
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        table = None
    if table is not None and not handler.rows and table.num_rows == lines_in_block:
        return ParsedRows(
            table=unquote_table(table),
            lines=np.arange(1, table.num_rows + 1, dtype=np.int64),
            line_count=lines_in_block,
        )
    handler = _InvalidRows()
    try:
        table = pv.read_csv(
            pa.py_buffer(data),
            read_options=pv.ReadOptions(
                column_names=list(columns), use_threads=False, block_size=len(data) + 1
            ),
            parse_options=_line_parse_options(handler),
            convert_options=pv.ConvertOptions(
                column_types=_string_types(columns),
                strings_can_be_null=False,
                check_utf8=False,
            ),
        )
    except pa.ArrowInvalid:
        return _parse_each_line(data, columns)
    parsed = _RecordNumbering().add_block(table, handler.rows)  # repairs UTF-8
    parsed.table = unquote_table(parsed.table)
    return parsed


def _line_parse_options(handler) -> pv.ParseOptions:
    return pv.ParseOptions(
        quote_char=False, ignore_empty_lines=False, invalid_row_handler=handler
    )


def unquote_table(table: pa.Table) -> pa.Table:
    """Unwraps "quoted" string values (doubled quotes inside become one)."""
    for i, column in enumerate(table.columns):
        if pa.types.is_dictionary(column.type):
            column = column.unify_dictionaries() if column.num_chunks > 1 else column
            chunks = [
                pa.DictionaryArray.from_arrays(c.indices, _unquote(c.dictionary))
                for c in column.chunks
            ]
            table = table.set_column(i, table.field(i), pa.chunked_array(chunks))
        elif pa.types.is_string(column.type):
            table = table.set_column(i, table.field(i), _unquote(column))
    return table


def _unquote(values):
    quoted = pc.and_(
        pc.starts_with(values, '"'),
        pc.and_(pc.ends_with(values, '"'), pc.greater_equal(pc.utf8_length(values), 2)),
    )
    if not pc.any(quoted).as_py():
        return values
    inner = pc.replace_substring(pc.utf8_slice_codeunits(values, 1, -1), '""', '"')
    return pc.if_else(quoted, inner, values)


def _parse_each_line(data: bytes, columns: tuple[str, ...]) -> ParsedRows:
    """The slow, sure way: split lines and fields in Python (rare inputs only)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    rows: list[list[str]] = []
    numbers, bad_utf8, invalid = [], [], []
    for number, raw in enumerate(lines, start=1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        text = raw.decode("utf-8", errors="replace")
        fields = [_unquote_text(f) for f in text.split(",")]
        if raw and len(fields) != len(columns):
            invalid.append((number, text, len(fields)))
            continue
        rows.append(fields if raw else [""] * len(columns))
        numbers.append(number)
        bad_utf8.append("\ufffd" in text and b"\xef\xbf\xbd" not in raw)
    table = pa.table(
        {c: pa.array([r[i] for r in rows], pa.string()) for i, c in enumerate(columns)}
    )
    return ParsedRows(
        table=table,
        lines=np.array(numbers, dtype=np.int64),
        invalid=invalid,
        bad_utf8=np.array(bad_utf8, dtype=bool) if any(bad_utf8) else None,
        line_count=len(lines),
    )


def _unquote_text(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('""', '"')
    return value


class _RecordNumbering:
    """Turns pyarrow record numbers into physical lines across streamed blocks.

    pyarrow numbers records, not lines, and tells the number only of rejected
    rows. Accepted rows take the remaining numbers in order; a record's physical
    line is its number plus the newlines inside the values of earlier records.
    """

    def __init__(self, first_record: int = 1) -> None:
        self.next_record = first_record
        self.extra_newlines = 0  # newlines inside values of records numbered so far
        self.pending: list[tuple[int, str, int]] = []  # rejected, not yet placed
        self.last_line = first_record - 1  # where the last record numbered begins

    def add_block(
        self, table: pa.Table, rejected: list[tuple[int | None, str, int]]
    ) -> ParsedRows:
        self.pending.extend(
            (int(r[0]), r[1], r[2]) for r in rejected if r[0] is not None
        )
        self.pending.sort()
        table, bad_utf8 = _repair_utf8(table)
        n = table.num_rows
        # Record numbers of accepted rows: skip the numbers of rejected rows.
        numbers = np.empty(n, dtype=np.int64)
        placed: list[tuple[int, str, int]] = []
        record, filled = self.next_record, 0
        pending = self.pending
        while pending and pending[0][0] < record:  # cannot happen; never loop on it
            placed.append(pending.pop(0))
        while filled < n or (pending and pending[0][0] == record):
            if pending and pending[0][0] == record:
                placed.append(pending.pop(0))
                record += 1
                continue
            take = n - filled
            if pending:
                take = min(take, pending[0][0] - record)
            numbers[filled : filled + take] = np.arange(record, record + take)
            filled += take
            record += take
        self.next_record = record
        # Physical lines: add the newlines held inside values of earlier records.
        inner = newlines_per_row(table)
        events_num = np.concatenate(
            [numbers, np.array([p[0] for p in placed], dtype=np.int64)]
        )
        events_nl = np.concatenate(
            [inner, np.array([p[1].count("\n") for p in placed], dtype=np.int64)]
        )
        order = np.argsort(events_num, kind="stable")
        before = np.cumsum(events_nl[order]) - events_nl[order] + self.extra_newlines
        lines_sorted = events_num[order] + before
        lines = np.empty_like(lines_sorted)
        lines[order] = lines_sorted
        self.extra_newlines += int(events_nl.sum())
        if len(lines):
            self.last_line = max(self.last_line, int(lines.max()))
        return ParsedRows(
            table=table,
            lines=lines[:n],
            invalid=[
                (int(line), text, fields)
                for line, (_, text, fields) in zip(lines[n:], placed, strict=True)
            ],
            bad_utf8=bad_utf8,
            line_count=int(record - 1 + self.extra_newlines),
        )


def iter_stream_blocks(
    stream,
    columns: tuple[str, ...],
    block_bytes: int = STREAM_BLOCK_BYTES,
    end_marker: str | None = None,
) -> Iterator[ParsedRows]:
    """Parses a whole CSV file (header on line 1) block by block, as strings.

    Quoted values may hold newlines. `line_count` of the last block is the
    number of physical lines of the file. With `end_marker`, the stream ends
    with a line holding it (no input holds it): that row is dropped, and
    OpenQuoteAtEnd is raised when it did not come back as a row of its own
    (a quoted field swallowed it: the input ended inside that field).
    """
    handler = _InvalidRows(end_marker)
    try:
        reader = _open_stream(stream, columns, block_bytes, handler)
    except pa.ArrowInvalid as e:  # a header alone, with or without its newline
        if "Empty CSV file" not in str(e) and "Could not skip initial" not in str(e):
            raise
        if end_marker is not None:  # the header swallowed the marker line
            raise OpenQuoteAtEnd(1) from e
        yield no_rows(columns, line_count=1)
        return
    numbering = _RecordNumbering(first_record=2)  # the header is record 1
    blocks = 0
    for batch in reader:
        blocks += 1
        yield numbering.add_block(pa.Table.from_batches([batch]), handler.take())
    # Rows the reader rejected after its last batch need a block of their own,
    # as does a file without a batch.
    if not blocks or handler.rows or numbering.pending:
        yield numbering.add_block(_empty(columns), handler.take())
    if end_marker is not None and not handler.saw_end_marker:
        raise OpenQuoteAtEnd(numbering.last_line)


def _open_stream(stream, columns, block_bytes, handler):
    return pv.open_csv(
        pa.PythonFile(stream, mode="r")
        if not isinstance(stream, pa.NativeFile)
        else stream,
        read_options=pv.ReadOptions(
            column_names=list(columns),
            skip_rows=1,
            use_threads=False,
            block_size=block_bytes,
        ),
        parse_options=pv.ParseOptions(
            ignore_empty_lines=False,
            newlines_in_values=True,
            invalid_row_handler=handler,
        ),
        convert_options=pv.ConvertOptions(
            column_types=_string_types(columns),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=False,
        ),
    )


def newlines_per_row(table: pa.Table) -> np.ndarray:
    total = np.zeros(table.num_rows, dtype=np.int64)
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            counts = pc.count_substring(column, "\n")
            if pc.max(counts).as_py():
                total += np.asarray(counts.to_numpy(zero_copy_only=False), np.int64)
    return total


def _repair_utf8(table: pa.Table) -> tuple[pa.Table, np.ndarray | None]:
    """Replaces invalid UTF-8 with U+FFFD and marks the rows that had any."""
    bad: np.ndarray | None = None
    for i, column in enumerate(table.columns):
        if not pa.types.is_string(column.type):
            continue
        try:
            column.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        values = column.cast(pa.binary()).to_pylist()
        fixed, mask = [], np.zeros(len(values), dtype=bool)
        for j, v in enumerate(values):
            try:
                fixed.append(v.decode("utf-8"))
            except UnicodeDecodeError:
                fixed.append(v.decode("utf-8", errors="replace"))
                mask[j] = True
        table = table.set_column(i, table.field(i), pa.array(fixed, pa.string()))
        bad = mask if bad is None else (bad | mask)
    return table, bad
