"""Small Arrow helpers shared by the table transforms."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def combine(column) -> pa.Array:
    """One contiguous array from a column (dictionaries unified first)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    if column.num_chunks == 1:
        return column.chunk(0)
    if pa.types.is_dictionary(column.type):
        return column.unify_dictionaries().combine_chunks()
    return column.combine_chunks()


def encode(column) -> tuple[pa.Array, np.ndarray]:
    """(distinct values, int64 code of each row) of a string column."""
    encoded = pc.dictionary_encode(combine(column))
    return encoded.dictionary, np.asarray(encoded.indices.to_numpy(), dtype=np.int64)


def ranks(values: pa.Array) -> np.ndarray:
    """The rank of each value in byte order (to sort codes like the strings)."""
    order = np.asarray(pc.sort_indices(values).to_numpy())
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def image_ids_of(element: tuple[int, pa.Table]) -> tuple[int, pa.Table]:
    """(bucket, table) -> (bucket, its ImageID column only), to join on cheaply."""
    bucket, table = element
    return bucket, table.select(["ImageID"])
