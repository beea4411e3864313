"""Row-wise, null-safe equality of two Arrow arrays, nested types included.

Arrow's `equal` kernel has no list or struct support and says null for null
inputs; comparing two snapshots needs both (labels are a list of structs), and
needs it vectorised: a refresh compares every column of every image.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _combined(values) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _nulls(values: pa.Array) -> np.ndarray:
    return pc.is_null(values).to_numpy(zero_copy_only=False)


def same_values(a, b) -> np.ndarray:
    """bool per row: a[i] equals b[i], where null equals only null. Arrays of
    different types are equal where b casts to a's type and matches."""
    a, b = _combined(a), _combined(b)
    if len(a) != len(b):
        raise ValueError(f"{len(a)} rows against {len(b)}")
    if not len(a):
        return np.zeros(0, dtype=bool)
    if a.type != b.type:
        try:
            b = b.cast(a.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _nulls(a) & _nulls(b)
    t = a.type
    if pa.types.is_struct(t):
        equal = np.ones(len(a), dtype=bool)
        for i in range(t.num_fields):
            equal &= same_values(pc.struct_field(a, [i]), pc.struct_field(b, [i]))
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        equal = _same_lists(a, b)
    else:
        equal = pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False)
    a_null, b_null = _nulls(a), _nulls(b)
    return np.where(a_null | b_null, a_null & b_null, equal)


def _same_lists(a: pa.Array, b: pa.Array) -> np.ndarray:
    length_a = pc.fill_null(pc.list_value_length(a), -1).to_numpy(zero_copy_only=False)
    length_b = pc.fill_null(pc.list_value_length(b), -1).to_numpy(zero_copy_only=False)
    equal = length_a == length_b
    rows = np.flatnonzero(equal & (length_a > 0))
    if len(rows):
        take = pa.array(rows)
        items = same_values(
            pc.list_flatten(a.take(take)), pc.list_flatten(b.take(take))
        )
        lengths = length_a[rows]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        equal[rows] = np.logical_and.reduceat(items, starts)
    return equal
