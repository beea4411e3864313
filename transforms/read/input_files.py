"""Reading input files as stored: hashed on the way, inflated when compressed.

Inflation is ours, not Beam's CompressedFile: that one inflates each 16 MiB of
compressed input at once (a gzip "bomb" of 7 MB takes gigabytes) and takes a
stream that ends early for a whole one. Here one step makes at most 1 MiB, and
a stream that ends early, fails its check, or has trailing bytes that are not
a complete further member raises DamagedInput, which names the file.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import zlib

import zstandard
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

_IN_BYTES = 1 << 16  # compressed bytes read at a time
_OUT_BYTES = 1 << 20  # most bytes one inflation step makes
# zstd inflation takes no output limit: feed it little at a time (a zstd block
# can grow ~32,000-fold, so 256 bytes make at most ~8 MiB).
_ZSTD_FEED = 256
_ZSTD_WINDOW = 1 << 27  # zstd's own default limit: `zstd --long=31` files fail
_XZ_MEMORY = 1 << 28
_ZLIB = (CompressionTypes.GZIP, CompressionTypes.DEFLATE)
_CODEC_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


class InputError(ValueError):
    """An input that cannot be read: the message names the file and the fix."""


class DamagedInput(InputError):
    """A compressed input that ends early, fails its check or has trailing
    bytes: cut short or corrupt, so none of it may be used."""


class _HashingReader(io.RawIOBase):
    """Reads a Beam file and hashes every byte that passes (the file as stored)."""

    def __init__(self, handle) -> None:
        self._handle = handle
        self.md5 = hashlib.md5()
        self.position = 0  # bytes read

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.md5.update(data)
        self.position += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._handle.close()
        super().close()

    def finish(self) -> str:
        """Hashes whatever was not read yet; the MD5 of the whole file."""
        while self.read(1 << 20):
            pass
        return self.md5.hexdigest()


class _Member:
    """One compressed stream: a gzip member, a zlib (deflate), bzip2 or xz
    stream, a zstd frame."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self.started = False  # it was given input
        self._full = False  # zlib: the last step filled its output
        if kind == CompressionTypes.GZIP:
            self._d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif kind == CompressionTypes.DEFLATE:
            self._d = zlib.decompressobj()
        elif kind == CompressionTypes.BZIP2:
            self._d = bz2.BZ2Decompressor()
        elif kind == CompressionTypes.LZMA:
            self._d = lzma.LZMADecompressor(memlimit=_XZ_MEMORY)
        else:
            assert kind == CompressionTypes.ZSTD, kind
            zstd = zstandard.ZstdDecompressor(max_window_size=_ZSTD_WINDOW)
            self._d = zstd.decompressobj()

    @property
    def eof(self) -> bool:
        return self._d.eof

    def needs_input(self) -> bool:
        """Nothing is pending: the next step needs more compressed bytes."""
        if self._kind in _ZLIB:
            return not self._full and not self._d.unconsumed_tail
        if self._kind == CompressionTypes.ZSTD:
            return True
        return self._d.needs_input

    def step(self, data: memoryview) -> tuple[bytes, memoryview]:
        """Inflates from `data` (empty: what is pending); (at most ~1 MiB of
        output, the input left: after the member's end, the bytes after it)."""
        self.started = self.started or bool(data)
        if self._kind in _ZLIB:
            out = self._d.decompress(data, _OUT_BYTES)
            self._full = len(out) == _OUT_BYTES
            rest = self._d.unused_data if self._d.eof else self._d.unconsumed_tail
            return out, memoryview(rest)
        if self._kind == CompressionTypes.ZSTD:
            out = self._d.decompress(data[:_ZSTD_FEED])
            rest = data[_ZSTD_FEED:]
            if self._d.eof:
                rest = memoryview(self._d.unused_data + bytes(rest))
            return out, rest
        out = self._d.decompress(data, _OUT_BYTES)
        return out, memoryview(self._d.unused_data if self._d.eof else b"")


