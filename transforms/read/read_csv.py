"""ReadOpenImagesCsv: images, labels and boxes CSVs -> validated Arrow tables.

One element per planned byte range (see csv_inputs); each yields tables of
thousands of rows, never one Python object per row. Bad rows go to `errors`
with their range and line; every range reports its line count (to number lines
across ranges) and every file how many rows it held (to reconcile counts).
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa

from oibeam.schemas.elements import CsvFile, CsvRange, FileCount, RangeLines
from oibeam.schemas.tables import ERRORS_INTERNAL, LINE, REF_LINE, REF_SRC, SRC
from oibeam.transforms.common.csv_text import line_texts, record_texts
from oibeam.transforms.common.metrics import NAMESPACE
from oibeam.transforms.common.progress import PROGRESS, READ
from oibeam.transforms.read import csv_parse, validate_boxes, validate_rows
from oibeam.transforms.read.csv_blocks import WholeFile, range_block
from oibeam.transforms.read.csv_inputs import InputPlan
from oibeam.transforms.read.csv_lines import DEFAULT_MAX_LINE_BYTES

# Tables of a whole file go out in pieces of about this size: fewer, bigger
# exchange files for the join than one per read block.
_OUTPUT_BYTES = 32 << 20


def checked_block(
    f: CsvFile,
    parsed: csv_parse.ParsedRows,
    range_id: int,
    line_base: int,
    data: bytes | None,
    extras: tuple[str, ...],
) -> tuple[pa.Table, pa.Table]:
    """One parsed block of a file validated (pure, no Beam): the good rows in
    the internal schema of the file's kind, with their range and line; and an
    ERRORS_INTERNAL row for every bad one. `data` is the block's bytes (a range
    read: bad rows quote their line as it was), None for a whole file read
    as a stream (bad rows are rebuilt from their fields); `extras` are the
    run's extra columns of the file's kind."""
    if f.kind == "images":
        good, problems, kept = validate_rows.check_images(
            parsed.table, f.layout, extras, f.subset, parsed.bad_utf8
        )
    elif f.kind == "boxes":
        good, problems, kept = validate_boxes.check_boxes(parsed.table, parsed.bad_utf8)
    else:
        good, problems, kept = validate_rows.check_labels(
            parsed.table, extras, parsed.bad_utf8
        )
    good = good.append_column(
        pa.field(SRC, pa.int32()), pa.array(np.full(len(kept), range_id, np.int32))
    ).append_column(
        pa.field(LINE, pa.int64()), pa.array(parsed.lines[kept] + line_base)
    )
    return good, _error_rows(f, parsed, problems, range_id, line_base, data)


def _error_rows(f, parsed, problems, range_id, line_base, data) -> pa.Table:
    """ERRORS_INTERNAL rows: rows that failed a check, then rows with a wrong
    number of fields, then records with an over-long line."""
    bad_lines = parsed.lines[problems.rows]
    if data is not None:
        raw = line_texts(data, bad_lines)
    else:
        raw = record_texts(parsed.table, problems.rows)
    invalid = parsed.invalid  # (line, text, fields found)
    too_long = parsed.too_long  # (line, raw, reason)
    count = len(bad_lines) + len(invalid) + len(too_long)
    expected = len(f.layout.columns)
    wrong_count = [f"has {i[2]} field(s), expected {expected}" for i in invalid]
    lines = np.concatenate(
        [
            bad_lines,
            np.array([i[0] for i in invalid], np.int64),
            np.array([t[0] for t in too_long], np.int64),
        ]
    )
    codes = ["wrong_field_count"] * len(invalid) + ["line_too_long"] * len(too_long)
    return pa.table(
        {
            SRC: pa.array(np.full(count, range_id, np.int32)),
            LINE: pa.array(lines + line_base, pa.int64()),
            "code": pa.concat_arrays([problems.codes, pa.array(codes, pa.string())]),
            "reason": pa.concat_arrays(
                [
                    problems.reasons,
                    pa.array(wrong_count + [t[2] for t in too_long], pa.string()),
                ]
            ),
            "raw": pa.array(
                raw + [i[1] for i in invalid] + [t[1] for t in too_long], pa.string()
            ),
            REF_SRC: pa.nulls(count, pa.int32()),
            REF_LINE: pa.nulls(count, pa.int64()),
        },
        schema=ERRORS_INTERNAL,
    )


class _Gathered:
    """Tables gathered into outputs of about `size` bytes."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._tables: list[pa.Table] = []
        self._bytes = 0

    def add(self, table: pa.Table) -> pa.Table | None:
        """The tables gathered so far, once they reach the size; else None."""
        if table.num_rows:
            self._tables.append(table)
            self._bytes += table.nbytes
        return self.flush() if self._bytes >= self._size else None

    def flush(self) -> pa.Table | None:
        """The tables gathered so far (None if none)."""
        if not self._tables:
            return None
        out = pa.concat_tables(self._tables)
        self._tables, self._bytes = [], 0
        return out


