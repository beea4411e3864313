"""Find a finished run (ROOT/ID, or a snapshot ROOT through its LATEST) and
read its manifest and tables, on any Beam filesystem: what verify, report and
export share.

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
from oibeam.transforms.publish.publish_snapshot import read_latest

BATCH_ROWS = 65_536


class NotARun(ValueError):
    """The directory holds no complete run (no manifest.json, no LATEST)."""


def resolve_run(path: str, complete: bool = True) -> str:
    """RUN_DIR as given, or ROOT/<LATEST> when `path` is a snapshot root.
    NotARun if neither holds a manifest; with complete=False, the snapshot
    LATEST names is returned even without one (for verify to report on)."""
    path = path.rstrip("/")
    if FileSystems.exists(f"{path}/{MANIFEST}"):
        return path
    try:
        latest = read_latest(path).snapshot_id
    except OSError:  # a file, or an unreadable directory: not a root either
        latest = None
    if latest and (not complete or FileSystems.exists(f"{path}/{latest}/{MANIFEST}")):
        return f"{path}/{latest}"
    raise NotARun(
        f"{path}: no {MANIFEST} (a run that did not finish, or not a run "
        "directory) and no LATEST naming a snapshot under it"
    )


def statuses_of(manifest: dict) -> dict[str, int]:
    """Images per fetch status, as the manifest records them (older
    manifests only as `status:<status>` keys of `counts`)."""
    if "statuses" in manifest:
        return dict(manifest["statuses"])
    prefix = "status:"
    return {
        key[len(prefix) :]: n
        for key, n in manifest.get("counts", {}).items()
        if key.startswith(prefix)
    }


@dataclass(frozen=True)
class Run:
    """One run directory and its manifest."""

    directory: str
    manifest: dict[str, Any]

    @classmethod
    def load(cls, directory: str) -> Run:
        with FileSystems.open(f"{directory}/{MANIFEST}") as f:
            return cls(directory, json.loads(f.read()))

    def table_files(self, name: str, folder: str | None = None) -> list[str]:
        """The Parquet files of a table, sorted, as the manifest lists them
        (else those in `folder`, by default tables/NAME)."""
        listed = self.manifest.get("tables", {}).get(name, {}).get("files")
        if listed is not None:
            return sorted(
                f"{self.directory}/{f['path']}"
                for f in listed
                if f["path"].endswith(".parquet")
            )
        pattern = f"{self.directory}/{folder or f'tables/{name}'}/*.parquet"
        found = FileSystems.match([pattern])[0].metadata_list
        return sorted(
            m.path for m in found if not m.path.rsplit("/", 1)[-1].startswith(".")
        )

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
        """An option of the tables part of the run: the rule, or an input
        option such as expand_ancestors. Runs record options by flag group
        (`options.rule`, `options.inputs`); older ones at the top of `options`
        (`oibeam tables`) or under `options.tables` (fetch, snapshot)."""
        options = self.manifest.get("options", {})
        for where in (options, options.get("inputs", {}), options.get("tables", {})):
            if name in where:
                return where[name]
        return None
