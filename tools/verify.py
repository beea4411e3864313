"""`oibeam verify RUN`: check a run offline against its own manifest.

Every kind of run the product writes (`oibeam tables`, `fetch`, `snapshot`,
told apart by what its manifest records), as far as that kind goes:

- the manifest is one oibeam writes, and every path it lists stays inside the
  run's directory (any other is a problem and is never read); a snapshot has
  `_SUCCESS`, and the manifest's SHA-256 is the one `_SUCCESS` records;
- every file the manifest lists is there, with its size, checksum (MD5, or
  CRC-32C for tar shards) and row count (Parquet and CSV); no other file sits
  in the run's table and shard directories; each table's files add up to its
  rows;
- the inputs reconcile: rows read == kept + rejected per input file, and the
  rejected rows == the manifest's rejected_by_code == tables/errors, code by
  code; a tables run keeps every images row it did not reject; the labels
  label_stats marks trainable are those of trainable_labels.csv;
- fetch and snapshot runs: statuses in the images table == the manifest's
  counts == selected images; ok images == shard index rows == tar samples;
  every ok image's bytes, read from its shard at the index's offset, have the
  size and, where it was checked so, the MD5 (OriginalMD5) of the release;
  diff rows == the manifest's changes.
What does not apply is said in a note: a tables run fetched no images; tables
and fetch runs write no `_SUCCESS`, so their manifests are not signed, nor are
those of snapshots published before `_SUCCESS` recorded a digest.
`--quick` checks presence, sizes and row counts without reading every byte.
`report.html` and `exports/` are derived from the run (`oibeam report`,
`oibeam export` rewrite them at will) and are not part of what is verified.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import google_crc32c
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas import fetch as fetch_schema
from oibeam.schemas.snapshot import SUCCESS
from oibeam.tools.runs import (
    BadManifest,
    NotARun,
    inside,
    is_count,
    parse_manifest,
    path_problem,
    resolve_run,
    shape_problems,
    statuses_of,
)
from oibeam.transforms.publish.manifest import MANIFEST
from oibeam.transforms.publish.publish_snapshot import (
    manifest_digest,
    recorded_digest,
)
from oibeam.transforms.shard.shard_writer import checksum_label

_SWEPT = ("tables", "shards", "shards/index")
_THREADS = 4
_UNREADABLE = (pa.ArrowException, OSError)

# What a kind of run does not give to check, said in the report.
_NOT_FETCHED = (
    "a tables run fetched no images: there are no statuses, shard index, "
    "shards or image bytes to check"
)


def _unsigned(kind: str) -> str:
    return (
        f"a {kind} run writes no {SUCCESS}: its {MANIFEST} is what marks it "
        "complete, and nothing records the manifest's digest (manifest not signed)"
    )


_NOT_SIGNED = (
    f"manifest not signed: {SUCCESS} records no digest of {MANIFEST} (a snapshot "
    "published before digests were recorded), so an edited manifest cannot be "
    "told from the one the run wrote"
)


@dataclass
class Report:
    directory: str
    kind: str | None = None  # tables, fetch or snapshot; None: no manifest to say
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: collections.Counter = field(default_factory=collections.Counter)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        what = ", ".join(f"{n:,} {k}" for k, n in sorted(self.checked.items()))
        what = f"{self.kind} run: {what}" if self.kind else what
        what = f" ({what})" if what else ""
        notes = [f"  note: {n}" for n in self.notes]
        if self.ok:
            return "\n".join([f"{self.directory}: OK{what}", *notes])
        shown = self.problems[:50]
        more = len(self.problems) - len(shown)
        return "\n".join(
            [f"{self.directory}: {len(self.problems)} problem(s){what}"]
            + [f"  - {p}" for p in shown]
            + ([f"  ... and {more} more"] if more > 0 else [])
            + notes
        )


class _Unreadable(Exception):
    """A table the checks need cannot be read (the reason is the message)."""


def run_kind(manifest: dict[str, Any]) -> str:
    """tables, fetch or snapshot: the kind of run, from its command and what
    its manifest records (a snapshot section; shards or statuses), so an
    edited `command` cannot skip a check."""
    command = manifest.get("command")
    if command == "snapshot" or "snapshot" in manifest:
        return "snapshot"
    if (
        command == "fetch"
        or "shards" in manifest["tables"]
        or "statuses" in manifest
        or "counts" in manifest
    ):
        return "fetch"
    return "tables"


def _read(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        return handle.read()


def _size(path: str) -> int | None:
    found = FileSystems.match([path])[0].metadata_list
    return found[0].size_in_bytes if found else None


def _checksum(data: bytes, expected: str) -> str:
    """`data`'s checksum in the form of `expected` (CRC32C for shards; CRC32 in
    manifests before 2026-11-24; MD5 hex for tables)."""
    if expected.startswith("crc32c:"):
        return checksum_label(google_crc32c.value(data))
    if expected.startswith("crc32:"):
        return f"crc32:{zlib.crc32(data):08x}"
    return hashlib.md5(data).hexdigest()


# --- the manifest ---------------------------------------------------------


def _check_digest(directory: str, manifest: bytes, report: Report) -> bool:
    """The manifest's digest against the one `_SUCCESS` records (a note if it
    records none); False if there is no `_SUCCESS`."""
    success = f"{directory}/{SUCCESS}"
    if not FileSystems.exists(success):
        return False
    try:
        recorded = recorded_digest(_read(success).decode("utf-8", "replace"))
    except ValueError as e:
        report.problems.append(f"{e}: the manifest's digest cannot be checked")
        return True
    actual = manifest_digest(manifest)
    if recorded is None:
        report.notes.append(_NOT_SIGNED)
    elif recorded != actual:
        report.problems.append(
            f"{MANIFEST} has changed since the snapshot was published: its "
            f"SHA-256 is {actual[:16]}..., {SUCCESS} records {recorded[:16]}..."
        )
    return True


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
class _Listing:
    """The files of each table that can be checked; the tables some of whose
    entries cannot (their row sums are not checked); every safe path."""

    files: dict[str, list[dict]]
    partial: set[str]
    paths: set[str]


def _listing(manifest: dict, report: Report) -> _Listing:
    """Each entry of each table that is complete and inside the run; a problem
    for every other one, which is not read."""
    listing = _Listing({}, set(), set())
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


# --- files ----------------------------------------------------------------


def _check_file(directory: str, table: str, entry: dict, quick: bool, shards):
    """Problems of one listed file; for tar shards, also checks its members."""
    name = entry["path"]
    path = inside(directory, name)
    size = _size(path)
    if size is None:
        return [f"missing: {name}"]
    if size != entry["bytes"]:
        return [f"{name}: {size} bytes, the manifest says {entry['bytes']}"]
    if quick and not name.endswith(".parquet"):
        return []
    data = _read(path)
    problems = []
    if not quick and _checksum(data, entry["md5"]) != entry["md5"]:
        problems.append(f"{name}: checksum differs from the manifest's")
    rows = None
    if name.endswith(".parquet"):
        try:
            rows = pq.read_metadata(pa.py_buffer(data)).num_rows
        except _UNREADABLE as e:
            return [*problems, f"{name}: not a readable Parquet file ({e})"]
    elif name.endswith(".csv"):
        rows = max(data.count(b"\n") - 1, 0)  # header + a line a row, as written
    elif table == "shards" and not quick:
        problems += _check_members(name, data, shards)
    if rows is not None and rows != entry["rows"]:
        problems.append(f"{name}: {rows} rows, the manifest says {entry['rows']}")
    return problems


def _check_members(path: str, data: bytes, shards: dict) -> list[str]:
    """Each ok image of this shard: its bytes at the index's offset match."""
    name = path.rsplit("/", 1)[-1]
    problems = []
    for image_id, offset, size, expected_md5, checked in shards.get(name, ()):
        member = data[offset : offset + size]
        if len(member) != size:
            problems.append(f"{name}: {image_id} runs past the end of the shard")
        elif checked == fetch_schema.CHECKED_MD5:
            digest = base64.b64encode(hashlib.md5(member).digest()).decode()
            if digest != expected_md5:
                problems.append(f"{name}: {image_id} does not match its OriginalMD5")
    return problems