class _ReadCsvRangeFn(beam.DoFn):
    """Parses and validates one CsvRange (a whole file: block by block, its
    tables sent on ~32 MiB at a time).

    Outputs: 'images' / 'boxes' / main ('labels') = pa.Table in the internal
    schema of that kind; 'errors' = pa.Table (ERRORS_INTERNAL); 'lines' = RangeLines;
    'counts' = FileCount(file_id, "read" and "lines", rows).
    """

    def __init__(
        self, plan: InputPlan, max_line_bytes: int, progress_dir: str | None
    ) -> None:
        self._progress_dir = progress_dir
        self._files = {f.file_id: f for f in plan.files}
        self._extras = {"images": plan.image_extras, "labels": plan.label_extras}
        self._max_line_bytes = max_line_bytes
        self._rows = beam.metrics.Metrics.counter(NAMESPACE, "csv_rows_read")
        self._bad = beam.metrics.Metrics.counter(NAMESPACE, "csv_rows_rejected")

    def process(self, item: CsvRange):
        f = self._files[item.file_id]
        if item.whole:
            blocks = WholeFile(f, self._max_line_bytes)
            line_base, data = 0, None
        else:
            data, parsed, md5 = range_block(f, item, self._max_line_bytes)
            blocks = [parsed]
            line_base = 1 if item.start == 0 else 0  # the header is line 1
        gathered = {
            f.kind: _Gathered(_OUTPUT_BYTES),
            "errors": _Gathered(_OUTPUT_BYTES),
        }
        rows_read, line_count, reported = 0, line_base, 0
        for parsed in blocks:
            if item.whole and self._progress_dir:  # a big file: say it as it goes
                PROGRESS.add(
                    READ, blocks.position - reported, publish_to=self._progress_dir
                )
                reported = blocks.position
            rows_read += (
                parsed.table.num_rows + len(parsed.invalid) + len(parsed.too_long)
            )
            line_count = parsed.line_count + line_base
            good, errors = checked_block(
                f, parsed, item.range_id, line_base, data, self._extras.get(f.kind, ())
            )
            self._bad.inc(errors.num_rows)
            yield from _outputs(f.kind, gathered[f.kind].add(good))
            yield from _outputs("errors", gathered["errors"].add(errors))
        for name, tables in gathered.items():
            yield from _outputs(name, tables.flush())
        self._rows.inc(rows_read)
        if self._progress_dir:  # at once: the total of a finished read is exact
            size = f.size if item.whole else item.end - item.start
            PROGRESS.add(
                READ, size - reported, publish_to=self._progress_dir, at_once=True
            )
        md5 = blocks.md5 if item.whole else md5
        yield beam.pvalue.TaggedOutput(
            "lines", RangeLines(item.range_id, line_count, md5)
        )
        yield beam.pvalue.TaggedOutput(
            "counts", FileCount(item.file_id, "read", rows_read)
        )
        yield beam.pvalue.TaggedOutput(
            "counts", FileCount(item.file_id, "lines", line_count)
        )


def _outputs(tag: str, table: pa.Table | None):
    """The output of `table` (none for None): labels are the main output."""
    if table is None:
        return
    yield table if tag == "labels" else beam.pvalue.TaggedOutput(tag, table)


class ReadOpenImagesCsv(beam.PTransform):
    """Reads the planned images, labels and boxes files.

    PBegin -> dict of PCollections:
      images: pa.Table (images_internal_schema), labels: pa.Table
      (labels_internal_schema), boxes: pa.Table (boxes_internal_schema),
      errors: pa.Table (ERRORS_INTERNAL), lines: RangeLines,
      counts: FileCount ("read" per file).
    """

    def __init__(
        self,
        plan: InputPlan,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        progress_dir: str | None = None,
    ) -> None:
        super().__init__()
        self._plan = plan
        self._max_line_bytes = max_line_bytes
        self._progress_dir = progress_dir

    def expand(self, pbegin: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        parsed = (
            pbegin
            | "ListReadRanges"
            >> beam.Create(list(self._plan.ranges_of("images", "labels", "boxes")))
            | "SpreadRanges" >> beam.Reshuffle()
            | "ParseRanges"
            >> beam.ParDo(
                _ReadCsvRangeFn(self._plan, self._max_line_bytes, self._progress_dir)
            )
            .with_output_types(
                pa.Table,
                images=pa.Table,
                boxes=pa.Table,
                errors=pa.Table,
                lines=RangeLines,
                counts=FileCount,
            )
            .with_outputs("images", "boxes", "errors", "lines", "counts", main="labels")
        )
        return {
            "images": parsed.images,
            "labels": parsed.labels,
            "boxes": parsed.boxes,
            "errors": parsed.errors,
            "lines": parsed.lines,
            "counts": parsed.counts,
        }
