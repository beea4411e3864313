"""ImageID <-> uint64 key, and stable digests of it.

Open Images ImageIDs are 64-bit integers written as 16 hex digits. Internally an
image is its uint64 key: half the bytes of the text, and cheap to sort and hash.
Digests use splitmix64 (never Python's salted `hash()`), so a bucket or shard is
the same on every worker, run and machine.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_HEX_DIGITS = b"0123456789abcdef"
_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(_HEX_DIGITS):
    _NIBBLE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _NIBBLE[_c] = 10 + _i
_HEX_ASCII = np.frombuffer(_HEX_DIGITS, dtype=np.uint8)

ID_LENGTH = 16


def _id_bytes(ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(n, 16) uint8 view of the ids that are exactly 16 bytes, and that mask."""
    n = len(ids)
    if pa.types.is_fixed_size_binary(ids.type):
        data = np.frombuffer(ids.buffers()[1], dtype=np.uint8)
        start = ids.offset * ID_LENGTH
        raw = data[start : start + n * ID_LENGTH].reshape(n, ID_LENGTH)
        ok = np.ones(n, dtype=bool)
    else:
        large = pa.types.is_large_string(ids.type) or pa.types.is_large_binary(ids.type)
        offsets = np.frombuffer(ids.buffers()[1], dtype=np.int64 if large else np.int32)
        offsets = offsets[ids.offset : ids.offset + n + 1].astype(np.int64)
        data_buffer = ids.buffers()[2]
        data = (
            np.frombuffer(data_buffer, dtype=np.uint8)
            if data_buffer is not None
            else np.zeros(0, dtype=np.uint8)
        )
        lengths = np.diff(offsets)
        ok = lengths == ID_LENGTH
        if n and ok.all() and offsets[-1] - offsets[0] == n * ID_LENGTH:
            raw = data[offsets[0] : offsets[-1]].reshape(n, ID_LENGTH)
        else:
            raw = np.zeros((n, ID_LENGTH), dtype=np.uint8)
            raw[ok] = data[offsets[:-1][ok][:, None] + np.arange(ID_LENGTH)]
    if ids.null_count:
        ok &= np.asarray(ids.is_valid())
    return raw, ok


def parse_image_ids(ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Keys (uint64) and a validity mask for an array of ImageID text.

    Valid means exactly 16 hex digits (either case). Invalid rows get key 0.
    """
    raw, ok = _id_bytes(ids)
    nibbles = _NIBBLE[raw]
    ok &= (nibbles != 255).all(axis=1)
    nibbles[~ok] = 0
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]  # (n, 8) big-endian bytes
    keys = np.ascontiguousarray(packed).view(">u8").ravel().astype(np.uint64)
    return keys, ok


def format_image_ids(keys: np.ndarray) -> pa.Array:
    """16 lowercase hex digits for each uint64 key, as a string array."""
    keys = np.ascontiguousarray(keys, dtype=">u8")
    octets = keys.view(np.uint8).reshape(-1, 8)
    text = np.empty((len(keys), ID_LENGTH), dtype=np.uint8)
    text[:, 0::2] = _HEX_ASCII[octets >> 4]
    text[:, 1::2] = _HEX_ASCII[octets & 15]
    offsets = np.arange(0, (len(keys) + 1) * ID_LENGTH, ID_LENGTH, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), len(keys), [None, pa.py_buffer(offsets), pa.py_buffer(text)]
    )


def mix64(keys: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-spread, stable 64-bit digest of each key."""
    z = np.asarray(keys, dtype=np.uint64).copy()
    with np.errstate(over="ignore"):
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def bucket_of(keys: np.ndarray, buckets: int) -> np.ndarray:
    """The bucket (0..buckets-1) of each key; uniform for any key distribution."""
    return (mix64(keys) % np.uint64(buckets)).astype(np.int64)
