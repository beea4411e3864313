"""Erase the members of dead images from a pooled shard, keeping every other
member's offset and the shard's size.

First every header is read (seeking over the data) and checked: a shard that
is not a valid ustar archive is refused (NotATar) before anything is written.
Then the shard is streamed, never held whole, to a temporary name beside it:
live spans copied, each run of dead spans replaced (tar_spans.replacement).
The old bytes' CRC32C must be one the manifests give the shard or its
erasure record says it has now, else the shard is refused (Untrusted) and
left as it was: gc never blesses a shard that changed otherwise. The new file
then replaces the shard (local: os.replace; gs://: the new object written
over the old), and the erasure record is written (record.py).

A gc killed between the replace and the record leaves a shard whose checksum
nothing records: verify reports it and gc refuses it until it is looked at.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import google_crc32c
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from oibeam.tools.gc.record import read_record, write_record
from oibeam.tools.gc.tar_spans import CHUNK, erased_runs, read_spans, replacement
from oibeam.transforms.common.write_files import temporary_name
from oibeam.transforms.shard.shard_writer import checksum_label


class Untrusted(ValueError):
    """The shard's bytes match neither its manifests nor its erasure record."""


@dataclass(frozen=True)
class Erasure:
    """What was (or, in a dry run, would be) erased from one shard."""

    path: str
    images: tuple[str, ...]  # ImageIDs whose members went, sorted
    bytes: int  # the shard's size, the same before and after


def _open(path: str):
    return FileSystems.open(
        path,
        mime_type="application/x-tar",
        compression_type=CompressionTypes.UNCOMPRESSED,
    )


def _size(path: str) -> int:
    found = FileSystems.match([path])[0].metadata_list
    if not found:
        raise FileNotFoundError(path)
    return found[0].size_in_bytes


def erase_shard(
    path: str, dead: set[str], trusted: set[str], dry_run: bool = False
) -> Erasure | None:
    """Erases the members of the `dead` ImageIDs from the tar at `path`;
    None if none of them is there (any more). `trusted`: the checksum labels
    the manifests of kept snapshots give it."""
    size = _size(path)
    with _open(path) as handle:
        spans, end = read_spans(handle, size)
    runs, found = erased_runs(spans, dead)
    if not found:
        return None
    erasure = Erasure(path, tuple(sorted(found)), size)
    if dry_run:
        return erasure
    record = read_record(path)
    labels = set(trusted) | ({record["crc32c"]} if record else set())
    temp = temporary_name(path)
    try:
        old, new = _rewrite(path, temp, runs, end, size)
        if old not in labels:
            raise Untrusted(
                f"{path}: its checksum {old} is neither the manifest's nor its "
                "erasure record's: left as it was; run `oibeam verify`"
            )
        _replace(temp, path)
    finally:
        with contextlib.suppress(Exception):
            if FileSystems.exists(temp):
                FileSystems.delete([temp])
    erased = found | set(record["erased"] if record else ())
    write_record(path, record["was"] if record else old, new, size, erased)
    return erasure


@contextlib.contextmanager
def _sink(path: str):
    if "://" in path:
        with FileSystems.create(
            path, "application/x-tar", CompressionTypes.UNCOMPRESSED
        ) as handle:
            yield handle
        return
    with open(path, "wb") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())  # before it replaces the shard


def _rewrite(
    path: str, temp: str, runs: list[tuple[int, int]], end: int, size: int
) -> tuple[str, str]:
    """Streams `path` to `temp` with each run replaced; the checksum labels
    of the old and the new bytes."""
    crc = {"old": 0, "new": 0}
    done = 0
    with _open(path) as source, _sink(temp) as sink:

        def take(n: int, keep: bool) -> None:
            nonlocal done
            while n > 0:
                data = source.read(min(n, CHUNK))
                if not data:
                    raise Untrusted(f"{path} ended at {done} bytes, expected {size}")
                crc["old"] = google_crc32c.extend(crc["old"], data)
                if keep:
                    put(data)
                done += len(data)
                n -= len(data)

        def put(data: bytes) -> None:
            sink.write(data)
            crc["new"] = google_crc32c.extend(crc["new"], data)

        for offset, length in runs:
            take(offset - done, keep=True)
            take(length, keep=False)
            for piece in replacement(length, last=offset + length == end):
                put(piece)
        take(size - done, keep=True)
        if source.read(1):
            raise Untrusted(f"{path} grew while it was erased")
    return checksum_label(crc["old"]), checksum_label(crc["new"])


def _replace(temp: str, path: str) -> None:
    if "://" in path:
        # Copies over the old object in one step, then drops the temporary.
        FileSystems.rename([temp], [path])
    else:
        os.replace(temp, path)
