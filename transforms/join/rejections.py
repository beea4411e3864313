"""Rows the join rejects, as error rows whose raw text is rebuilt as CSV in
their file's column order (pure Arrow/NumPy, no Beam)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.tables import ERRORS_INTERNAL, KEY, LINE, REF_LINE, REF_SRC, SRC
from oibeam.transforms.common.csv_text import csv_fields
from oibeam.transforms.common.image_keys import format_image_ids


def first_of_runs(duplicate: np.ndarray) -> np.ndarray:
    """For each row, the index of the first row of its run of equal keys."""
    idx = np.where(~duplicate, np.arange(len(duplicate)), 0)
    return np.maximum.accumulate(idx) if len(idx) else idx


def error_rows(table, rows, first_rows, code, reason, range_columns) -> pa.Table:
    """Error rows for `rows` of an internal table, raw text rebuilt as CSV."""
    picked = table.take(pa.array(rows))
    count = len(rows)
    if first_rows is None:
        ref_src = pa.nulls(count, pa.int32())
        ref_line = pa.nulls(count, pa.int64())
    else:
        ref = table.take(pa.array(first_rows))
        ref_src, ref_line = ref[SRC].combine_chunks(), ref[LINE].combine_chunks()
    return pa.table(
        {
            SRC: picked[SRC].combine_chunks(),
            LINE: picked[LINE].combine_chunks(),
            "code": pa.array([code] * count, pa.string()),
            "reason": pa.array([reason] * count, pa.string()),
            "raw": _rebuild_raw(picked, range_columns),
            REF_SRC: ref_src,
            REF_LINE: ref_line,
        },
        schema=ERRORS_INTERNAL,
    )


def _rebuild_raw(picked: pa.Table, range_columns) -> pa.Array:
    """Rows of an internal table as CSV text in their file's column order."""
    text = {"ImageID": format_image_ids(picked[KEY].to_numpy())}
    for name in picked.column_names:
        if name not in (KEY, SRC, LINE):
            text[name] = csv_fields(picked[name].combine_chunks())
    src = picked[SRC].to_numpy()
    raw = np.empty(len(src), dtype=object)
    for range_id in np.unique(src).tolist():
        rows = np.flatnonzero(src == range_id)
        columns = [text[c].take(pa.array(rows)) for c in range_columns[range_id]]
        line = pc.binary_join_element_wise(*columns, ",")
        raw[rows] = line.to_numpy(zero_copy_only=False)
    return pa.array(raw, pa.string())
