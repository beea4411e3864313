"""The erasure record `X.erased.json` beside an erased pooled shard X.

{"was": the checksum label manifests give X (before any erasure),
 "crc32c": X's label now, "bytes": its size (erasure keeps it),
 "erased": every ImageID erased from X so far (sorted), "at": ISO time}.
`oibeam verify` accepts a pooled shard whose checksum differs from the
manifest's when its record explains the difference.
"""

from __future__ import annotations

import datetime
import json

from apache_beam.io.filesystems import FileSystems

from oibeam.tools.gc.plan import RECORD_SUFFIX
from oibeam.transforms.common.write_files import write_text


def record_path(shard_path: str) -> str:
    return shard_path + RECORD_SUFFIX


def read_record(shard_path: str) -> dict | None:
    """The record of the shard at `shard_path`, None if it has none or it is
    not one gc writes (an object with string labels and a list of ids)."""
    path = record_path(shard_path)
    if not FileSystems.exists(path):
        return None
    try:
        with FileSystems.open(path) as handle:
            record = json.loads(handle.read())
    except ValueError:
        return None
    if (
        not isinstance(record, dict)
        or not all(isinstance(record.get(k), str) for k in ("was", "crc32c"))
        or not isinstance(record.get("erased"), list)
    ):
        return None
    return record


def write_record(
    shard_path: str, was: str, crc32c: str, size: int, erased: set[str]
) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    record = {
        "was": was,
        "crc32c": crc32c,
        "bytes": size,
        "erased": sorted(erased),
        "at": now,
    }
    write_text(record_path(shard_path), json.dumps(record, indent=1) + "\n")
