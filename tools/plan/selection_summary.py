"""The selected images in numbers: images and bytes (OriginalSize) in all, per
subset and per host of the URL a fetch would use, added up part by part
(pyarrow, no Beam)."""

from __future__ import annotations

from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.transforms.common.arrow_util import combine

NO_URL = "(no URL)"
BAD_URL = "(bad URL)"


def host_of(url: str | None) -> str:
    """The host a fetch of `url` talks to: `gs://bucket` for a mirror;
    BAD_URL for one with no valid host and port (a fetch's error row)."""
    if not url:
        return NO_URL
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port out of range, a broken [IPv6] address
        return BAD_URL
    if parts.scheme == "gs":
        return f"gs://{parts.netloc}"
    return (parts.hostname or NO_URL) + (f":{port}" if port else "")


# The URLs nearly all rows have, whose host Arrow can take (host_of's answer
# for them); any other URL goes through host_of itself.
_WEB = r"^https?://(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>[1-9][0-9]{0,3}))?(?:[/?#]|$)"
_BUCKET = r"^gs://(?P<bucket>[^/?#@:\[\]]*)"


def hosts(urls) -> pa.Array:
    """host_of of every URL, vectorised: 9 M rows in seconds, where a Python
    loop takes a minute and a list of every URL."""
    urls = combine(urls)
    web = pc.extract_regex(urls, _WEB)
    host = pc.utf8_lower(pc.struct_field(web, "host"))
    port = pc.struct_field(web, "port")
    found = pc.if_else(
        pc.equal(port, ""), host, pc.binary_join_element_wise(host, port, ":")
    )
    bucket = pc.struct_field(pc.extract_regex(urls, _BUCKET), "bucket")
    found = pc.coalesce(found, pc.binary_join_element_wise("gs://", bucket, ""))
    others = np.flatnonzero(
        np.asarray(pc.is_null(found).to_numpy(zero_copy_only=False))
    )
    if not len(others):
        return found
    values = found.to_numpy(zero_copy_only=False).astype(object)
    for i, url in zip(others, urls.take(pa.array(others)).to_pylist(), strict=True):
        values[i] = host_of(url)
    return pa.array(values, pa.string())


def with_hosts(selected: pa.Table) -> pa.Table:
    """`selected` (ImageID, Subset, OriginalSize, url, ...) plus a `host` column."""
    return selected.append_column("host", hosts(selected["url"]))


_KEYS = ("Subset", "host")  # what a selection is counted by
_SUMS = [("ImageID", "count"), ("OriginalSize", "sum"), ("OriginalSize", "count")]


class Summary:
    """{images, bytes, unknown_size, per_subset, per_host} of a selection,
    added up part by part (parts with a `host` column): only counts per
    subset and per host are kept, whatever the size of the selection. Bytes
    sum the OriginalSize the release states."""

    def __init__(self) -> None:
        self._partials: dict[str, list[pa.Table]] = {key: [] for key in _KEYS}

    def add(self, part: pa.Table) -> None:
        for key, partials in self._partials.items():
            partials.append(part.group_by(key, use_threads=False).aggregate(_SUMS))

    def result(self) -> dict:
        per = {key: _merged(partials, key) for key, partials in self._partials.items()}
        subsets = per["Subset"].values()
        images = sum(v["images"] for v in subsets)
        return {
            "images": images,
            "bytes": sum(v["bytes"] for v in subsets),
            "unknown_size": sum(v["unknown_size"] for v in subsets),
            "per_subset": per["Subset"],
            "per_host": per["host"],
        }


def _merged(partials: list[pa.Table], key: str) -> dict[str, dict[str, int]]:
    if not partials:
        return {}
    grouped = (
        pa.concat_tables(partials)
        .group_by(key, use_threads=False)
        .aggregate([(f"{column}_{how}", "sum") for column, how in _SUMS])
    )
    out = {}
    for row in grouped.sort_by(
        [("ImageID_count_sum", "descending"), (key, "ascending")]
    ).to_pylist():
        out[row[key] if row[key] is not None else "(none)"] = {
            "images": row["ImageID_count_sum"],
            "bytes": row["OriginalSize_sum_sum"] or 0,
            "unknown_size": row["ImageID_count_sum"] - row["OriginalSize_count_sum"],
        }
    return out
