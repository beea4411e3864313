"""WriteParquetTable: a PCollection of (part name, table) as Parquet files,
each written atomically by write_files."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from oibeam.schemas.elements import WrittenFile
from oibeam.transforms.common.write_files import DEFAULT_COMPRESSION, write_parquet


class _WriteParquetPartFn(beam.DoFn):
    """(part name, pa.Table) -> WrittenFile, written to DIR/<part>.parquet."""

    def __init__(self, directory: str, table: str, schema: pa.Schema, compression: str):
        self._directory = directory.rstrip("/")
        self._table = table
        self._schema = schema
        self._compression = compression

    def process(self, element: tuple[str, pa.Table]):
        part, table = element
        if table.schema != self._schema:
            table = table.cast(self._schema)
        path = f"{self._directory}/{part}.parquet"
        size, md5 = write_parquet(path, table, self._compression)
        yield WrittenFile(self._table, path, table.num_rows, size, md5)


class WriteParquetTable(beam.PTransform):
    """Writes PCollection[(part name, pa.Table)] as DIR/<part>.parquet files.

    Output: PCollection[WrittenFile]. Part names must be unique and stable
    (a bucket or range number), so a retried bundle rewrites the same file.
    """

    def __init__(
        self,
        directory: str,
        table: str,
        schema: pa.Schema,
        compression: str = DEFAULT_COMPRESSION,
    ) -> None:
        super().__init__()
        self._fn = _WriteParquetPartFn(directory, table, schema, compression)

    def expand(
        self, parts: beam.PCollection[tuple[str, pa.Table]]
    ) -> beam.PCollection[WrittenFile]:
        return parts | "WriteParts" >> beam.ParDo(self._fn).with_output_types(
            WrittenFile
        )
