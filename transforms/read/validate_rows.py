"""Validate parsed image and label rows, vectorised over a whole table.

`check_images` and `check_labels` (and validate_boxes.check_boxes) take a
table as the CSV parser produced it
(strings, or the typed fast-path columns) and return the good rows in the
internal schema plus one problem per bad row: the first check it fails, as a
short `code` and a readable `reason` that quotes the offending value.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas import releases
from oibeam.schemas.tables import (
    KEY,
    LINE,
    SRC,
    images_internal_schema,
    labels_internal_schema,
)
from oibeam.transforms.common.arrow_util import combine as _combine
from oibeam.transforms.read.row_checks import (
    Problems,
    as_text,
    check_label,
    first_checks,
    is_empty,
    is_in,
    kept_label_columns,
    matches,
    to_float,
)

_MD5_BASE64 = r"^[A-Za-z0-9+/]{21}[AQgw]==$"
_HTTP_URL = r"^https?://[^\s/]+"
_INTEGER = r"^[0-9]{1,18}$"  # fits int64
_ROTATION = r"^(0|90|180|270)(\.0*)?$"

# Fast-path column types for split labels files (see csv_parse.parse_line_block).
LABEL_FAST_TYPES: dict[str, pa.DataType] = {
    "ImageID": pa.binary(16),
    "Source": pa.dictionary(pa.int32(), pa.string()),
    "LabelName": pa.dictionary(pa.int32(), pa.string()),
    # Confidence stays text: both paths must accept exactly the same numbers.
}


def check_images(
    table: pa.Table,
    layout: releases.CsvLayout,
    extras: tuple[str, ...],
    path_subset: str | None,
    bad_utf8: np.ndarray | None = None,
) -> tuple[pa.Table, Problems, np.ndarray]:
    """Validates image rows (string columns, named as in `layout.columns`).

    Returns the good rows in the internal images schema (without _src/_line,
    which the caller adds), the problems, and the good row indices.
    """
    n = table.num_rows
    check, keys = first_checks(table, bad_utf8)
    if "Subset" in table.column_names:
        subset = _combine(table["Subset"])
        check.fail(
            ~is_in(subset, releases.SUBSETS),
            "bad_subset",
            f"Subset is not one of {', '.join(releases.SUBSETS)}",
            subset,
        )
    else:
        subset = pa.array([path_subset] * n, pa.string())
    url = table["OriginalURL"]
    check.fail(
        ~matches(url, _HTTP_URL), "bad_url", "OriginalURL is not an http(s) URL", url
    )
    size = table["OriginalSize"]
    check.fail(
        ~matches(size, _INTEGER),
        "bad_size",
        "OriginalSize is not a whole number of bytes",
        size,
    )
    md5 = table["OriginalMD5"]
    check.fail(
        ~matches(md5, _MD5_BASE64),
        "bad_md5",
        "OriginalMD5 is not the base64 of a 16-byte MD5",
        md5,
    )
    if "Thumbnail300KURL" in table.column_names:
        thumb = table["Thumbnail300KURL"]
        check.fail(
            ~(is_empty(thumb) | matches(thumb, _HTTP_URL)),
            "bad_url",
            "Thumbnail300KURL is not an http(s) URL",
            thumb,
        )
    if "Rotation" in table.column_names:
        rotation = table["Rotation"]
        check.fail(
            ~(is_empty(rotation) | matches(rotation, _ROTATION)),
            "bad_rotation",
            "Rotation is not 0, 90, 180 or 270",
            rotation,
        )
    good = np.flatnonzero(~check.bad)
    take = pa.array(good)
    columns: dict[str, pa.Array] = {KEY: pa.array(keys[good], pa.uint64())}
    schema = images_internal_schema(extras)
    for field in schema:
        name = field.name
        if name in (KEY, SRC, LINE):
            continue
        if name == "Subset":
            columns[name] = subset.take(take)
        elif name not in table.column_names:
            columns[name] = pa.nulls(len(good), field.type)
        elif name == "OriginalSize":
            columns[name] = pc.cast(_combine(table[name]).take(take), pa.int64())
        elif name == "Rotation":
            text = _combine(table[name]).take(take)
            digits = pc.replace_substring_regex(text, r"\.0*$", "")
            columns[name] = pc.cast(
                pc.if_else(pc.equal(digits, ""), pa.scalar(None, pa.string()), digits),
                pa.int16(),
            )
        elif name == "Thumbnail300KURL":
            text = _combine(table[name]).take(take)
            columns[name] = pc.if_else(
                pc.equal(text, ""), pa.scalar(None, pa.string()), text
            )
        else:
            columns[name] = as_text(table[name]).take(take)
    return pa.table(columns), check.problems(), good


def check_labels(
    table: pa.Table,
    extras: tuple[str, ...],
    bad_utf8: np.ndarray | None = None,
) -> tuple[pa.Table, Problems, np.ndarray]:
    """Validates label rows (strings, or LABEL_FAST_TYPES columns).

    Returns the good rows in the internal labels schema (without _src/_line),
    the problems, and the good row indices.
    """
    check, keys = first_checks(table, bad_utf8)
    source = _combine(table["Source"])
    check.fail(
        ~is_in(source, releases.KNOWN_SOURCES),
        "bad_source",
        f"Source is not one of {', '.join(releases.KNOWN_SOURCES)}",
        source,
    )
    label = check_label(check, table)
    conf_column = table["Confidence"]
    confidence, conf_ok = to_float(conf_column)
    check.fail(~conf_ok, "bad_confidence", "Confidence is not a number", conf_column)
    check.fail(
        ~((confidence >= 0.0) & (confidence <= 1.0)),
        "bad_confidence",
        "Confidence is not within [0, 1]",
        conf_column,
    )
    human = is_in(source, tuple(sorted(releases.HUMAN_SOURCES)))
    check.fail(
        human & (confidence != 0.0) & (confidence != 1.0),
        "bad_confidence",
        "a human Confidence must be 0 or 1",
        conf_column,
    )
    good = np.flatnonzero(~check.bad)
    take = pa.array(good)
    columns = kept_label_columns(keys, good, source, label, confidence)
    for name in extras:  # another labels file's extra columns are null here
        columns[name] = (
            as_text(table[name]).take(take)
            if name in table.column_names
            else pa.nulls(len(good), pa.string())
        )
    schema = labels_internal_schema(extras)
    names = [f.name for f in schema if f.name not in (SRC, LINE)]
    return pa.table([columns[c] for c in names], names=names), check.problems(), good
