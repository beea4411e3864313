"""ReadImagesTables: images tables written by an earlier run, read back as input.

`oibeam fetch --images out/tables/images/*.parquet` selects and fetches from
the images table of `oibeam tables` (or of an earlier fetch: its status columns
are dropped, the new fetch writes its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.boxes import UPRIGHT_FIELDS
from oibeam.schemas.fetch import STATUS_COLUMNS
from oibeam.schemas.releases import IMAGE_COLUMNS
from oibeam.schemas.tables import images_schema
from oibeam.transforms.read.csv_inputs import InputError

REQUIRED = ("ImageID", "Subset", "OriginalURL", "OriginalSize", "OriginalMD5", "labels")


def is_images_table(patterns: Sequence[str]) -> bool:
    """Whether the --images patterns name Parquet images tables (not CSVs)."""
    kinds = {p.rstrip("/").endswith(".parquet") for p in patterns}
    if len(kinds) > 1:
        raise InputError("--images mixes Parquet tables and CSV files")
    return kinds == {True}


def count_rows(files: Sequence[str]) -> int:
    """Rows in the images tables' files, from their Parquet footers."""
    rows = 0
    for path in files:
        with FileSystems.open(path) as handle:
            rows += pq.read_metadata(handle).num_rows
    return rows


@dataclass(frozen=True)
class ImagesTables:
    """The images tables to read: their files, and the extra (non-release)
    columns they carry, in order of first appearance."""

    files: tuple[str, ...]
    extras: tuple[str, ...]


def plan_images_tables(patterns: Sequence[str]) -> ImagesTables:
    """The matched files and their extra columns, checking every file's schema
    (InputError for a pattern that matches nothing or a file that is not an
    oibeam images table)."""
    files: list[str] = []
    for pattern in patterns:
        found = FileSystems.match([pattern])[0].metadata_list
        if not found:
            raise InputError(f"no file matches {pattern}")
        files.extend(sorted(m.path for m in found))
    extras: list[str] = []
    known = set(IMAGE_COLUMNS) | {"labels", "boxes"} | set(STATUS_COLUMNS)
    known |= {f.name for f in UPRIGHT_FIELDS}
    for path in files:
        with FileSystems.open(path) as handle:
            try:
                names = pq.read_schema(handle).names
            except pa.ArrowInvalid as e:
                raise InputError(f"{path}: not a Parquet file ({e})") from e
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise InputError(
                f"{path}: not an oibeam images table: missing {', '.join(missing)}"
            )
        extras += [c for c in names if c not in known and c not in extras]
    return ImagesTables(tuple(files), tuple(extras))


def _read(element: tuple[int, str], extras: tuple[str, ...]):
    index, path = element
    with FileSystems.open(path) as handle:
        table = pq.read_table(handle)
    schema = images_schema(extras)
    columns = [
        table[f.name] if f.name in table.column_names else pa.nulls(len(table), f.type)
        for f in schema
    ]
    return index, pa.Table.from_arrays(columns, schema=schema)


class ReadImagesTables(beam.PTransform):
    """PBegin -> PCollection[(file index, pa.Table images_schema(extras))]."""

    def __init__(self, tables: ImagesTables) -> None:
        super().__init__()
        self._tables = tables

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            | "ListTables" >> beam.Create(list(enumerate(self._tables.files)))
            | "SpreadTables" >> beam.Reshuffle()
            | "ReadTables"
            >> beam.Map(_read, extras=self._tables.extras).with_output_types(
                tuple[int, pa.Table]
            )
        )
