"""Small element types that travel between steps (everything bulky is a pa.Table)."""

from __future__ import annotations

from typing import NamedTuple

from oibeam.schemas.releases import CsvLayout


class CsvFile(NamedTuple):
    """One matched input file, with what its header told us."""

    file_id: int
    path: str
    kind: str  # "images" | "labels" | "classes" | "boxes"
    size: int
    compressed: bool
    layout: CsvLayout | None  # None for class description files
    header_bytes: int  # bytes of the header line (0 when the file has none)
    subset: str | None  # from the path, for images files without a Subset column


class CsvRange(NamedTuple):
    """A byte range of one file, read by one worker.

    A record belongs to the range its first byte falls in. Whole files (compressed,
    or with free text that may hold quoted newlines) are one range [0, size).
    """

    range_id: int
    file_id: int
    start: int
    end: int
    whole: bool


class RangeLines(NamedTuple):
    """What reading one range found: its physical lines (header included, to
    number lines across ranges) and the MD5 (hex) of its bytes as stored."""

    range_id: int
    lines: int
    md5: str


class WrittenFile(NamedTuple):
    """A file a writer committed under its final name."""

    table: str
    path: str
    rows: int
    bytes: int
    md5: str  # hex digest of the file's bytes


class FileCount(NamedTuple):
    """A count about one input file, summed per (file_id, counter, code):
    rows `read`, physical `lines`, rows kept (`rows`), rows rejected
    (`errors`), and rows rejected with one error `code` (`rejected`)."""

    file_id: int
    counter: str  # read | lines | rows | errors | rejected
    n: int
    code: str = ""  # the error code of a `rejected` count


class BucketPiece(NamedTuple):
    """Rows of one join bucket from one read block, parked in an exchange file."""

    side: str  # "images" | "labels"
    path: str
    rows: int


# What a run counts about its images (Count.kind): images selected, and per
# fetch status, refresh change, refresh action, or --label that selected them;
# and images the selection dropped, per reason (--drop-eval-duplicates).
SELECTED, STATUS, CHANGE, ACTION, LABEL, DROPPED = (
    "selected",
    "status",
    "change",
    "action",
    "label",
    "dropped",
)


class Count(NamedTuple):
    """A count for the manifest, summed over the run: images selected, or
    images per fetch status, refresh change or refresh action (`value`)."""

    kind: str  # SELECTED | STATUS | CHANGE | ACTION | LABEL | DROPPED
    value: str  # which status, change, action, label or reason ("" for SELECTED)
    n: int
