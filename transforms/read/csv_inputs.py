"""Plan the reading of input CSVs: match patterns, check headers, split files.

Runs once, where the pipeline is built, so a wrong input fails before any
worker starts: a pattern that matches nothing, an empty or binary file, or a
header without the required columns is an InputError that names the file.
Files split into byte ranges only where no value can hold a newline (labels
and boxes, uncompressed); images files (free-text Title/Author) and compressed files are
read whole.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass

from apache_beam.io.filesystems import FileSystems

from oibeam.schemas import releases
from oibeam.schemas.elements import CsvFile, CsvRange
from oibeam.transforms.read.classes import starts_like_classes
from oibeam.transforms.read.csv_lines import DEFAULT_SPLIT_BYTES
from oibeam.transforms.read.input_files import InputError, is_compressed, read_head

MIN_SPLIT_BYTES = 4096
_HEAD_BYTES = 1 << 20


@dataclass(frozen=True)
class InputPlan:
    files: tuple[CsvFile, ...]
    ranges: tuple[CsvRange, ...]
    image_extras: tuple[str, ...]  # extra image columns over all images files
    label_extras: tuple[str, ...]
    # Rows in the images files, estimated from the lines of their first MiB
    # of text (and, compressed, the size their text is estimated at).
    image_rows: int = 0
    # Bytes of CSV text in all files, compressed ones inflated (estimated from
    # how their first MiB inflated); 0: not known, the files' sizes.
    text_bytes: int = 0

    def of_kind(self, kind: str) -> tuple[CsvFile, ...]:
        return tuple(f for f in self.files if f.kind == kind)

    @property
    def total_bytes(self) -> int:
        """Bytes of CSV text to read (what the join's buckets are sized by)."""
        return self.text_bytes or sum(f.size for f in self.files)

    def ranges_of(self, *kinds: str) -> tuple[CsvRange, ...]:
        kind_of = {f.file_id: f.kind for f in self.files}
        return tuple(r for r in self.ranges if kind_of[r.file_id] in kinds)


def plan_inputs(
    images: Sequence[str],
    labels: Sequence[str],
    classes: Sequence[str] = (),
    split_bytes: int = DEFAULT_SPLIT_BYTES,
    boxes: Sequence[str] = (),
) -> InputPlan:
    """Matches the patterns and plans one read range per split of each file."""
    if split_bytes < MIN_SPLIT_BYTES:
        raise InputError(
            f"split size {split_bytes} is too small (minimum {MIN_SPLIT_BYTES})"
        )
    matched: list[tuple[str, str, int]] = []  # (kind, path, size)
    seen: dict[str, str] = {}
    for kind, patterns in (
        ("images", images),
        ("labels", labels),
        ("classes", classes),
        ("boxes", boxes),
    ):
        for pattern in patterns:
            for path, size in _match(pattern):
                if path in seen:
                    raise InputError(
                        f"{path} is matched twice (as {seen[path]} and as {kind}); "
                        "each input file may be given once"
                    )
                seen[path] = kind
                matched.append((kind, path, size))
    described = [
        _describe(file_id, kind, path, size)
        for file_id, (kind, path, size) in enumerate(matched)
    ]
    files = tuple(f for f, _, _ in described)
    ranges: list[CsvRange] = []
    for f in files:
        splittable = f.kind in ("labels", "boxes") and not f.compressed
        for start, end in _split(f.size, split_bytes if splittable else None):
            ranges.append(CsvRange(len(ranges), f.file_id, start, end, not splittable))
    return InputPlan(
        files=files,
        ranges=tuple(ranges),
        image_extras=_union_extras(f for f in files if f.kind == "images"),
        label_extras=_union_extras(f for f in files if f.kind == "labels"),
        image_rows=sum(rows for f, rows, _ in described if f.kind == "images"),
        text_bytes=sum(text for _, _, text in described),
    )


def _match(pattern: str) -> list[tuple[str, int]]:
    try:
        results = FileSystems.match([pattern])[0].metadata_list
    except Exception as e:  # Beam raises BeamIOError with per-pattern causes
        raise InputError(f"cannot list {pattern}: {e}") from e
    if not results:
        raise InputError(f"no file matches {pattern}")
    return sorted((m.path, m.size_in_bytes) for m in results)


def _split(size: int, split_bytes: int | None) -> list[tuple[int, int]]:
    if not split_bytes or size <= split_bytes:
        return [(0, size)]
    count = -(-size // split_bytes)
    step = -(-size // count)
    return [(s, min(s + step, size)) for s in range(0, size, step)]


def _rows_estimate(head: bytes, header_bytes: int, size: int) -> int:
    """Data rows in `size` bytes of CSV text (a compressed file's inflated)
    whose first bytes are `head`."""
    body = head[header_bytes:]
    lines = body.count(b"\n")
    if len(head) >= size:  # the whole file
        return lines + (1 if body and not body.endswith(b"\n") else 0)
    return round((size - header_bytes) * lines / len(body)) if lines else 1


def _check_classes_head(path: str, head: bytes) -> None:
    """InputError unless the file starts like class descriptions (as
    classes.starts_like_classes tells), saying what it looks like instead."""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    first = text.splitlines()[0] if text else ""
    if starts_like_classes(first):
        return
    if first.startswith(("{", "[")):
        raise InputError(
            f"{path}: given as --classes, but it is JSON (a label hierarchy? "
            "give it as --hierarchy); --classes takes dict.csv or "
            "class-descriptions*.csv"
        )
    try:
        columns = releases.normalise_header(next(csv.reader([first])))
    except csv.Error:
        columns = ()
    wrong = releases.wrong_kind(path, columns, "classes")
    if wrong:
        raise InputError(wrong)
    raise InputError(
        f"{path}: given as --classes, but its first line {first[:80]!r} is neither "
        "a mid with a name (/m/0abc,Name) nor a LabelName,DisplayName header"
    )


def _describe(
    file_id: int, kind: str, path: str, size: int
) -> tuple[CsvFile, int, int]:
    """The file, checked; its estimated number of data rows and bytes of text."""
    compressed = is_compressed(path)
    head, text_bytes = _read_head(path, compressed, size)
    if not head.strip():
        raise InputError(f"{path}: the file is empty; expected a CSV {kind} file")
    if b"\x00" in head:
        raise InputError(f"{path}: binary content (NUL bytes): not a CSV file")
    if kind == "classes":
        _check_classes_head(path, head)
        described = CsvFile(file_id, path, kind, size, compressed, None, 0, None)
        return described, 0, text_bytes
    newline = head.find(b"\n")
    if newline < 0 and len(head) >= _HEAD_BYTES:
        raise InputError(f"{path}: no line break in the first 1 MiB: not a CSV file")
    header_line = head if newline < 0 else head[: newline + 1]
    try:
        text = header_line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: the header is not UTF-8 text: not a CSV file") from e
    try:
        names = next(csv.reader([text.splitlines()[0] if text else ""]), [])
    except csv.Error as e:
        raise InputError(f"{path}: the header is not a CSV line: {e}") from e
    layout_of = {
        "images": releases.images_layout,
        "labels": releases.labels_layout,
        "boxes": releases.boxes_layout,
    }[kind]
    try:
        layout = layout_of(path, names)
    except releases.HeaderError as e:
        raise InputError(str(e)) from e
    subset = None
    if kind == "images" and "Subset" not in layout.columns:
        subset = releases.subset_from_path(path)
        if subset is None:
            raise InputError(
                f"{path}: no Subset column and the path names no subset "
                f"({', '.join(releases.SUBSETS)}); put the file under a folder "
                "named after its subset, e.g. train/images.csv"
            )
    described = CsvFile(
        file_id, path, kind, size, compressed, layout, len(header_line), subset
    )
    rows = _rows_estimate(head, len(header_line), text_bytes)
    return described, rows, text_bytes


def _read_head(path: str, compressed: bool, size: int) -> tuple[bytes, int]:
    """The first MiB of the file's content and its estimated size (see
    input_files.read_head); DamagedInput when a compressed file is damaged
    within it."""
    try:
        return read_head(path, compressed, _HEAD_BYTES, size)
    except InputError:
        raise
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e}") from e


def _union_extras(files) -> tuple[str, ...]:
    extras: list[str] = []
    for f in files:
        for name in f.layout.extras:
            if name not in extras:
                extras.append(name)
    return tuple(extras)
