"""Write one WebDataset tar shard: deterministic bytes, committed only when complete.

Samples are `<ImageID>.<ext>` (the original bytes) followed by `<ImageID>.json`.
Headers are plain USTAR with fixed mtime, owner and mode, so the same samples
in the same order give the same shard bytes on every run and machine. The
shard is written under a temporary name beside its final one and renamed by
`commit()`; `abort()` removes it, so a killed run never leaves a truncated
shard under a final name. Every member's data offset is recorded for the index.

The shard's checksum is a CRC32C (Castagnoli), the checksum GCS keeps for every
object: hardware-assisted in google-crc32c, 0.02 ms per 460 KB image where
zlib's CRC32 took 0.1 ms, a few per cent of a fetch. A local shard is written
around the page cache (direct_file).
"""

from __future__ import annotations

from dataclasses import dataclass

import google_crc32c
from apache_beam.io.filesystems import FileSystems

from oibeam.transforms.common.write_files import commit, temporary_name
from oibeam.transforms.shard.direct_file import create_bulk

_BLOCK = 512
_END = b"\0" * (2 * _BLOCK)
CHECKSUM = "crc32c"


def checksum_label(crc: int) -> str:
    """How the manifest records a CRC32C: "crc32c:<8 hex digits>"."""
    return f"{CHECKSUM}:{crc:08x}"


@dataclass(frozen=True)
class Member:
    name: str
    offset: int  # of the member's data in the tar
    size: int


def _header(name: str, size: int) -> bytes:
    """A USTAR header for a regular file: mode 0644, owner 0, mtime 0.

    Built directly (tarfile.TarInfo.tobuf cost ~10% of a fetch's CPU); a test
    checks it is byte-identical to tarfile's.
    """
    encoded = name.encode("utf-8")
    if len(encoded) > 100:
        raise ValueError(f"member name longer than 100 bytes: {name!r}")
    header = bytearray(_BLOCK)
    header[0 : len(encoded)] = encoded
    header[100:108] = b"0000644\0"
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"00000000000\0"
    header[148:156] = b"        "  # checksum computed with these as spaces
    header[156:157] = b"0"  # regular file
    header[257:265] = b"ustar\x0000"
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


class ShardWriter:
    """Appends samples to a tar at `path` (any Beam filesystem)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._temp = temporary_name(path)
        self._handle = create_bulk(self._temp)
        self._offset = 0
        self._crc = 0
        self.samples = 0

    def _write(self, data) -> None:
        self._handle.write(data)
        self._crc = google_crc32c.extend(self._crc, data)
        self._offset += len(data)

    def add(self, name: str, data: bytes) -> Member:
        self._write(_header(name, len(data)))
        member = Member(name, self._offset, len(data))
        self._write(data)
        pad = -len(data) % _BLOCK
        if pad:
            self._write(b"\0" * pad)
        return member

    def add_sample(self, key: str, ext: str, image: bytes, meta: bytes):
        """Adds `<key>.<ext>` and `<key>.json`; returns both Members."""
        self.samples += 1
        return self.add(f"{key}.{ext}", image), self.add(f"{key}.json", meta)

    def commit(self) -> tuple[int, str]:
        """Finishes the tar and moves it to its final name: (bytes, checksum
        label for the manifest)."""
        self._write(_END)
        self._handle.close()
        commit(self._temp, self.path)
        return self._offset, checksum_label(self._crc)

    def abort(self) -> None:
        try:
            self._handle.close()
        finally:
            if FileSystems.exists(self._temp):
                FileSystems.delete([self._temp])
