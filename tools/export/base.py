"""What every export format shares: the Exporter protocol, output files written
under a temporary name and renamed when complete, and the sweep of stale files.

An export is two passes over the ok images (see `reader`): `observe` sees every
batch unsorted (to collect classes, categories, licenses), then `start`,
`write` for each batch in ImageID order, and `finish`, which commits the
files. A rerun replaces the files; files of an earlier export of the same
format that this one did not write are removed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.releases import SUBSETS
from oibeam.transforms.common.write_files import commit, temporary_name

# Columns the reader adds to every batch: where the image is in the shards.
PATH = "path"  # shards/<shard>/<member>, relative to the run directory
INDEX_COLUMNS: tuple[str, ...] = ("shard", "member", "offset", "size")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class ExportError(ValueError):
    """The run or the options cannot give this export (the user's to fix)."""


@dataclass(frozen=True)
class WrittenExport:
    """One file an export wrote: its format, path, and rows of what `unit`
    says (images, classes, licenses), plus an optional detail."""

    format: str
    path: str
    rows: int
    bytes: int
    unit: str = "images"
    detail: str = ""


class OutputFile:
    """A file written as `.tmp-<uuid>-<name>` beside `path`, renamed on commit."""

    def __init__(self, fmt: str, path: str, unit: str = "images") -> None:
        self.format = fmt
        self.path = path
        self.unit = unit
        self.detail = ""
        self.rows = 0
        self.bytes = 0
        self._temp = temporary_name(path)
        self._handle = FileSystems.create(
            self._temp, compression_type=CompressionTypes.UNCOMPRESSED
        )

    def write(self, data: bytes | str, rows: int = 0) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._handle.write(data)
        self.bytes += len(data)
        self.rows += rows

    def commit(self) -> WrittenExport:
        self._handle.close()
        commit(self._temp, self.path)
        return WrittenExport(
            self.format, self.path, self.rows, self.bytes, self.unit, self.detail
        )

    def discard(self) -> None:
        try:
            self._handle.close()
        finally:
            if FileSystems.exists(self._temp):
                FileSystems.delete([self._temp])


class Exporter:
    """One format. Subclasses set `name` and `columns` (image columns they read,
    when the run has them) and implement `start`, `write` and `finish`."""

    name = ""
    columns: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._files: list[OutputFile] = []

    def observe(self, table: pa.Table) -> None:
        """Pass 1: a batch of ok images, in no particular order."""

    def start(self, directory: str) -> None:
        """Opens the files under `directory` (this format's own)."""
        raise NotImplementedError

    def write(self, table: pa.Table) -> None:
        """Pass 2: the next batch of ok images in ImageID order, with PATH and
        INDEX_COLUMNS."""
        raise NotImplementedError

    def finish(self) -> list[WrittenExport]:
        """Completes and commits every file; returns them in a fixed order."""
        raise NotImplementedError

    def open(self, path: str, unit: str = "images") -> OutputFile:
        output = OutputFile(self.name, path, unit)
        self._files.append(output)
        return output

    def commit_all(self) -> list[WrittenExport]:
        written = [f.commit() for f in self._files]
        self._files = []
        return written

    def discard(self) -> None:
        """Drops every uncommitted file (after a failure)."""
        for output in self._files:
            output.discard()
        self._files = []


def merge_names(known: dict[str, str | None], labels, names) -> None:
    """Adds each label's display name to `known`. Of several names for one
    label the least wins, so the result never depends on batch order."""
    grouped = (
        pa.table({"label": labels, "name": names})
        .group_by("label", use_threads=False)
        .aggregate([("name", "min")])
    )
    for label, name in zip(
        grouped["label"].to_pylist(), grouped["name_min"].to_pylist(), strict=True
    ):
        old = known.get(label)
        if label not in known or (name is not None and (old is None or name < old)):
            known[label] = name


def list_directory(directory: str) -> list[str]:
    """Every file directly in `directory`, dot files included (a killed run's
    temporary files)."""
    if "://" not in directory:
        if not os.path.isdir(directory):
            return []
        return sorted(
            os.path.join(directory, name)
            for name in os.listdir(directory)
            if os.path.isfile(os.path.join(directory, name))
        )
    found = FileSystems.match([f"{directory.rstrip('/')}/*"])[0].metadata_list
    return sorted(m.path for m in found)


def sweep(directory: str, keep: list[str]) -> list[str]:
    """Deletes the files in `directory` that are not in `keep`; returns them."""
    wanted = set(keep)
    stale = [p for p in list_directory(directory) if p not in wanted]
    if stale:
        FileSystems.delete(stale)
    return stale


def subset_name(subset: str | None) -> str:
    """The file stem of a Subset (`other` for a name unsafe in a path)."""
    return subset if subset and _SAFE_NAME.match(subset) else "other"


def by_subset(written: list[WrittenExport]) -> list[WrittenExport]:
    """Files in a fixed order: others first, then train, validation, test."""
    order = {s: i for i, s in enumerate(SUBSETS)}

    def key(w: WrittenExport):
        stem = w.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        return (stem in order, order.get(stem, -1), w.path)

    return sorted(written, key=key)
