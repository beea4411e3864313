"""Physical lines of CSV bytes: over-long lines cut out, the end of input marked
(pure, no Beam here).

A line longer than --max-line-bytes never reaches the parser: LineCutter passes
everything else through and leaves an empty line in its place, so every later
line keeps its number; it keeps the cut line's number, length and first
RAW_BYTES bytes, and `move_long_lines` turns the record that held it into one
`line_too_long` row. Memory is the limit plus the chunk read, whatever the
length of a line; time is linear (C-speed `find` over each chunk).

A whole file read as a stream ends with a line of our own (CutStream,
`end_marker`): the parser hands it back as a row of its own unless the file
ended inside a quoted field, i.e. was cut short there.
"""

from __future__ import annotations

import io
import uuid
from collections import deque
from typing import NamedTuple

import numpy as np

from oibeam.transforms.read.csv_parse import ParsedRows, newlines_per_row

DEFAULT_MAX_LINE_BYTES = 1 << 20
DEFAULT_SPLIT_BYTES = 64 << 20  # a CSV is read in byte ranges of this size
MIN_MAX_LINE_BYTES = 4096
RAW_BYTES = 1024  # of an over-long line, kept in `raw`
_READ_BYTES = 1 << 20


class LongLine(NamedTuple):
    """A line cut out for its length."""

    line: int  # physical line, 1-based, numbered as LineCutter was told
    length: int  # bytes before its newline (a CR there counts)
    head: bytes  # its first RAW_BYTES bytes


class LineCutter:
    """Passes lines of at most `limit` bytes (before the newline) through and
    replaces each longer one by an empty line, holding at most `limit` bytes."""

    def __init__(self, limit: int, first_line: int = 1) -> None:
        self.limit = limit
        self.cut: list[LongLine] = []
        self._line = first_line  # the number of the line being read
        self._held: list[bytes] = []  # the start of that line
        self._held_bytes = 0
        self._cutting: list | None = None  # [line, length, head] of a cut line
        self.last_byte = b""  # the last byte passed on

    @property
    def in_line(self) -> bool:
        """The bytes fed so far end inside a line."""
        return bool(self._held_bytes) or self._cutting is not None

    def feed(self, chunk: bytes, start: int = 0) -> list:
        """The bytes to pass on (bytes or memoryviews) for chunk[start:]."""
        out: list = []
        view, pos, end = memoryview(chunk), start, len(chunk)
        while pos < end:
            if self._cutting is not None:
                newline = chunk.find(b"\n", pos)
                stop = end if newline < 0 else newline
                self._cutting[1] += stop - pos
                if newline < 0:
                    break
                self._end_cut(out)
                pos = newline + 1
                continue
            room = self.limit - self._held_bytes
            newline = chunk.find(b"\n", pos, min(end, pos + room + 1))
            if newline < 0:
                if end - pos <= room:  # the line may still end in time
                    self._held.append(bytes(view[pos:]))
                    self._held_bytes += end - pos
                    break
                self._start_cut(view[pos : pos + room + 1])
                pos += room + 1
                continue
            out.extend(self._held)
            out.append(view[pos : newline + 1])
            self._held, self._held_bytes = [], 0
            self._line += 1
            pos = newline + 1
            # Every line that ends within the next limit + 1 bytes is short enough.
            last = chunk.rfind(b"\n", pos, min(end, pos + self.limit + 1))
            if last >= 0:
                out.append(view[pos : last + 1])
                self._line += chunk.count(b"\n", pos, last + 1)
                pos = last + 1
        self._note_last(out)
        return out

    def finish(self) -> list:
        """The bytes to pass on at the end of input: the last line when it has
        no line ending (an empty line when it was cut)."""
        out: list = []
        if self._cutting is not None:
            self._end_cut(out)
        out.extend(self._held)
        self._held, self._held_bytes = [], 0
        self._note_last(out)
        return out

    def take_cut(self, through_line: int) -> list[LongLine]:
        """The lines cut so far numbered up to `through_line`, forgotten here."""
        taken = [c for c in self.cut if c.line <= through_line]
        self.cut = [c for c in self.cut if c.line > through_line]
        return taken

    def _start_cut(self, more: memoryview) -> None:
        head = b"".join([*self._held, more])
        self._cutting = [self._line, len(head), head[:RAW_BYTES]]
        self._held, self._held_bytes = [], 0

    def _end_cut(self, out: list) -> None:
        line, length, head = self._cutting
        self.cut.append(LongLine(line, length, head))
        self._cutting = None
        out.append(b"\n")
        self._line += 1

    def _note_last(self, out: list) -> None:
        for piece in reversed(out):
            if len(piece):
                self.last_byte = bytes(piece[-1:])
                return


def end_marker() -> str:
    """A line no input holds: it ends a whole-file stream (see CutStream)."""
    return f"oibeam-end-of-input-{uuid.uuid4().hex}"


