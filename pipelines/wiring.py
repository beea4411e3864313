"""Small wiring steps every command uses to write its tables."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from oibeam.transforms.common.write_files import WriteParquetTable

PART = tuple[str, pa.Table]


def camel(name: str) -> str:
    return name.title().replace("_", "")


def _bucket_part(element: tuple[int, pa.Table], buckets: int) -> PART:
    bucket, table = element
    return f"part-{bucket:05d}-of-{buckets:05d}", table


def _single_part(table: pa.Table) -> PART:
    return "part-00000", table


def values(element: tuple[int, pa.Table]) -> pa.Table:
    return element[1]


def bucket_parts(name: str, tables, buckets):
    """(bucket, pa.Table) -> (part-BBBBB-of-NNNNN, pa.Table); `buckets` may be a
    side input (AsSingleton) when the count is known only at run time."""
    return tables | f"Name{camel(name)}Parts" >> beam.Map(
        _bucket_part, buckets=buckets
    ).with_output_types(PART)


def single_part(name: str, table):
    return table | f"Name{camel(name)}Part" >> beam.Map(_single_part).with_output_types(
        PART
    )


def write_table(name: str, parts, directory: str, schema: pa.Schema, compression):
    """(part name, pa.Table) -> WrittenFile, under `directory`."""
    return parts | f"Write{camel(name)}" >> WriteParquetTable(
        directory, name, schema, compression
    )
