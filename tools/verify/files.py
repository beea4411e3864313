"""The files a manifest lists: size, checksum, rows, tar members; and no strays."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib

import google_crc32c
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas import fetch as fetch_schema
from oibeam.tools.gc.record import read_record
from oibeam.tools.runs import inside
from oibeam.tools.verify.listing import UNREADABLE, read_bytes, size_of
from oibeam.transforms.shard.locations import from_run_relative
from oibeam.transforms.shard.shard_writer import checksum_label

_SWEPT = ("tables", "shards", "shards/index")
_CHUNK = 4 << 20


def _checksum(data: bytes, expected: str) -> str:
    """`data`'s checksum in the form of `expected` (CRC32C for shards; CRC32 in
    manifests before 2026-11-24; MD5 hex for tables)."""
    if expected.startswith("crc32c:"):
        return checksum_label(google_crc32c.value(data))
    if expected.startswith("crc32:"):
        return f"crc32:{zlib.crc32(data):08x}"
    return hashlib.md5(data).hexdigest()


def check_file(
    directory: str, table: str, entry: dict, quick: bool, shards, deep: bool = False
):
    """(problems, notes) of one listed file; with `deep`, a tar shard's
    members are checked against OriginalMD5 too."""
    name = entry["path"]
    path = inside(directory, name)
    size = size_of(path)
    if size is None:
        return [f"missing: {name}"], []
    if size != entry["bytes"]:
        return [f"{name}: {size} bytes, the manifest says {entry['bytes']}"], []
    if quick and not name.endswith(".parquet"):
        return [], []
    if table == "shards":
        return _check_shard(path, name, entry, shards, deep)
    data = read_bytes(path)
    problems, notes = [], []
    if not quick and _checksum(data, entry["md5"]) != entry["md5"]:
        problems.append(f"{name}: checksum differs from the manifest's")
    rows = None
    if name.endswith(".parquet"):
        try:
            rows = pq.read_metadata(pa.py_buffer(data)).num_rows
        except UNREADABLE as e:
            return [*problems, f"{name}: not a readable Parquet file ({e})"], notes
    elif name.endswith(".csv"):
        rows = max(data.count(b"\n") - 1, 0)  # header + a line a row, as written
    if rows is not None and rows != entry["rows"]:
        problems.append(f"{name}: {rows} rows, the manifest says {entry['rows']}")
    return problems, notes


def _check_shard(path: str, name: str, entry: dict, shards, deep: bool):
    """(problems, notes) of a tar shard, streamed (a shard can be GBs): its
    checksum, explained by an erasure record if gc erased images from it;
    with `deep`, every ok image's bytes against OriginalMD5."""
    problems, notes = [], []
    checksum, crc32c = _stream_checksums(path, entry["md5"])
    if checksum != entry["md5"]:
        accepted, why = _erasure(path, name, crc32c, entry, shards)
        if accepted:
            notes.append(why)
        else:
            problems.append(f"{name}: checksum differs from the manifest's{why}")
    if deep:
        problems += _check_members(path, name, shards)
    return problems, notes


def _stream_checksums(path: str, expected: str) -> tuple[str, str]:
    """(the checksum in the form of `expected`, the CRC32C label) of a file,
    read in 4 MiB chunks."""
    crc32c = crc32 = 0
    md5 = hashlib.md5()
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        while chunk := f.read(_CHUNK):
            crc32c = google_crc32c.extend(crc32c, chunk)
            if expected.startswith("crc32:"):
                crc32 = zlib.crc32(chunk, crc32)
            elif not expected.startswith("crc32c:"):
                md5.update(chunk)
    label = checksum_label(crc32c)
    if expected.startswith("crc32c:"):
        return label, label
    if expected.startswith("crc32:"):
        return f"crc32:{crc32:08x}", label
    return md5.hexdigest(), label


def _erasure(path: str, name: str, crc32c: str, entry: dict, shards):
    """(True, a note) if `oibeam gc` erased images from this pooled shard and
    its erasure record explains the checksum (`crc32c`, the file's); else
    (False, what to add to the problem: "" without a record)."""
    shard = from_run_relative(name)
    record = read_record(path) if shard is not None else None
    if record is None:
        return False, ""
    if record["was"] != entry["md5"]:
        return False, f", and its erasure record starts from {record['was']}"
    if crc32c != record["crc32c"]:
        return False, ", and from the one its erasure record gives"
    still = sorted(set(record["erased"]) & {i[0] for i in shards.get(shard, ())})
    if still:
        return False, f"; it erased {', '.join(still[:5])}, which this snapshot has"
    return True, (
        f"{name}: {len(record['erased'])} image(s) that no kept snapshot has "
        f"were erased by oibeam gc at {record.get('at')}; its checksum is the "
        "one its erasure record gives"
    )


def _check_members(path: str, name: str, shards: dict) -> list[str]:
    """Each ok image of this shard: its bytes at the index's offset have its
    size and, where the fetch checked it, its OriginalMD5; read one image at
    a time, in offset order."""
    shard = from_run_relative(name) or name.rsplit("/", 1)[-1]
    problems = []
    members = sorted(shards.get(shard, ()), key=lambda m: m[1])
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        for image_id, offset, size, expected_md5, checked in members:
            f.seek(offset)
            member = f.read(size)
            if len(member) != size:
                problems.append(f"{shard}: {image_id} runs past the end of the shard")
            elif checked == fetch_schema.CHECKED_MD5:
                digest = base64.b64encode(hashlib.md5(member).digest()).decode()
                if digest != expected_md5:
                    problems.append(
                        f"{shard}: {image_id} does not match its OriginalMD5"
                    )
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
