"""What duplicates are found by, taken from an images table (no Beam here)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.duplicates import KEYS
from oibeam.schemas.fetch import OK

# The images-table columns duplicate_keys reads, where a table has them.
COLUMNS = ("ImageID", "Subset", "OriginalMD5", "status", "md5", "phash")


def duplicate_keys(images: pa.Table) -> pa.Table:
    """An images table (with or without status columns) -> KEYS: the CSVs'
    OriginalMD5 of every row; the MD5 and hash of the bytes of ok images."""
    n = images.num_rows
    names = images.column_names

    def column(name: str, type_: pa.DataType):
        return images[name] if name in names else pa.nulls(n, type_)

    md5, phash = column("md5", pa.string()), column("phash", pa.int64())
    if "status" in names:
        ok = pc.fill_null(pc.equal(images["status"], OK), False)
        md5 = pc.if_else(ok, md5, pa.scalar(None, pa.string()))
        phash = pc.if_else(ok, phash, pa.scalar(None, pa.int64()))
    return pa.table(
        [
            images["ImageID"],
            pc.fill_null(column("Subset", pa.string()), ""),
            column("OriginalMD5", pa.string()),
            md5,
            phash,
        ],
        schema=KEYS,
    )
