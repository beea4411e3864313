"""Find a run directory and read its manifest and tables, on any Beam filesystem.

Tables are read file by file through FileSystems (local or gs://), only the
columns asked for; the images table in record batches, never whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from oibeam.transforms.publish.manifest import MANIFEST
from oibeam.transforms.publish.publish_snapshot import NotARun, resolve_run  # noqa: F401 (re-exported)

BATCH_ROWS = 65_536


@dataclass(frozen=True)
class Run:
    """One run directory and its manifest."""

    directory: str
    manifest: dict[str, Any]

    @classmethod
    def load(cls, directory: str) -> Run:
        with FileSystems.open(f"{directory}/{MANIFEST}") as f:
            return cls(directory, json.loads(f.read()))

    def table_files(self, name: str) -> list[str]:
        """The Parquet files of a table, as the manifest lists them (else a glob)."""
        listed = self.manifest.get("tables", {}).get(name, {}).get("files")
        if listed is not None:
            return [
                f"{self.directory}/{f['path']}"
                for f in listed
                if f["path"].endswith(".parquet")
            ]
        found = FileSystems.match([f"{self.directory}/tables/{name}/*.parquet"])
        return sorted(m.path for m in found[0].metadata_list)

    def schema(self, name: str) -> pa.Schema | None:
        """The table's schema (from its first file), None if it has no files."""
        files = self.table_files(name)
        if not files:
            return None
        with FileSystems.open(files[0]) as f:
            return pq.ParquetFile(f).schema_arrow

    def read(self, name: str, columns: list[str]) -> pa.Table | None:
        """A small table, only `columns` that it has; None if it is absent."""
        schema = self.schema(name)
        if schema is None:
            return None
        present = [c for c in columns if c in schema.names]
        pieces = []
        for path in self.table_files(name):
            with FileSystems.open(path) as f:
                pieces.append(pq.ParquetFile(f).read(columns=present))
        return pa.concat_tables(pieces)

    def batches(self, name: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
        """A table's record batches, only `columns` that it has."""
        schema = self.schema(name)
        if schema is None:
            return
        present = [c for c in columns if c in schema.names]
        for path in self.table_files(name):
            with FileSystems.open(path) as f:
                yield from pq.ParquetFile(f).iter_batches(
                    batch_size=BATCH_ROWS, columns=present
                )

    def table_option(self, name: str) -> Any:
        """An option of the tables part of the run (`oibeam tables` records them
        at the top of `options`, fetch and snapshot under `options.tables`)."""
        options = self.manifest.get("options", {})
        if name in options:
            return options[name]
        return options.get("tables", {}).get(name)