def _strays(directory: str, manifest: dict, listed: set[str]) -> list[str]:
    listed = {f"{directory}/{p}" for p in listed}
    stray = []
    for sub in [*_SWEPT, *(f"tables/{t}" for t in manifest["tables"])]:
        base = f"{directory}/{sub}"
        for pattern in (f"{base}/*", f"{base}/.*"):
            for result in FileSystems.match([pattern]):
                for m in result.metadata_list:
                    rest = m.path[len(base) + 1 :]
                    if "/" in rest or m.path in listed:
                        continue
                    if "://" not in m.path and os.path.isdir(m.path):
                        continue
                    stray.append(m.path[len(directory) + 1 :])
    return sorted(set(stray))


# --- counts ---------------------------------------------------------------


def _table(
    directory: str, listing: _Listing, name: str, columns: list[str] | None = None
) -> pa.Table | None:
    """A table as listed, only `columns`; None if the manifest lists no such
    table; _Unreadable if a file is missing, not Parquet or lacks a column."""
    if name not in listing.files:
        return None
    if name in listing.partial:
        raise _Unreadable(f"tables/{name}: some of its files cannot be read")
    tables = []
    for entry in listing.files[name]:
        path = inside(directory, entry["path"])
        if _size(path) is None:
            raise _Unreadable(f"{entry['path']} is missing")
        try:
            parquet = pq.ParquetFile(pa.BufferReader(_read(path)))
            lacking = [c for c in columns or () if c not in parquet.schema_arrow.names]
            if lacking:
                raise _Unreadable(f"{entry['path']} has no column {', '.join(lacking)}")
            tables.append(parquet.read(columns=columns))
        except _UNREADABLE as e:
            raise _Unreadable(f"{entry['path']} is not readable Parquet ({e})") from e
    return pa.concat_tables(tables) if tables else None


