"""PNG files laid out as Pillow does not write them: chunks moved around."""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of each chunk, in file order."""
    assert data.startswith(SIGNATURE)
    found, at = [], len(SIGNATURE)
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        found.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + length]))
        at += 12 + length
    return found


def build(parts: list[tuple[bytes, bytes]]) -> bytes:
    out = [SIGNATURE]
    for kind, body in parts:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc))
    return b"".join(out)


def move_after_image_data(data: bytes, kind: bytes) -> bytes:
    """The PNG with its `kind` chunks moved from the header to just before IEND,
    where a reader finds them only by going past the image data."""
    parts = chunks(data)
    moved = [p for p in parts if p[0] == kind]
    assert moved, f"no {kind!r} chunk to move"
    kept = [p for p in parts if p[0] not in (kind, b"IEND")]
    return build(kept + moved + [(b"IEND", b"")])
