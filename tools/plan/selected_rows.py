"""The few columns of a selected image that a plan needs, with the URL the
fetch would use (no Beam; vectorised but for --url-template)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.plan import SELECTED_ROWS
from oibeam.transforms.fetch.fetch_config import FetchConfig
from oibeam.transforms.fetch.image_tasks import target


def _column(table: pa.Table, name: str) -> pa.ChunkedArray | pa.Array:
    field = SELECTED_ROWS.field(name) if name in SELECTED_ROWS.names else None
    if name in table.column_names:
        column = table[name]
        return column.cast(field.type) if field is not None else column
    return pa.nulls(table.num_rows, field.type if field is not None else pa.string())


def urls(table: pa.Table, fetch: FetchConfig) -> pa.Array | pa.ChunkedArray:
    """Per row, the URL `image_tasks.target` gives it (null: no URL)."""
    if fetch.url_template:
        rows = table.drop_columns(
            [c for c in ("labels", "boxes") if c in table.column_names]
        ).to_pylist()
        return pa.array([target(row, fetch)[0] for row in rows], pa.string())
    original = _column(table, "OriginalURL")
    if fetch.source == "thumbnail":
        thumbnail = _column(table, "Thumbnail300KURL")
        usable = pc.and_kleene(pc.is_valid(thumbnail), pc.not_equal(thumbnail, ""))
        original = pc.if_else(pc.fill_null(usable, False), thumbnail, original)
    return pc.if_else(pc.equal(original, ""), pa.scalar(None, pa.string()), original)


def selected_rows(table: pa.Table, fetch: FetchConfig) -> pa.Table:
    """`table` (selected images rows) -> SELECTED_ROWS."""
    columns = [_column(table, n) for n in SELECTED_ROWS.names if n != "url"]
    return pa.Table.from_arrays([*columns, urls(table, fetch)], schema=SELECTED_ROWS)
