"""License and attribution of every exported image: what CC BY asks for.

attribution/attribution.csv   ImageID,Author,AuthorProfileURL,License,
                              OriginalLandingURL,Title per ok image, in
                              ImageID order (strings quoted, empty = absent)
attribution/LICENSES.txt      images per license, and how to credit them

The CSV is made to be opened in a spreadsheet, and Author and Title are what
Flickr users typed: a value a spreadsheet would run as a formula (one starting
with = + - @, a tab or a carriage return) is written with a leading `'`, as
OWASP advises against CSV injection, in every field. Its quotes keep a comma,
quote or line break inside the field.
"""

from __future__ import annotations

import collections
import re

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from oibeam.tools.export.base import Exporter, WrittenExport

CSV_FILE = "attribution.csv"
SUMMARY_FILE = "LICENSES.txt"
FIELDS: tuple[str, ...] = (
    "ImageID",
    "Author",
    "AuthorProfileURL",
    "License",
    "OriginalLandingURL",
    "Title",
)
# A cell starting with one of these is a formula to a spreadsheet (OWASP).
_FORMULA = r"^[=+\-@\t\r]"
_CC = re.compile(r"creativecommons\.org/(licenses|publicdomain)/([a-z-]+)/([0-9.]+)")
_NO_LICENSE = "(no license given)"


def license_name(url: str) -> str:
    """A short name for a license URL: `CC BY 2.0`; the URL if not Creative
    Commons."""
    found = _CC.search(url or "")
    if not found:
        return url
    kind, code, version = found.groups()
    if kind == "publicdomain":
        return "CC0 " + version if code == "zero" else f"Public Domain Mark {version}"
    return f"CC {code.upper()} {version}"


def _license_line(url: str, images: int, width: int) -> str:
    name = license_name(url)
    return f"{images:>{width},}  {name}" + (f"  ({url})" if name != url else "")


def summary_text(counts: dict[str, int]) -> str:
    """LICENSES.txt: images per license, most used first."""
    total = sum(counts.values())
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    width = max([len(f"{total:,}"), 6])
    lines = [
        f"{total:,} images, under {len(counts)} license(s):",
        "",
        *(_license_line(url, n, width) for url, n in rows),
        "",
        "Every image keeps its own license. Creative Commons licenses with BY",
        "require attribution: credit the Author (AuthorProfileURL), name and link",
        "the License, link the original (OriginalLandingURL), and say if you",
        "changed the image. attribution.csv has these fields for every image.",
        "",
    ]
    return "\n".join(lines)


def as_text(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Strings a spreadsheet would run as a formula, with a leading `'` so it
    shows them as text; nulls and other strings as they are."""
    values = pc.cast(values, pa.string())
    formula = pc.match_substring_regex(values, _FORMULA)
    return pc.if_else(formula, pc.binary_join_element_wise("'", values, ""), values)


class Attribution(Exporter):
    """Writes attribution/attribution.csv and attribution/LICENSES.txt."""

    name = "attribution"
    columns = FIELDS

    def __init__(self) -> None:
        super().__init__()
        self._counts: collections.Counter[str] = collections.Counter()

    def start(self, directory: str) -> None:
        self._directory = directory
        self._csv = self.open(f"{directory}/{CSV_FILE}")
        self._csv.write(",".join(FIELDS) + "\n")

    def write(self, table: pa.Table) -> None:
        columns = [
            table[f] if f in table.column_names else pa.nulls(len(table), pa.string())
            for f in FIELDS
        ]
        rows = pa.table([as_text(c) for c in columns], names=list(FIELDS))
        sink = pa.BufferOutputStream()
        # "needed" quotes every string (any may hold a quote) and leaves a
        # null empty: a `'` added above is inside its field's quotes.
        pacsv.write_csv(
            rows,
            sink,
            pacsv.WriteOptions(include_header=False, quoting_style="needed"),
        )
        self._csv.write(sink.getvalue().to_pybytes(), rows.num_rows)
        licenses = pc.cast(columns[FIELDS.index("License")], pa.string())
        for item in pc.value_counts(licenses).to_pylist():
            self._counts[item["values"] or _NO_LICENSE] += item["counts"]

    def finish(self) -> list[WrittenExport]:
        summary = self.open(f"{self._directory}/{SUMMARY_FILE}", "licenses")
        summary.write(summary_text(dict(self._counts)), len(self._counts))
        return self.commit_all()
