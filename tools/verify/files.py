"""The files a manifest lists: size, checksum, rows, tar members; and no strays."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib

import google_crc32c
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas import fetch as fetch_schema
from oibeam.tools.gc.record import read_record
from oibeam.tools.runs import inside
from oibeam.tools.verify.listing import UNREADABLE, read_bytes, size_of
from oibeam.transforms.shard.locations import from_run_relative
from oibeam.transforms.shard.shard_writer import checksum_label

_SWEPT = ("tables", "shards", "shards/index")


def _checksum(data: bytes, expected: str) -> str:
    """`data`'s checksum in the form of `expected` (CRC32C for shards; CRC32 in
    manifests before 2026-11-24; MD5 hex for tables)."""
    if expected.startswith("crc32c:"):
        return checksum_label(google_crc32c.value(data))
    if expected.startswith("crc32:"):
        return f"crc32:{zlib.crc32(data):08x}"
    return hashlib.md5(data).hexdigest()


def check_file(directory: str, table: str, entry: dict, quick: bool, shards):
    """(problems, notes) of one listed file; for tar shards, also checks its
    members."""
    name = entry["path"]
    path = inside(directory, name)
    size = size_of(path)
    if size is None:
        return [f"missing: {name}"], []
    if size != entry["bytes"]:
        return [f"{name}: {size} bytes, the manifest says {entry['bytes']}"], []
    if quick and not name.endswith(".parquet"):
        return [], []
    data = read_bytes(path)
    problems, notes = [], []
    if not quick and _checksum(data, entry["md5"]) != entry["md5"]:
        accepted, why = _erasure(path, name, data, entry, shards, table)
        if accepted:
            notes.append(why)
        else:
            problems.append(f"{name}: checksum differs from the manifest's{why}")
    rows = None
    if name.endswith(".parquet"):
        try:
            rows = pq.read_metadata(pa.py_buffer(data)).num_rows
        except UNREADABLE as e:
            return [*problems, f"{name}: not a readable Parquet file ({e})"], notes
    elif name.endswith(".csv"):
        rows = max(data.count(b"\n") - 1, 0)  # header + a line a row, as written
    elif table == "shards" and not quick:
        problems += _check_members(name, data, shards)
    if rows is not None and rows != entry["rows"]:
        problems.append(f"{name}: {rows} rows, the manifest says {entry['rows']}")
    return problems, notes


def _erasure(path: str, name: str, data: bytes, entry: dict, shards, table: str):
    """(True, a note) if `oibeam gc` erased images from this pooled shard and
    its erasure record explains the checksum; else (False, what to add to
    the problem: "" without a record)."""
    shard = from_run_relative(name) if table == "shards" else None
    record = read_record(path) if shard is not None else None
    if record is None:
        return False, ""
    if record["was"] != entry["md5"]:
        return False, f", and its erasure record starts from {record['was']}"
    if checksum_label(google_crc32c.value(data)) != record["crc32c"]:
        return False, ", and from the one its erasure record gives"
    still = sorted(set(record["erased"]) & {i[0] for i in shards.get(shard, ())})
    if still:
        return False, f"; it erased {', '.join(still[:5])}, which this snapshot has"
    return True, (
        f"{name}: {len(record['erased'])} image(s) that no kept snapshot has "
        f"were erased by oibeam gc at {record.get('at')}; its checksum is the "
        "one its erasure record gives"
    )


def _check_members(path: str, data: bytes, shards: dict) -> list[str]:
    """Each ok image of this shard: its bytes at the index's offset match."""
    name = from_run_relative(path) or path.rsplit("/", 1)[-1]
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


def strays(directory: str, manifest: dict, listed: set[str]) -> list[str]:
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
