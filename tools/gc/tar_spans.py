"""The spans of a WebDataset tar shard, and what replaces an erased one (no I/O
but the handle given).

A span is one member's whole place in the archive: its 512-byte header, its
data and the padding to the next block. Every header read is checked (its
checksum, the `ustar` magic, an octal size, a type a shard holds: a regular
file, or a pax global header `g` that gc wrote in place of erased members);
anything else is NotATar, raised before anything is written.

An erased span becomes a pax global header of the same length whose data is
one `comment=` record: Python's tarfile, webdataset and GNU tar skip it, and
no other member's offset moves. A run of erased spans that ends the archive
becomes zeros instead, an earlier end of the archive: a global header must be
followed by another header, or tarfile refuses the whole archive.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

BLOCK = 512
CHUNK = 1 << 20  # bytes copied at a time
REGULAR = (b"0", b"\0")
GLOBAL = b"g"
_ZERO_BLOCK = bytes(BLOCK)
_RECORD_KEY = b" comment="
_FILLER = b"erased by oibeam gc. "  # plain ASCII, repeated to length


class NotATar(ValueError):
    """The shard is not a valid ustar archive of the kind oibeam writes."""


@dataclass(frozen=True)
class Span:
    offset: int  # of its header
    length: int  # header + data + padding
    name: str
    typeflag: bytes

    @property
    def key(self) -> str:
        """The sample key: the member name before its first '.'."""
        return self.name.split(".", 1)[0]

    @property
    def end(self) -> int:
        return self.offset + self.length


def _octal(field: bytes, what: str, offset: int) -> int:
    text = field.replace(b"\0", b" ").strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise NotATar(
            f"header at offset {offset}: {what} {field!r} is not octal"
        ) from None


def parse_header(block: bytes, offset: int) -> Span | None:
    """The span whose header is `block` (read at `offset`); None for the zero
    block that ends the archive; NotATar for anything else."""
    if len(block) < BLOCK:
        raise NotATar(f"the archive ends inside the header at offset {offset}")
    if block == _ZERO_BLOCK:
        return None
    stored = _octal(block[148:156], "checksum", offset)
    rest = block[:148] + b" " * 8 + block[156:]
    signed = sum(b - 256 if b > 127 else b for b in rest)
    if stored not in (sum(rest), signed):
        raise NotATar(f"header at offset {offset}: checksum mismatch")
    if block[257:262] != b"ustar":
        raise NotATar(f"header at offset {offset}: no ustar magic")
    typeflag = block[156:157]
    if typeflag not in (*REGULAR, GLOBAL):
        raise NotATar(
            f"header at offset {offset}: member type {typeflag!r}, not one a "
            "shard holds"
        )
    size = _octal(block[124:136], "size", offset)
    name = block[:100].split(b"\0", 1)[0]
    prefix = block[345:500].split(b"\0", 1)[0]
    if prefix:
        name = prefix + b"/" + name
    length = BLOCK + -(-size // BLOCK) * BLOCK
    return Span(offset, length, name.decode("utf-8", "replace"), typeflag)


def read_spans(handle, size: int) -> tuple[list[Span], int]:
    """Every span of the archive in `handle` (seekable, `size` bytes), reading
    headers only, and the offset of its end-of-archive block; NotATar unless
    each header is valid and the spans end in a zero block inside the file."""
    spans, offset = [], 0
    while True:
        handle.seek(offset)
        span = parse_header(handle.read(BLOCK), offset)
        if span is None:
            return spans, offset
        if span.end + BLOCK > size:
            raise NotATar(f"{span.name!r} at offset {offset} runs past the end")
        spans.append(span)
        offset = span.end


def erased_runs(
    spans: list[Span], dead: set[str]
) -> tuple[list[tuple[int, int]], set[str]]:
    """(offset, length) of each run of adjacent spans to replace, and the
    keys found: a run holds the members of dead keys, with the global
    headers of earlier erasures next to them (one header per run, so a
    reader never follows a long chain of them)."""
    runs: list[tuple[int, int]] = []
    found: set[str] = set()
    group: list[Span] = []

    def close() -> None:
        if any(s.typeflag in REGULAR for s in group):
            runs.append((group[0].offset, group[-1].end - group[0].offset))
        group.clear()

    for span in spans:
        is_dead = span.typeflag in REGULAR and span.key in dead
        if is_dead or span.typeflag == GLOBAL:
            group.append(span)
            found |= {span.key} if is_dead else set()
        else:
            close()
    close()
    return runs, found


def _header(name: bytes, size: int, typeflag: bytes) -> bytes:
    """A ustar header as ShardWriter writes them (mode 0644, owner 0, mtime 0)."""
    header = bytearray(BLOCK)
    header[: len(name)] = name
    header[100:108] = b"0000644\0"
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"00000000000\0"
    header[148:156] = b"        "
    header[156:157] = typeflag
    header[257:265] = b"ustar\x0000"
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def replacement(length: int, last: bool) -> Iterator[bytes]:
    """The bytes that replace a run of `length` bytes (a multiple of 512):
    zeros if it ends the archive (`last`), else a pax global header whose data
    is one record `<n> comment=<filler>\\n` of exactly n = length - 512 bytes."""
    if last:
        yield from _repeat(b"\0" * CHUNK, length)
        return
    data = length - BLOCK
    yield _header(b"pax_global_header", data, GLOBAL)
    if data == 0:
        return
    head = b"%d%s" % (data, _RECORD_KEY)
    yield head
    yield from _repeat(_FILLER * (CHUNK // len(_FILLER) + 1), data - len(head) - 1)
    yield b"\n"


def _repeat(pattern: bytes, n: int) -> Iterator[bytes]:
    while n > 0:
        piece = pattern[: min(n, len(pattern))]
        yield piece
        n -= len(piece)
