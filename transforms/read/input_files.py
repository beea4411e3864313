"""Reading input files as stored: hashed on the way, decompressed when needed."""

from __future__ import annotations

import hashlib
import io

from apache_beam.io.filesystem import CompressedFile, CompressionTypes
from apache_beam.io.filesystems import FileSystems


class _HashingReader(io.RawIOBase):
    """Reads a Beam file and hashes every byte that passes (the file as stored)."""

    mode = "rb"  # Beam's CompressedFile asks

    def __init__(self, handle) -> None:
        self._handle = handle
        self.md5 = hashlib.md5()
        self._position = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:  # CompressedFile checks it starts at 0
        return self._position

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.md5.update(data)
        self._position += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def finish(self) -> str:
        """Hashes whatever was not read yet; the MD5 of the whole file."""
        while self.read(1 << 20):
            pass
        return self.md5.hexdigest()


def open_hashed(path: str, compressed: bool):
    """(stream of the file's content, the reader hashing its stored bytes)."""
    raw = _HashingReader(
        FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    )
    if not compressed:
        return raw, raw
    kind = CompressionTypes.detect_compression_type(path)
    return CompressedFile(raw, compression_type=kind), raw


class PlainStream(io.RawIOBase):
    """A plain readable stream over a Beam file (whose `closed` is a method on
    compressed files, which pyarrow takes for a closed file)."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._handle.read(size)

    def readinto(self, buffer) -> int:
        data = self._handle.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
