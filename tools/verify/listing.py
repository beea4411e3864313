"""What of a manifest's listing can be checked; reading its bytes and tables."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.snapshot import MANIFEST
from oibeam.tools.runs import inside, is_count, path_problem
from oibeam.tools.verify.findings import Report

UNREADABLE = (pa.ArrowException, OSError)


class Unreadable(Exception):
    """A table the checks need cannot be read (the reason is the message)."""


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        return handle.read()


def size_of(path: str) -> int | None:
    found = FileSystems.match([path])[0].metadata_list
    return found[0].size_in_bytes if found else None


def _entry_problem(entry: dict) -> str | None:
    for key in ("bytes", "rows", "md5"):
        if key not in entry:
            return f"no {key}"
    if not is_count(entry["bytes"]) or not is_count(entry["rows"]):
        return "bytes and rows must be counts"
    if not isinstance(entry["md5"], str):
        return "md5 is not a string"
    return None


@dataclass
class Listing:
    """The files of each table that can be checked; the tables some of whose
    entries cannot (their row sums are not checked); every safe path."""

    files: dict[str, list[dict]]
    partial: set[str]
    paths: set[str]


def listing_of(manifest: dict, report: Report) -> Listing:
    """Each entry of each table that is complete and inside the run; a problem
    for every other one, which is not read."""
    listing = Listing({}, set(), set())
    for table, entry in sorted(manifest["tables"].items()):
        listing.files[table] = []
        for n, item in enumerate(entry["files"]):
            unsafe = path_problem(item["path"])
            problem = unsafe or _entry_problem(item)
            if not unsafe:
                listing.paths.add(item["path"])
            if problem:
                report.problems.append(
                    f"{MANIFEST}: tables.{table}.files[{n}]: {problem}: not read"
                )
                listing.partial.add(table)
            else:
                listing.files[table].append(item)
    return listing


def read_table(
    directory: str, listing: Listing, name: str, columns: list[str] | None = None
) -> pa.Table | None:
    """A table as listed, only `columns`; None if the manifest lists no such
    table; Unreadable if a file is missing, not Parquet or lacks a column."""
    if name not in listing.files:
        return None
    if name in listing.partial:
        raise Unreadable(f"tables/{name}: some of its files cannot be read")
    tables = []
    for entry in listing.files[name]:
        path = inside(directory, entry["path"])
        if size_of(path) is None:
            raise Unreadable(f"{entry['path']} is missing")
        try:
            parquet = pq.ParquetFile(pa.BufferReader(read_bytes(path)))
            lacking = [c for c in columns or () if c not in parquet.schema_arrow.names]
            if lacking:
                raise Unreadable(f"{entry['path']} has no column {', '.join(lacking)}")
            tables.append(parquet.read(columns=columns))
        except UNREADABLE as e:
            raise Unreadable(f"{entry['path']} is not readable Parquet ({e})") from e
    return pa.concat_tables(tables) if tables else None
