"""NUL-padded byte fields: the vectorized way every CSV line is built.

A "field" is a (rows, width) uint8 matrix, one row per CSV line, NUL-padded
anywhere; a line is its fields side by side with the NULs dropped. A "part" of
a line is a field, a (pool, index) pair standing for the field pool[index], or
bytes that are the same on every line. Also the seeded random streams and the
random fields built from them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

Part = np.ndarray | tuple[np.ndarray, np.ndarray] | bytes

_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_B64 = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", np.uint8
)


class _Scratch(threading.local):
    """Per-thread reusable buffers for the big row matrices (bounded memory,
    and no fresh pages to fault in for every chunk)."""

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A scratch array; valid until the next call with the same name."""
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        buf = self.buffers.get(name)
        if buf is None or buf.size < size:
            buf = self.buffers[name] = np.empty(size, np.uint8)
        return buf[:size].view(dtype).reshape(shape)


_SCRATCH = _Scratch()


def pool(items: Sequence[str]) -> np.ndarray:
    """NUL-padded (len(items), width) field of the UTF-8 encoded items."""
    enc = [s.encode() for s in items]
    width = max(1, *map(len, enc))
    buf = b"".join(e.ljust(width, b"\0") for e in enc)
    return np.frombuffer(buf, np.uint8).reshape(len(enc), width)


def _width(part: Part) -> int:
    """Width in bytes of a part."""
    if isinstance(part, bytes):
        return len(part)
    return (part[0] if isinstance(part, tuple) else part).shape[1]


def _void(field: np.ndarray) -> np.ndarray:
    """A (n, w) field as n opaque w-byte items (fast to gather and copy)."""
    field = np.ascontiguousarray(field)
    return field.view(f"V{field.shape[1]}").reshape(len(field))


def concat(parts: Sequence[Part], n: int, scratch: str | None = None) -> np.ndarray:
    """(n, width) field of ``parts`` side by side, in the thread's scratch
    buffer ``scratch`` if given (valid until its next use)."""
    parts = [p for p in parts if _width(p)]
    dtype = np.dtype([(f"f{i}", f"V{_width(p)}") for i, p in enumerate(parts)])
    out = (
        np.empty(n, dtype) if scratch is None else _SCRATCH.array(scratch, (n,), dtype)
    )
    for i, part in enumerate(parts):
        if isinstance(part, bytes):
            out[f"f{i}"] = np.void(part)
        elif isinstance(part, tuple):
            out[f"f{i}"] = _void(part[0])[part[1]]
        else:
            out[f"f{i}"] = _void(part)
    return out.view(np.uint8).reshape(n, dtype.itemsize)


def squeeze(rows: np.ndarray, skip: np.ndarray | None = None) -> list[np.ndarray]:
    """CSV text of a row matrix (its bytes minus the NUL padding), leaving out
    the rows where ``skip`` is true; in pieces, to keep the mask small."""
    text = []
    step = max(1, (1 << 20) // rows.shape[1])
    for start in range(0, len(rows), step):
        block = rows[start : start + step]
        keep = _SCRATCH.array("keep", block.shape, np.bool_)
        np.not_equal(block, 0, out=keep)
        if skip is not None:
            keep[skip[start : start + step]] = False
        text.append(block.reshape(-1)[keep.reshape(-1)])
    return text


def squeeze_ends(rows: np.ndarray, skip: np.ndarray | None = None) -> list[pa.Buffer]:
    """Like ``squeeze`` for rows whose NUL padding is all at the end (faster:
    Arrow reads fixed-width numpy bytes as NUL-terminated strings)."""
    lines = rows.view(f"S{rows.shape[1]}").reshape(len(rows))
    array = pa.array(lines, type=pa.binary(), mask=skip)
    chunks = array.chunks if isinstance(array, pa.ChunkedArray) else [array]
    text = []
    for chunk in chunks:
        if not len(chunk):
            continue
        offsets = np.frombuffer(chunk.buffers()[1], np.int32)
        start, stop = offsets[chunk.offset], offsets[chunk.offset + len(chunk)]
        if stop > start:
            text.append(chunk.buffers()[2][start:stop])
    return text


def blank(field: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """The field with the rows where ``empty`` is true emptied."""
    return field * ~empty[:, None]


def either(cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ``a`` where ``cond`` is true, else ``b`` (widths may differ)."""
    width = max(a.shape[1], b.shape[1])
    a, b = (np.pad(f, ((0, 0), (0, width - f.shape[1]))) for f in (a, b))
    return np.where(cond[:, None], a, b)


def hex_digits(values: np.ndarray, width: int) -> np.ndarray:
    """Lowercase hex digits of uint64 values, zero-filled to ``width``."""
    shifts = np.arange(4 * (width - 1), -1, -4, dtype=np.uint64)
    return _HEX[(values.astype(np.uint64)[:, None] >> shifts) & np.uint64(15)]


def digits(values: np.ndarray, width: int, *, zero_fill: bool = False) -> np.ndarray:
    """Decimal digits of non-negative ints below 10**width."""
    out = np.empty((len(values), width), np.uint8)
    rest = values.astype(np.int64)
    for j in range(width - 1, -1, -1):  # one vectorized step per digit
        quotient = rest // 10
        digit = (rest - quotient * 10 + 48).astype(np.uint8)
        if not zero_fill and j < width - 1:
            digit *= rest != 0  # leading zeros become padding
        out[:, j] = digit
        rest = quotient
    return out


# ------------------------------------------------------------- random fields


def stream(seed: int, *key: int) -> np.random.Generator:
    """Independent random stream ``key`` of ``seed``."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key))
    )


def choice(rng: np.random.Generator, weights: Sequence[float], n: int) -> np.ndarray:
    """``n`` indices drawn with probabilities proportional to ``weights``."""
    cum = np.cumsum(weights, dtype=np.float64)
    return np.searchsorted(cum / cum[-1], rng.random(n), side="right")


def random_hex(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """``n`` rows of ``width`` uniform random lowercase hex digits."""
    return _HEX[rng.integers(0, 256, (n, width), dtype=np.uint8) & np.uint8(15)]


def random_md5(rng: np.random.Generator, n: int) -> np.ndarray:
    """Base64 of 16 uniform random bytes: 21 uniform sextets, one sextet with
    its 4 low bits zero, then ``==``."""
    out = np.empty((n, 24), np.uint8)
    raw = rng.integers(0, 256, (n, 22), dtype=np.uint8)
    out[:, :21] = _B64[raw[:, :21] & np.uint8(63)]
    out[:, 21] = _B64[(raw[:, 21] & np.uint8(3)) << np.uint8(4)]
    out[:, 22:] = ord("=")
    return out
