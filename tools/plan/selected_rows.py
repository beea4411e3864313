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


def urls(table: pa.Table, fetch: FetchConfig) -> tuple[pa.Array, pa.Array]:
    """Per row, (the URL, whether its bytes are checked against OriginalSize
    and OriginalMD5) as `image_tasks.target` gives them (null URL: none)."""
    if fetch.url_template:
        rows = table.drop_columns(
            [c for c in ("labels", "boxes") if c in table.column_names]
        ).to_pylist()
        targets = [target(row, fetch) for row in rows]
        return (
            pa.array([url for url, _ in targets], pa.string()),
            pa.array([md5 for _, md5 in targets], pa.bool_()),
        )
    original = _column(table, "OriginalURL")
    verify = pa.array([True] * table.num_rows, pa.bool_())
    if fetch.source == "thumbnail":
        thumbnail = _column(table, "Thumbnail300KURL")
        usable = pc.fill_null(
            pc.and_kleene(pc.is_valid(thumbnail), pc.not_equal(thumbnail, "")), False
        )
        original = pc.if_else(usable, thumbnail, original)
        verify = pc.invert(usable)  # thumbnails' bytes change over time
    if fetch.verify != "auto":
        verify = pa.array([fetch.verify == "md5"] * table.num_rows, pa.bool_())
    url = pc.if_else(pc.equal(original, ""), pa.scalar(None, pa.string()), original)
    return url, verify


def selected_rows(table: pa.Table, fetch: FetchConfig) -> pa.Table:
    """`table` (selected images rows) -> SELECTED_ROWS."""
    columns = [
        _column(table, n) for n in SELECTED_ROWS.names if n not in ("url", "verify")
    ]
    url, verify = urls(table, fetch)
    return pa.Table.from_arrays([*columns, url, verify], schema=SELECTED_ROWS)