def _check_rows(manifest: dict, listing: _Listing, report: Report) -> None:
    """Each table's files add up to its rows; rows name the listed tables."""
    rows = manifest["rows"]
    for name, files in listing.files.items():
        if name in listing.partial:
            continue  # its entries are problems already
        if sum(f["rows"] for f in files) != rows.get(name):
            report.problems.append(f"{name}: file rows do not add up to rows[{name!r}]")
    unlisted = sorted(set(rows) - set(listing.files))
    if unlisted:
        report.problems.append(
            f"rows name table(s) the manifest lists no files of: {', '.join(unlisted)}"
        )


def _check_inputs(directory: str, manifest: dict, listing: _Listing, report: Report):
    """Rows read == kept + rejected per input; the rejected rows == the
    manifest's codes == the errors table; a tables run keeps the other images."""
    problems = report.problems
    rejected, kept_images = 0, 0
    for n, item in enumerate(manifest["inputs"]):
        counts = [item.get(k) for k in ("rows_read", "rows_kept", "rows_rejected")]
        if counts == [None, None, None]:
            continue  # read where the pipeline is built (a hierarchy): no rows
        if not all(is_count(c) for c in counts):
            problems.append(
                f"inputs[{n}]: its rows read, kept and rejected are not counts"
            )
            continue
        read, kept, dropped = counts
        if read != kept + dropped:
            problems.append(
                f"input {item.get('path')}: read {read} rows, kept {kept}, "
                f"rejected {dropped}"
            )
        rejected += dropped
        kept_images += kept if item.get("kind") == "images" else 0
    by_code = manifest.get("rejected_by_code", {})
    errors = manifest["rows"].get("errors", rejected)
    if not sum(by_code.values()) == rejected == errors:
        problems.append(
            f"rejected rows: {rejected} by the inputs, {sum(by_code.values())} "
            f"by code {by_code}, {errors} in tables/errors"
        )
    images = manifest["rows"].get("images")
    if report.kind == "tables" and images is not None and images != kept_images:
        problems.append(f"{images} images rows, the inputs kept {kept_images}")
    if "errors" in listing.partial:
        return  # its entries are problems already; the rest cannot be counted
    try:
        table = _table(directory, listing, "errors", ["code"])
    except _Unreadable as e:
        problems.append(f"tables/errors cannot be checked: {e}")
    else:
        found = dict(collections.Counter(table["code"].to_pylist())) if table else {}
        if found != {c: n for c, n in by_code.items() if n}:
            problems.append(
                f"tables/errors has {found} rows by code, the manifest {by_code}"
            )


def _check_trainable(directory: str, listing: _Listing, report: Report) -> None:
    """The labels label_stats marks trainable are those of trainable_labels.csv."""
    listed = listing.files.get("trainable_labels")
    if "label_stats" not in listing.files or not listed:
        return
    if {"label_stats", "trainable_labels"} & listing.partial:
        return  # their entries are problems already
    try:
        stats = _table(directory, listing, "label_stats", ["label", "trainable"])
        data = _read(inside(directory, listed[0]["path"]))
        csv = pacsv.read_csv(
            pa.py_buffer(data),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={"LabelName": pa.string(), "DisplayName": pa.string()}
            ),
        )
    except (_Unreadable, *_UNREADABLE) as e:
        report.problems.append(f"the trainable set cannot be checked: {e}")
        return
    marked = (
        set(stats.filter(stats["trainable"])["label"].to_pylist()) if stats else set()
    )
    if marked != set(csv["LabelName"].to_pylist()):
        report.problems.append(
            f"{len(marked)} labels trainable in label_stats, "
            f"{csv.num_rows} in trainable_labels.csv, not the same"
        )


