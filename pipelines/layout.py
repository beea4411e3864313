"""Where a run's outputs go, and how an output directory is claimed."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import pyarrow as pa

from oibeam.schemas.snapshot import MANIFEST
from oibeam.transforms.common.exchange import EXCHANGE_DIR
from oibeam.transforms.common.filesystem import holds_anything, remove_tree

_LOG = logging.getLogger(__name__)
TABLES = "tables"
SHARDS = "shards"


class OutputExists(ValueError):
    """The output directory holds an earlier run and --overwrite was not given."""


class UsageError(ValueError):
    """Options that cannot work together or with these inputs."""


@dataclass(frozen=True)
class RunLayout:
    """The output contract's paths under one run's root directory."""

    root: str

    def table_dir(self, name: str) -> str:
        return f"{self.root}/{TABLES}/{name}"

    @property
    def trainable_csv(self) -> str:
        return f"{self.root}/{TABLES}/trainable_labels.csv"

    @property
    def shards(self) -> str:
        return f"{self.root}/{SHARDS}"

    @property
    def shard_index(self) -> str:
        return f"{self.root}/{SHARDS}/index"

    @property
    def manifest(self) -> str:
        return f"{self.root}/{MANIFEST}"

    @property
    def exchange(self) -> str:
        return f"{self.root}/{EXCHANGE_DIR}"

    def empty_table(self, name: str, schema: pa.Schema) -> tuple[str, pa.Schema]:
        """(path, schema) of the file to write when a table gets no rows."""
        return f"{self.table_dir(name)}/part-00000.parquet", schema

    def claim(self, overwrite: bool, resumable: bool = False) -> bool:
        """Refuses to mix runs; returns whether this run resumes an unfinished
        one. A finished run (it has a manifest) is replaced only with
        --overwrite. What an unfinished run left is resumed when the command
        can (`resumable`: fetch keeps its committed shards), else replaced."""
        if "://" not in self.root and os.path.isfile(self.root):
            raise OutputExists(f"--output {self.root} is a file, not a directory")
        earlier = [
            path
            for path in (
                self.manifest,
                f"{self.root}/{TABLES}",
                self.shards,
                self.exchange,
            )
            if holds_anything(path)
        ]
        if not earlier:
            return False
        finished = self.manifest in earlier
        if finished and not overwrite:
            raise OutputExists(
                f"{self.root} already holds a finished run ({self.manifest}); "
                "pass --overwrite to replace it, or choose another --output"
            )
        if resumable and not overwrite:
            remove_tree(self.exchange)  # what it parked is rebuilt
            _LOG.info("%s holds an unfinished run: resuming it", self.root)
            return True
        if not finished:
            _LOG.info("%s holds an unfinished run: starting it over", self.root)
        for path in earlier:
            remove_tree(path)
        return False
