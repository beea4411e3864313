"""`oibeam verify ROOT/ID`: check a snapshot offline against its own manifest.

- complete: `_SUCCESS` and `manifest.json` are there;
- every file the manifest lists is there, with its size, checksum (MD5, or
  CRC-32 for tar shards) and, for Parquet, its row count; no other file sits in
  the snapshot's table and shard directories;
- the counts reconcile: statuses in the images table == the manifest's counts ==
  selected images; ok images == shard index rows == tar samples; diff rows ==
  the manifest's changes;
- every ok image's bytes, read from its shard at the index's offset, have the
  size and, where it was checked so, the MD5 (OriginalMD5) of the release.
`--quick` checks presence, sizes and row counts without reading every byte.
`report.html` and `exports/` are derived from the snapshot (`oibeam report`,
`oibeam export` rewrite them at will) and are not part of what is verified.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import google_crc32c
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas import fetch as fetch_schema
from oibeam.schemas.snapshot import SUCCESS
from oibeam.tools.runs import NotARun, resolve_run, statuses_of
from oibeam.transforms.publish.manifest import MANIFEST
from oibeam.transforms.shard.shard_writer import checksum_label

_SWEPT = ("tables", "shards", "shards/index")
_THREADS = 4


@dataclass
class Report:
    directory: str
    problems: list[str] = field(default_factory=list)
    checked: collections.Counter = field(default_factory=collections.Counter)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        what = ", ".join(f"{n:,} {k}" for k, n in sorted(self.checked.items()))
        if self.ok:
            return f"{self.directory}: OK ({what})"
        shown = self.problems[:50]
        more = len(self.problems) - len(shown)
        return "\n".join(
            [f"{self.directory}: {len(self.problems)} problem(s) ({what})"]
            + [f"  - {p}" for p in shown]
            + ([f"  ... and {more} more"] if more > 0 else [])
        )


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


def _check_file(directory: str, table: str, entry: dict, quick: bool, shards):
    """Problems of one listed file; for tar shards, also checks its members."""
    path = f"{directory}/{entry['path']}"
    size = _size(path)
    if size is None:
        return [f"missing: {entry['path']}"]
    if size != entry["bytes"]:
        return [f"{entry['path']}: {size} bytes, the manifest says {entry['bytes']}"]
    if quick and not entry["path"].endswith(".parquet"):
        return []
    data = _read(path)
    problems = []
    if not quick and _checksum(data, entry["md5"]) != entry["md5"]:
        problems.append(f"{entry['path']}: checksum differs from the manifest's")
    if entry["path"].endswith(".parquet"):
        rows = pq.read_metadata(pa.py_buffer(data)).num_rows
        if rows != entry["rows"]:
            problems.append(
                f"{entry['path']}: {rows} rows, the manifest says {entry['rows']}"
            )
    elif table == "shards" and not quick:
        problems += _check_members(entry["path"], data, shards)
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


def _table(directory: str, manifest: dict, name: str, columns=None) -> pa.Table | None:
    files = manifest["tables"].get(name, {}).get("files", [])
    tables = []
    for entry in files:
        path = f"{directory}/{entry['path']}"
        if _size(path) is None:
            return None
        tables.append(pq.read_table(pa.py_buffer(_read(path)), columns=columns))
    return pa.concat_tables(tables) if tables else None


def _reconcile(directory: str, manifest: dict, report: Report) -> dict:
    """Counts against tables; returns the ok images per shard for member checks."""
    problems = report.problems
    counts = manifest.get("counts", {})
    rows = manifest.get("rows", {})
    for name, entry in manifest["tables"].items():
        if sum(f["rows"] for f in entry["files"]) != rows.get(name):
            problems.append(f"{name}: file rows do not add up to rows[{name!r}]")
    images = _table(
        directory,
        manifest,
        "images",
        ["ImageID", "status", "OriginalMD5", "checked", "shard", "bytes"],
    )
    index = _table(directory, manifest, "shard_index")
    if images is None or index is None:
        problems.append("the images table or the shard index cannot be read")
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
    samples = sum(
        f["rows"] for f in manifest["tables"].get("shards", {}).get("files", [])
    )
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


def _strays(directory: str, manifest: dict) -> list[str]:
    listed = {
        f"{directory}/{f['path']}"
        for entry in manifest["tables"].values()
        for f in entry["files"]
    }
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


def verify_snapshot(path: str, quick: bool = False) -> Report:
    try:
        directory = resolve_run(path, complete=False)
    except NotARun:  # reported below: no _SUCCESS, no manifest
        directory = path.rstrip("/")
    report = Report(directory)
    if not FileSystems.exists(f"{directory}/{SUCCESS}"):
        report.problems.append(f"no {SUCCESS}: the snapshot is not complete")
    try:
        manifest = json.loads(_read(f"{directory}/{MANIFEST}"))
    except Exception as e:
        report.problems.append(f"cannot read {MANIFEST}: {e}")
        return report
    shards = _reconcile(directory, manifest, report)
    entries = [
        (table, entry)
        for table, t in sorted(manifest["tables"].items())
        for entry in t["files"]
    ]
    with ThreadPoolExecutor(_THREADS) as pool:
        for problems in pool.map(
            lambda te: _check_file(directory, te[0], te[1], quick, shards), entries
        ):
            report.problems += problems
    report.checked["files"] = len(entries)
    report.checked["ok images"] = sum(len(v) for v in shards.values())
    report.problems += [
        f"not in the manifest: {p}" for p in _strays(directory, manifest)
    ]
    return report