def _reconcile(
    directory: str, manifest: dict, listing: _Listing, report: Report
) -> dict:
    """Counts against the images table and the shard index (fetch and
    snapshot runs); returns the ok images per shard for member checks."""
    problems = report.problems
    counts = manifest.get("counts", {})
    rows = manifest["rows"]
    try:
        images = _table(
            directory,
            listing,
            "images",
            ["ImageID", "status", "OriginalMD5", "checked", "shard", "bytes"],
        )
        index = _table(directory, listing, "shard_index")
        if images is None or index is None:
            raise _Unreadable("the manifest lists no images table or shard index")
    except _Unreadable as e:
        problems.append(f"the images table or the shard index cannot be read: {e}")
        return {}
    statuses = collections.Counter(images["status"].to_pylist())
    expected = statuses_of(manifest)
    if dict(statuses) != expected:
        problems.append(
            f"statuses in tables/images {dict(statuses)} != manifest {expected}"
        )
    if counts.get("selected") != images.num_rows:
        problems.append(
            f"{images.num_rows} images rows, "
            f"the manifest selected {counts.get('selected')}"
        )
    ok = images.filter(pc.equal(images["status"], fetch_schema.OK))
    samples = sum(f["rows"] for f in listing.files.get("shards", []))
    if not ok.num_rows == index.num_rows == samples:
        problems.append(
            f"{ok.num_rows} ok images, {index.num_rows} shard index rows, "
            f"{samples} tar samples"
        )
    if index.num_rows != len(set(index["ImageID"].to_pylist())):
        problems.append("the shard index lists an image twice")
    changes = manifest.get("changes")
    if changes is not None and sum(changes.values()) != rows.get("diff", 0):
        problems.append(f"{rows.get('diff', 0)} diff rows, changes say {changes}")
    report.checked["images"] = images.num_rows
    by_id = {
        r["ImageID"]: r
        for r in ok.select(
            ["ImageID", "OriginalMD5", "checked", "bytes", "shard"]
        ).to_pylist()
    }
    shards: dict[str, list] = collections.defaultdict(list)
    for entry in index.to_pylist():
        image = by_id.get(entry["ImageID"])
        if image is None or image["shard"] != entry["shard"]:
            problems.append(
                f"shard index: {entry['ImageID']} is not an ok image "
                f"of {entry['shard']}"
            )
            continue
        if image["bytes"] != entry["size"]:
            problems.append(
                f"{entry['ImageID']}: {entry['size']} bytes in the shard, "
                f"{image['bytes']} fetched"
            )
        shards[entry["shard"]].append(
            (
                entry["ImageID"],
                entry["offset"],
                entry["size"],
                image["OriginalMD5"],
                image["checked"],
            )
        )
    return shards


# --- the whole run ----------------------------------------------------------


def _read_manifest(directory: str, report: Report) -> dict | None:
    """The manifest, with its digest checked against `_SUCCESS`; None (and a
    problem) unless it is one oibeam writes."""
    try:
        data = _read(f"{directory}/{MANIFEST}")
    except Exception as e:  # whatever the filesystem raises: reported, not lost
        report.problems.append(
            f"cannot read {MANIFEST} ({e}): the run did not finish, or this is "
            "not a run directory"
        )
        return None
    success = _check_digest(directory, data, report)
    try:
        manifest = parse_manifest(data)
    except BadManifest as e:
        report.problems.append(f"{MANIFEST}: {e}")
        return None
    shape = shape_problems(manifest)
    if shape:
        report.problems += [f"{MANIFEST} is not an oibeam manifest: {p}" for p in shape]
        return None
    report.kind = run_kind(manifest)
    if not success and report.kind == "snapshot":
        report.problems.append(f"no {SUCCESS}: the snapshot is not complete")
    elif not success:
        report.notes.append(_unsigned(report.kind))
    return manifest


def verify_snapshot(path: str, quick: bool = False) -> Report:
    """Checks the run at `path` (RUN_DIR, or a snapshot ROOT through LATEST)."""
    try:
        directory = resolve_run(path, complete=False)
    except NotARun as e:
        report = Report(path.rstrip("/"))
        report.problems.append(str(e))
        return report
    report = Report(directory)
    manifest = _read_manifest(directory, report)
    if manifest is None:
        return report
    listing = _listing(manifest, report)
    _check_rows(manifest, listing, report)
    _check_inputs(directory, manifest, listing, report)
    _check_trainable(directory, listing, report)
    shards = {}
    if report.kind == "tables":
        report.notes.insert(0, _NOT_FETCHED)
    else:
        shards = _reconcile(directory, manifest, listing, report)
    entries = [
        (table, entry) for table, files in listing.files.items() for entry in files
    ]
    with ThreadPoolExecutor(_THREADS) as pool:
        for problems in pool.map(
            lambda te: _check_file(directory, te[0], te[1], quick, shards), entries
        ):
            report.problems += problems
    report.checked["files"] = len(entries)
    if report.kind != "tables":
        report.checked["ok images"] = sum(len(v) for v in shards.values())
    report.problems += [
        f"not in the manifest: {p}" for p in _strays(directory, manifest, listing.paths)
    ]
    return report
