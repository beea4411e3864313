"""ReadOpenImagesCsv: images, labels and boxes CSVs -> validated Arrow tables.

One element per planned byte range (see csv_inputs); each yields tables of
thousands of rows, never one Python object per row. Bad rows go to `errors`
with their range and line; every range reports its line count (to number lines
across ranges) and every file how many rows it held (to reconcile counts).
"""

from __future__ import annotations

import hashlib

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.elements import CsvFile, CsvRange, FileCount, RangeLines
from oibeam.schemas.tables import ERRORS_INTERNAL, LINE, REF_LINE, REF_SRC, SRC
from oibeam.transforms.common.csv_text import line_texts, record_texts
from oibeam.transforms.common.metrics import NAMESPACE
from oibeam.transforms.read import csv_parse, validate_boxes, validate_rows
from oibeam.transforms.read.csv_inputs import InputPlan
from oibeam.transforms.read.input_files import PlainStream, open_hashed

_READ_MORE = 1 << 16


def read_range_bytes(
    path: str, start: int, end: int, header_bytes: int
) -> tuple[bytes, str]:
    """The whole lines whose first byte lies in [start, end) of a file, and the
    MD5 (hex) of the file's bytes [start, end).

    Range 0 starts after the header. A line that crosses `end` is read to its
    end; the partial line at `start` belongs to the previous range.
    """
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        begin = 0 if start == 0 else start - 1
        f.seek(begin)
        data = f.read(max(end - begin, 0))
        digest = hashlib.md5(memoryview(data)[start - begin :]).hexdigest()
        while data and not data.endswith(b"\n"):
            more = f.read(_READ_MORE)
            if not more:
                break
            cut = more.find(b"\n")
            data += more if cut < 0 else more[: cut + 1]
            if cut >= 0:
                break
    if start == 0:
        return data[header_bytes:], digest
    first = data.find(b"\n")
    return (b"" if first < 0 else data[first + 1 :]), digest


class CsvStructureError(ValueError):
    """A whole file whose quoting cannot be parsed (not one bad row)."""


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
    number of fields."""
    bad_lines = parsed.lines[problems.rows]
    if data is not None:
        raw = line_texts(data, bad_lines)
    else:
        raw = record_texts(parsed.table, problems.rows)
    invalid = parsed.invalid  # (line, text, fields found)
    count = len(bad_lines) + len(invalid)
    expected = len(f.layout.columns)
    wrong_count = [f"has {i[2]} field(s), expected {expected}" for i in invalid]
    lines = np.concatenate([bad_lines, np.array([i[0] for i in invalid], np.int64)])
    return pa.table(
        {
            SRC: pa.array(np.full(count, range_id, np.int32)),
            LINE: pa.array(lines + line_base, pa.int64()),
            "code": pa.concat_arrays(
                [
                    problems.codes,
                    pa.array(["wrong_field_count"] * len(invalid), pa.string()),
                ]
            ),
            "reason": pa.concat_arrays(
                [problems.reasons, pa.array(wrong_count, pa.string())]
            ),
            "raw": pa.array(raw + [i[1] for i in invalid], pa.string()),
            REF_SRC: pa.nulls(count, pa.int32()),
            REF_LINE: pa.nulls(count, pa.int64()),
        },
        schema=ERRORS_INTERNAL,
    )


class _WholeFile:
    """The parsed blocks of a whole file read as one stream (compressed, or a
    kind that is not split); its MD5 once every block was read."""

    def __init__(self, f: CsvFile) -> None:
        self._f = f
        self.md5: str | None = None

    def __iter__(self):
        stream, raw = open_hashed(self._f.path, self._f.compressed)
        with stream:
            try:
                yield from csv_parse.iter_stream_blocks(
                    PlainStream(stream), self._f.layout.columns
                )
            except pa.ArrowInvalid as e:
                raise CsvStructureError(
                    f"{self._f.path}: the CSV structure breaks down ({e}); a quote "
                    "is probably unbalanced: fix the file, then run again"
                ) from e
            self.md5 = raw.finish()


class _ReadCsvRangeFn(beam.DoFn):
    """Parses and validates one CsvRange.

    Outputs: 'images' / 'boxes' / main ('labels') = pa.Table in the internal
    schema of that kind; 'errors' = pa.Table (ERRORS_INTERNAL); 'lines' = RangeLines;
    'counts' = FileCount(file_id, "read" and "lines", rows).
    """

    def __init__(self, plan: InputPlan) -> None:
        self._files = {f.file_id: f for f in plan.files}
        self._extras = {"images": plan.image_extras, "labels": plan.label_extras}
        self._rows = beam.metrics.Metrics.counter(NAMESPACE, "csv_rows_read")
        self._bad = beam.metrics.Metrics.counter(NAMESPACE, "csv_rows_rejected")

    def process(self, item: CsvRange):
        f = self._files[item.file_id]
        if item.whole:
            blocks = _WholeFile(f)
            line_base, data = 0, None
        else:
            data, md5 = read_range_bytes(f.path, item.start, item.end, f.header_bytes)
            fast = validate_rows.LABEL_FAST_TYPES if f.kind == "labels" else {}
            blocks = [csv_parse.parse_line_block(data, f.layout.columns, fast)]
            line_base = 1 if item.start == 0 else 0  # the header is line 1
        rows_read, line_count = 0, line_base
        for parsed in blocks:
            rows_read += parsed.table.num_rows + len(parsed.invalid)
            line_count = parsed.line_count + line_base
            good, errors = checked_block(
                f, parsed, item.range_id, line_base, data, self._extras.get(f.kind, ())
            )
            if good.num_rows and f.kind in ("images", "boxes"):
                yield beam.pvalue.TaggedOutput(f.kind, good)
            elif good.num_rows:
                yield good  # the main output: labels
            if errors.num_rows:
                self._bad.inc(errors.num_rows)
                yield beam.pvalue.TaggedOutput("errors", errors)
        self._rows.inc(rows_read)
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


class ReadOpenImagesCsv(beam.PTransform):
    """Reads the planned images, labels and boxes files.

    PBegin -> dict of PCollections:
      images: pa.Table (images_internal_schema), labels: pa.Table
      (labels_internal_schema), boxes: pa.Table (boxes_internal_schema),
      errors: pa.Table (ERRORS_INTERNAL), lines: RangeLines,
      counts: FileCount ("read" per file).
    """

    def __init__(self, plan: InputPlan) -> None:
        super().__init__()
        self._plan = plan

    def expand(self, pbegin: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        parsed = (
            pbegin
            | "ListReadRanges"
            >> beam.Create(list(self._plan.ranges_of("images", "labels", "boxes")))
            | "SpreadRanges" >> beam.Reshuffle()
            | "ParseRanges"
            >> beam.ParDo(_ReadCsvRangeFn(self._plan))
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
