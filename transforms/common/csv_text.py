"""Rows written back as CSV text: a rejected row's raw text in errors, the
trainable labels CSV, class names (RFC 4180 quoting)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def line_texts(data: bytes, lines: np.ndarray) -> list[str]:
    """The text of the given 1-based physical lines of `data` (no line ending)."""
    if len(lines) == 0:
        return []
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    starts = np.concatenate([[0], ends + 1])
    ends = np.concatenate([ends, [len(data)]])
    out = []
    for line in lines:
        chunk = data[starts[line - 1] : ends[line - 1]]
        out.append(chunk.rstrip(b"\r").decode("utf-8", errors="replace"))
    return out


def csv_line(values) -> str:
    """One CSV record (RFC 4180 quoting, no line ending)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def csv_fields(values: pa.Array) -> pa.Array:
    """Values as CSV field text: nulls empty, quoted where RFC 4180 needs it."""
    text = pc.fill_null(values.cast(pa.string()), "")
    needs_quotes = pc.match_substring_regex(text, '[",\r\n]')
    quoted = pc.binary_join_element_wise(
        '"', pc.replace_substring(text, '"', '""'), '"', ""
    )
    return pc.if_else(needs_quotes, quoted, text)


def record_texts(table: pa.Table, rows: np.ndarray) -> list[str]:
    """Rows of a string table written back as CSV records."""
    picked = table.take(pa.array(rows, pa.int64())).to_pylist()
    return [csv_line("" if v is None else v for v in r.values()) for r in picked]
