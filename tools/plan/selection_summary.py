"""The selected images in numbers: images and bytes (OriginalSize) in all, per
subset and per host of the URL a fetch would use (pyarrow, no Beam)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc

NO_URL = "(no URL)"


def host_of(url: str | None) -> str:
    """The host a fetch of `url` talks to: `gs://bucket` for a mirror."""
    if not url:
        return NO_URL
    parts = urlsplit(url)
    if parts.scheme == "gs":
        return f"gs://{parts.netloc}"
    return (parts.hostname or NO_URL) + (f":{parts.port}" if parts.port else "")


def with_hosts(selected: pa.Table) -> pa.Table:
    """`selected` (ImageID, Subset, OriginalSize, url, ...) plus a `host` column."""
    hosts = [host_of(u) for u in selected["url"].to_pylist()]
    return selected.append_column("host", pa.array(hosts, pa.string()))


def _groups(table: pa.Table, key: str) -> dict[str, dict[str, int]]:
    grouped = table.group_by(key).aggregate(
        [("ImageID", "count"), ("OriginalSize", "sum"), ("OriginalSize", "count")]
    )
    out = {}
    for row in grouped.sort_by(
        [("ImageID_count", "descending"), (key, "ascending")]
    ).to_pylist():
        out[row[key] if row[key] is not None else "(none)"] = {
            "images": row["ImageID_count"],
            "bytes": row["OriginalSize_sum"] or 0,
            "unknown_size": row["ImageID_count"] - row["OriginalSize_count"],
        }
    return out


def summarize(selected: pa.Table) -> dict:
    """{images, bytes, unknown_size, per_subset, per_host} of `selected` (with
    a `host` column); bytes sum the OriginalSize the release states."""
    sizes = selected["OriginalSize"]
    return {
        "images": selected.num_rows,
        "bytes": pc.sum(sizes).as_py() or 0,
        "unknown_size": sizes.null_count,
        "per_subset": _groups(selected, "Subset"),
        "per_host": _groups(selected, "host"),
    }
