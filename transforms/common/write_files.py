"""Write output files atomically: a temporary name first, the final name last.

A reader never sees a half-written file under its final name: every file is
written as `.tmp-<uuid>-<name>` beside its final path (readers such as pyarrow
datasets skip names starting with '.'), then renamed. Works on every Beam
filesystem (local, gs://; local paths without importing Beam). Each write
reports a WrittenFile with rows, bytes and the MD5 of the bytes, for the
manifest.
"""

from __future__ import annotations

import hashlib
import io
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

from oibeam.schemas.elements import WrittenFile
from oibeam.transforms.common import files

DEFAULT_COMPRESSION = "zstd"


class _HashingWriter(io.RawIOBase):
    """A write-only stream that counts (and hashes) what passes to `sink`."""

    def __init__(self, sink, digest: bool = True) -> None:
        self._sink = sink
        self._digest = digest
        self.md5 = hashlib.md5()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data) -> int:
        view = memoryview(data)
        self._sink.write(view)
        if self._digest:
            self.md5.update(view)
        self.size += len(view)
        return len(view)


def temporary_name(path: str) -> str:
    """A unique name beside `path` that dataset readers skip (leading '.')."""
    directory, name = path.rsplit("/", 1) if "/" in path else ("", path)
    temp = f".tmp-{uuid.uuid4().hex}-{name}"
    return f"{directory}/{temp}" if directory else temp


def commit(temp: str, final: str) -> None:
    """Moves a finished temporary file to its final name, replacing any old one."""
    if files.exists(final):
        files.delete([final])
    files.rename([temp], [final])


def write_atomically(path: str, write, digest: bool = True) -> tuple[int, str]:
    """Calls write(stream) on a temporary file, then renames it to `path`.

    Returns (bytes, md5 hex) of what was written (md5 "" without `digest`).
    """
    temp = temporary_name(path)
    with files.create(temp) as handle:
        counting = _HashingWriter(handle, digest)
        write(counting)
    commit(temp, path)
    return counting.size, counting.md5.hexdigest() if digest else ""


def write_parquet(
    path: str, table: pa.Table, compression: str = DEFAULT_COMPRESSION
) -> tuple[int, str]:
    def write(stream) -> None:
        pq.write_table(table, stream, compression=compression)

    return write_atomically(path, write)


def write_text(path: str, text: str) -> tuple[int, str]:
    return write_atomically(path, lambda stream: stream.write(text.encode("utf-8")))


def write_csv_output(text: str, path: str, table: str) -> WrittenFile:
    """Writes a small CSV (header + rows) atomically; for beam.Map."""
    size, md5 = write_text(path, text)
    rows = max(text.count("\n") - 1, 0)
    return WrittenFile(table, path, rows, size, md5)
