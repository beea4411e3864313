"""ReadClassDescriptions: mid -> display name from dict.csv / class-descriptions.

Accepts V1 `dict.csv` (every field quoted, no header) and V2+
`class-descriptions*.csv` (mixed CRLF/LF endings, quoted names with commas, an
optional header). Files are small (tens of thousands of rows) and read whole in
one step (more than MAX_CLASS_BYTES of text is refused), in the order given:
the first description of a mid wins, later ones are `duplicate_class` errors.
Rows without a usable mid or name are errors too.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from dataclasses import dataclass, field

import apache_beam as beam
import pyarrow as pa

from oibeam.schemas import releases
from oibeam.schemas.elements import CsvFile, CsvRange, FileCount, RangeLines
from oibeam.schemas.tables import CLASSES, ERRORS_INTERNAL, LINE, REF_LINE, REF_SRC, SRC
from oibeam.transforms.common.csv_text import csv_line
from oibeam.transforms.read.input_files import InputError, open_hashed, read_full

_MID = re.compile(releases.LABEL_NAME_PATTERN)
# Headers seen in class description files (V5+: LabelName,DisplayName).
_HEADERS = [["labelname", "displayname"], ["id", "name"], ["mid", "name"]]
# Open Images' largest class file has ~1 MB of text, Tencent's dictionary
# ~1.5 MB: more is not class descriptions (or a compressed "bomb").
MAX_CLASS_BYTES = 256 << 20


def _is_header(fields: list[str]) -> bool:
    return [f.strip().lower() for f in fields] in _HEADERS


def starts_like_classes(first_line: str) -> bool:
    """Whether a file whose first line (no BOM) is `first_line` reads as class
    descriptions: a header parse_classes skips, or a row whose first field is
    a mid (`/m/0abc,Name` or `"/m/0abc","Name"`)."""
    try:
        fields = next(csv.reader([first_line]), [])
    except csv.Error:
        return False
    return _is_header(fields) or bool(fields and _MID.match(fields[0].strip()))


def read_class_file(path: str, compressed: bool) -> tuple[bytes, str]:
    """A class file's text (inflated when compressed) and the MD5 of the file
    as stored; DamagedInput when it is cut short or corrupt, InputError when
    it has more than MAX_CLASS_BYTES of text (both name the file)."""
    stream, raw = open_hashed(path, compressed)
    with stream:
        data = read_full(stream, MAX_CLASS_BYTES + 1)
        if len(data) > MAX_CLASS_BYTES:
            raise InputError(
                f"{path}: more than {MAX_CLASS_BYTES:,} bytes of text, too much "
                "for class descriptions (Open Images' class files have a few MB "
                "at most): is it the right file?"
            )
        return data, raw.finish()


@dataclass
class ParsedClasses:
    names: dict[str, str] = field(default_factory=dict)  # mid -> display name
    first_seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)
    rows: dict[int, int] = field(default_factory=dict)  # kept rows per file
    read: dict[int, int] = field(default_factory=dict)  # data rows per file

    def table(self) -> pa.Table:
        return pa.table(
            {
                "LabelName": pa.array(list(self.names), pa.string()),
                "DisplayName": pa.array(list(self.names.values()), pa.string()),
            },
            schema=CLASSES,
        )


def parse_classes(data: bytes, file_id: int, range_id: int, out: ParsedClasses) -> None:
    """Adds one class description file's rows to `out` (pure)."""
    text = data.decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    previous_end = 0
    out.read.setdefault(file_id, 0)
    out.rows.setdefault(file_id, 0)
    for index, fields in enumerate(reader):
        line, previous_end = previous_end + 1, reader.line_num
        if index == 0 and _is_header(fields):
            continue  # a header such as LabelName,DisplayName
        out.read[file_id] += 1
        raw = csv_line(fields)
        fail = functools.partial(_fail, out, range_id, line, raw)
        if not fields:
            fail("empty_line", "empty line")
            continue
        if any("\udc80" <= ch <= "\udcff" for value in fields for ch in value):
            fail("invalid_utf8", "text is not valid UTF-8")
            continue
        if len(fields) != 2:
            fail("wrong_field_count", f"has {len(fields)} field(s), expected 2")
            continue
        mid, name = fields[0].strip(), fields[1].strip()
        if not _MID.match(mid):
            fail("bad_label", f"LabelName is not a label id like /m/0abc: '{mid[:60]}'")
            continue
        if not name:
            fail("empty_display_name", f"{mid} has an empty display name")
            continue
        if mid in out.names:
            fail(
                "duplicate_class",
                f"{mid} is described again; the first description is kept",
                out.first_seen[mid],
            )
            continue
        out.names[mid] = name
        out.first_seen[mid] = (range_id, line)
        out.rows[file_id] += 1


def _fail(
    out: ParsedClasses,
    range_id: int,
    line: int,
    raw: str,
    code: str,
    reason: str,
    ref: tuple[int, int] | None = None,
) -> None:
    out.errors.append(
        {
            SRC: range_id,
            LINE: line,
            "code": code,
            "reason": reason,
            "raw": raw.encode("utf-8", "replace").decode("utf-8"),
            REF_SRC: None if ref is None else ref[0],
            REF_LINE: None if ref is None else ref[1],
        }
    )


class _ReadClassesFn(beam.DoFn):
    """All class files (one element) -> class table; errors and counts tagged."""

    def __init__(self, files: tuple[CsvFile, ...], ranges: tuple[CsvRange, ...]):
        self._files = files
        self._range_of = {r.file_id: r.range_id for r in ranges}

    def process(self, _unused):
        parsed = ParsedClasses()
        for f in self._files:
            data, md5 = read_class_file(f.path, f.compressed)
            range_id = self._range_of[f.file_id]
            parse_classes(data, f.file_id, range_id, parsed)
            lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
            yield beam.pvalue.TaggedOutput("lines", RangeLines(range_id, lines, md5))
        yield parsed.table()
        if parsed.errors:
            yield beam.pvalue.TaggedOutput(
                "errors", pa.Table.from_pylist(parsed.errors, schema=ERRORS_INTERNAL)
            )
        for file_id in sorted(parsed.read):
            yield beam.pvalue.TaggedOutput(
                "counts", FileCount(file_id, "read", parsed.read[file_id])
            )
            yield beam.pvalue.TaggedOutput(
                "counts", FileCount(file_id, "rows", parsed.rows[file_id])
            )


class ReadClassDescriptions(beam.PTransform):
    """PBegin -> dict: classes = PCollection with one pa.Table (CLASSES schema,
    empty without class files), errors = pa.Table (ERRORS_INTERNAL),
    counts = FileCount, lines = RangeLines (with each file's MD5)."""

    def __init__(self, files: tuple[CsvFile, ...], ranges: tuple[CsvRange, ...]):
        super().__init__()
        self._files = files
        self._ranges = ranges

    def expand(self, pbegin: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        parsed = (
            pbegin
            | "One" >> beam.Create([None])
            | "ParseClassFiles"
            >> beam.ParDo(_ReadClassesFn(self._files, self._ranges))
            .with_output_types(
                pa.Table, errors=pa.Table, counts=FileCount, lines=RangeLines
            )
            .with_outputs("errors", "counts", "lines", main="classes")
        )
        return {
            "classes": parsed.classes,
            "lines": parsed.lines,
            "errors": parsed.errors,
            "counts": parsed.counts,
        }