class CutStream(io.RawIOBase):
    """The bytes of `source` with over-long lines cut by `cutter` (the first
    `header_bytes` pass as they are) and then a line holding `marker`. Reads
    return the size asked for (pyarrow takes a short read for a block)."""

    def __init__(
        self, source, cutter: LineCutter, header_bytes: int, marker: str
    ) -> None:
        self._source = source
        self._cutter = cutter
        self._header_left = header_bytes
        self._marker = marker.encode()
        self._ready: deque = deque()  # bytes to return, in order
        self._ready_bytes = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._ended and (size < 0 or self._ready_bytes < size):
            self._pull()
        if size < 0 or size >= self._ready_bytes:
            size = self._ready_bytes
        taken, got = [], 0
        while got < size:
            piece = self._ready.popleft()
            if got + len(piece) > size:  # split it: the rest stays ready
                self._ready.appendleft(memoryview(piece)[size - got :])
                piece = memoryview(piece)[: size - got]
            taken.append(piece)
            got += len(piece)
        self._ready_bytes -= got
        return b"".join(taken)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _pull(self) -> None:
        chunk = self._source.read(_READ_BYTES)
        if not chunk:
            pieces = self._cutter.finish()
            ending = b"" if self._cutter.last_byte in (b"\n", b"\r") else b"\n"
            pieces.append(ending + self._marker + b"\n")
            self._ended = True
        elif self._header_left:
            header = min(self._header_left, len(chunk))
            self._header_left -= header
            self._cutter.last_byte = chunk[header - 1 : header]
            pieces = [chunk[:header], *self._cutter.feed(chunk, header)]
        else:
            pieces = self._cutter.feed(chunk)
        self._ready.extend(pieces)
        self._ready_bytes += sum(len(p) for p in pieces)


def ends_in_quoted_field(line: bytes) -> bool:
    """Whether a CSV line (no line ending) ends inside a quoted field: a field
    that starts with a quote and has no closing one (RFC 4180, as pyarrow
    reads it: a quote elsewhere in a field is a plain character)."""
    pos = 0
    while True:
        if line[pos : pos + 1] == b'"':
            pos += 1
            while True:  # to the closing quote; "" is a quote inside
                quote = line.find(b'"', pos)
                if quote < 0:
                    return True
                if line[quote + 1 : quote + 2] != b'"':
                    pos = quote + 1
                    break
                pos = quote + 2
        comma = line.find(b",", pos)
        if comma < 0:
            return False
        pos = comma + 1


def move_long_lines(parsed: ParsedRows, cut: list[LongLine], limit: int) -> ParsedRows:
    """`parsed` with every record that holds a cut line (a row, or a row with a
    wrong number of fields) moved to `too_long`: one entry per record, at its
    first line, `raw` the first RAW_BYTES bytes of its (first) cut line. Lines
    of `cut` and `parsed` must be numbered alike."""
    if not cut:
        return parsed
    n = parsed.table.num_rows
    starts = np.concatenate(
        [parsed.lines, np.array([i[0] for i in parsed.invalid], np.int64)]
    )
    inner = np.array([i[1].count("\n") for i in parsed.invalid], np.int64)
    ends = starts + np.concatenate([newlines_per_row(parsed.table), inner])
    order = np.argsort(starts, kind="stable")
    lines = np.array([c.line for c in cut], np.int64)
    at = np.searchsorted(starts[order], lines, side="right") - 1
    held_by: dict[int, list[LongLine]] = {}  # record (index in starts) -> its cuts
    orphans: list[LongLine] = []
    for c, k in zip(cut, at.tolist(), strict=True):
        record = int(order[k]) if k >= 0 else -1
        if record >= 0 and ends[record] >= c.line:
            held_by.setdefault(record, []).append(c)
        else:  # not expected: still counted, as a record of its own
            orphans.append(c)
    too_long = list(parsed.too_long)
    for record, cuts in sorted(held_by.items(), key=lambda item: starts[item[0]]):
        too_long.append(_too_long(int(starts[record]), cuts, limit))
    too_long.extend(_too_long(c.line, [c], limit) for c in orphans)
    keep = np.ones(n, dtype=bool)
    keep[[r for r in held_by if r < n]] = False
    return ParsedRows(
        table=parsed.table.filter(keep),
        lines=parsed.lines[keep],
        invalid=[i for j, i in enumerate(parsed.invalid) if j + n not in held_by],
        bad_utf8=None if parsed.bad_utf8 is None else parsed.bad_utf8[keep],
        line_count=parsed.line_count,
        too_long=too_long,
    )


def _too_long(first_line: int, cuts: list[LongLine], limit: int) -> tuple:
    """(line, raw, reason) of a record that held over-long lines."""
    c = cuts[0]
    where = "the line" if c.line == first_line else f"line {c.line} of this record"
    reason = (
        f"{where} has {c.length:,} bytes, over --max-line-bytes={limit}; raw is "
        f"its first {min(c.length, RAW_BYTES):,} bytes"
    )
    if len(cuts) > 1:
        reason += f" ({len(cuts)} over-long lines in this record)"
    return first_line, c.head.decode("utf-8", errors="replace"), reason