class Inflating(io.RawIOBase):
    """The content of a compressed file, at most 1 MiB a read; DamagedInput
    (naming `path`) where the stream turns out damaged, at the latest when
    its end is read."""

    def __init__(self, raw: io.RawIOBase, kind: str, path: str) -> None:
        self._raw = raw
        self._kind = kind
        self._path = path
        self._member = _Member(kind)
        self._members = 1
        self._member_made = False  # the current member made output
        self._input = memoryview(b"")
        self._pending = b""  # output made, not returned yet
        self._done = False
        self.inflated = 0  # bytes of content made so far

    def readable(self) -> bool:
        return True

    @property
    def unread_input(self) -> int:
        """Compressed bytes read from the file but not inflated yet."""
        return len(self._input)

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (at most ~1 MiB; all that is left when `size` is
        negative); b"" only at the end."""
        if size < 0:
            return b"".join(iter(self._next, b""))
        out = self._next()
        if size < len(out):
            out, self._pending = out[:size], out[size:]
        return out

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _next(self) -> bytes:
        if self._pending:
            out, self._pending = self._pending, b""
            return out
        while not self._done:
            if not self._input and self._member.needs_input():
                self._input = memoryview(self._raw.read(_IN_BYTES))
                if not self._input:
                    self._done = True
                    if self._member.started and not self._member.eof:
                        raise self._damaged(f"its {self._kind} data ends early")
                    continue
            if self._member.eof:  # bytes after a complete member: another one
                self._member = _Member(self._kind)
                self._members += 1
                self._member_made = False
            try:
                out, self._input = self._member.step(self._input)
            except _CODEC_ERRORS as e:
                if self._members > 1 and not self._member_made:
                    raise self._damaged(
                        f"the bytes after the end of its {self._kind} data are not "
                        f"{self._kind} data ({e})"
                    ) from e
                raise self._damaged(f"damaged {self._kind} data ({e})") from e
            if out:
                self._member_made = True
                self.inflated += len(out)
                return out
        return b""

    def _damaged(self, problem: str) -> DamagedInput:
        return DamagedInput(
            f"{self._path}: {problem}: the file is cut short or corrupt; fetch it "
            "again, then run again"
        )

    def close(self) -> None:
        self._raw.close()
        super().close()


def read_full(stream, size: int) -> bytes:
    """`size` bytes from a stream whose reads may come short; fewer at its end."""
    pieces, got = [], 0
    while got < size:
        piece = stream.read(size - got)
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


def is_compressed(path: str) -> bool:
    """Whether a file is read inflated: by its name, as Beam's filesystems
    tell (.gz, .bz2, .xz, .zst, .deflate...)."""
    kind = CompressionTypes.detect_compression_type(path)
    return kind != CompressionTypes.UNCOMPRESSED


def open_hashed(path: str, compressed: bool):
    """(stream of the file's content, the reader hashing its stored bytes).

    Reads of a compressed file's stream return at most ~1 MiB, or all of it
    when no size is given."""
    raw = _HashingReader(
        FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    )
    if not compressed:
        return raw, raw
    kind = CompressionTypes.detect_compression_type(path)
    return Inflating(raw, kind, path), raw


def read_head(path: str, compressed: bool, size: int, stored: int) -> tuple[bytes, int]:
    """The first `size` bytes of a file's content, and the size of its content:
    `stored` (its size as stored) when not compressed; else exact when the
    content ends within `size` bytes, or estimated from how much the compressed
    bytes read so far inflated."""
    stream, raw = open_hashed(path, compressed)
    with stream:
        head = read_full(stream, size)
        if not compressed:
            return head, stored
        if not stream.read(1):
            return head, stream.inflated
        used = max(1, raw.position - stream.unread_input)
        return head, max(stream.inflated, round(stored * stream.inflated / used))
