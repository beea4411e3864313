"""ReadWrittenImages: the images-table parts a fetch wrote, read back with only
the columns the duplicates search needs."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.elements import WrittenFile
from oibeam.transforms.dedup.keys import COLUMNS

IMAGES = "images"  # WrittenFile.table of an images-table part


def read_columns(path: str, columns=COLUMNS) -> pa.Table:
    """The `columns` a Parquet file has, of all its rows."""
    with FileSystems.open(path) as handle:
        parquet = pq.ParquetFile(pa.BufferReader(handle.read()))
    present = [c for c in columns if c in parquet.schema_arrow.names]
    return parquet.read(columns=present)


def _read_part(written: WrittenFile):
    if written.table == IMAGES and written.rows:
        yield read_columns(written.path)


class ReadWrittenImages(beam.PTransform):
    """PCollection[WrittenFile] of a run (any table's) -> PCollection[pa.Table]:
    each images-table part with rows, its duplicates columns only."""

    def expand(
        self, written: beam.PCollection[WrittenFile]
    ) -> beam.PCollection[pa.Table]:
        return written | "ReadImagesParts" >> beam.FlatMap(
            _read_part
        ).with_output_types(pa.Table)
