"""Validate parsed image and label rows, vectorised over a whole table.

`check_images` and `check_labels` take a table as the CSV parser produced it
(strings, or the typed fast-path columns) and return the good rows in the
internal schema plus one problem per bad row: the first check it fails, as a
short `code` and a readable `reason` that quotes the offending value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas import releases
from oibeam.schemas.tables import (
    KEY,
    LINE,
    SRC,
    boxes_internal_schema,
    images_internal_schema,
    labels_internal_schema,
)
from oibeam.transforms.common.arrow_util import combine as _combine
from oibeam.transforms.common.image_keys import parse_image_ids

_MD5_BASE64 = r"^[A-Za-z0-9+/]{21}[AQgw]==$"
_HTTP_URL = r"^https?://[^\s/]+"
_INTEGER = r"^[0-9]{1,18}$"  # fits int64
_NUMBER = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"
_ROTATION = r"^(0|90|180|270)(\.0*)?$"
_QUOTED_VALUE_CHARS = 60

# Fast-path column types for split labels files (see csv_parse.parse_line_block).
LABEL_FAST_TYPES: dict[str, pa.DataType] = {
    "ImageID": pa.binary(16),
    "Source": pa.dictionary(pa.int32(), pa.string()),
    "LabelName": pa.dictionary(pa.int32(), pa.string()),
    # Confidence stays text: both paths must accept exactly the same numbers.
}


@dataclass
class Problems:
    """The first failed check of each bad row."""

    rows: np.ndarray  # int64 row indices into the checked table
    codes: pa.Array  # string
    reasons: pa.Array  # string


class _Checker:
    """Collects problems in check order; a row keeps its first problem."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self._rows: list[np.ndarray] = []
        self._codes: list[pa.Array] = []
        self._reasons: list[pa.Array] = []

    def fail(self, failed: np.ndarray, code: str, message: str, values=None) -> None:
        rows = np.flatnonzero(failed & ~self.bad)
        if not len(rows):
            return
        self.bad[rows] = True
        self._rows.append(rows)
        self._codes.append(pa.array([code] * len(rows), pa.string()))
        if values is None:
            reasons = pa.array([message] * len(rows), pa.string())
        else:
            shown = _as_text(values).take(pa.array(rows))
            shown = pc.utf8_slice_codeunits(shown, 0, _QUOTED_VALUE_CHARS)
            reasons = pc.binary_join_element_wise(
                pa.scalar(f"{message}: '"), pc.fill_null(shown, ""), pa.scalar("'"), ""
            )
        self._reasons.append(reasons)

    def problems(self) -> Problems:
        if not self._rows:
            empty = pa.array([], pa.string())
            return Problems(np.zeros(0, dtype=np.int64), empty, empty)
        rows = np.concatenate(self._rows)
        order = np.argsort(rows, kind="stable")
        return Problems(
            rows=rows[order],
            codes=pa.concat_arrays(self._codes).take(pa.array(order)),
            reasons=pa.concat_arrays(self._reasons).take(pa.array(order)),
        )


def _as_text(values) -> pa.Array:
    values = _combine(values)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_fixed_size_binary(values.type) or pa.types.is_binary(values.type):
        values = values.cast(pa.binary()).cast(pa.string(), safe=False)
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    return values


def _matches(values: pa.Array, pattern: str) -> np.ndarray:
    """True where the value matches; works on the dictionary of dict arrays."""
    values = _combine(values)
    if pa.types.is_dictionary(values.type):
        in_dict = pc.match_substring_regex(values.dictionary, pattern)
        result = pc.take(in_dict, values.indices)
    else:
        result = pc.match_substring_regex(values, pattern)
    return np.asarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False))


def _is_in(values: pa.Array, allowed: tuple[str, ...]) -> np.ndarray:
    values = _combine(values)
    value_set = pa.array(list(allowed), pa.string())
    if pa.types.is_dictionary(values.type):
        result = pc.take(
            pc.is_in(values.dictionary, value_set=value_set), values.indices
        )
    else:
        result = pc.is_in(values, value_set=value_set)
    return np.asarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False))


def _is_empty(values: pa.Array) -> np.ndarray:
    values = _combine(values)
    if pa.types.is_string(values.type):
        return np.asarray(
            pc.fill_null(pc.equal(pc.utf8_length(values), 0), True).to_numpy(
                zero_copy_only=False
            )
        )
    return np.asarray(values.is_null().to_numpy(zero_copy_only=False))


def _empty_lines(table: pa.Table) -> np.ndarray:
    empty = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        empty &= _is_empty(column)
    return empty


def _to_float(values, pattern: str = _NUMBER) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, parsed ok) from a float or string column."""
    values = _combine(values)
    if pa.types.is_floating(values.type):
        ok = np.asarray(values.is_valid().to_numpy(zero_copy_only=False))
        return np.asarray(pc.fill_null(values, 0.0).to_numpy()), ok
    ok = _matches(values, pattern)
    text = pc.if_else(pa.array(ok), values, pa.scalar("0"))
    return np.asarray(pc.cast(text, pa.float64()).to_numpy()), ok


def _first_checks(table: pa.Table, bad_utf8) -> tuple[_Checker, np.ndarray]:
    """A checker with every row's first checks done (empty line, UTF-8,
    ImageID), and the ImageID keys."""
    check = _Checker(table.num_rows)
    check.fail(_empty_lines(table), "empty_line", "empty line")
    if bad_utf8 is not None:
        check.fail(bad_utf8, "invalid_utf8", "text is not valid UTF-8")
    keys, id_ok = parse_image_ids(_combine(table["ImageID"]))
    check.fail(~id_ok, "bad_image_id", "ImageID is not 16 hex digits", table["ImageID"])
    return check, keys


def _check_label(check: _Checker, table: pa.Table) -> pa.Array:
    """Fails rows whose LabelName is not a mid; returns the column."""
    label = _combine(table["LabelName"])
    check.fail(
        ~_matches(label, releases.LABEL_NAME_PATTERN),
        "bad_label",
        "LabelName is not a label id like /m/0abc",
        label,
    )
    return label


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
    check, keys = _first_checks(table, bad_utf8)
    if "Subset" in table.column_names:
        subset = _combine(table["Subset"])
        check.fail(
            ~_is_in(subset, releases.SUBSETS),
            "bad_subset",
            f"Subset is not one of {', '.join(releases.SUBSETS)}",
            subset,
        )
    else:
        subset = pa.array([path_subset] * n, pa.string())
    url = table["OriginalURL"]
    check.fail(
        ~_matches(url, _HTTP_URL), "bad_url", "OriginalURL is not an http(s) URL", url
    )
    size = table["OriginalSize"]
    check.fail(
        ~_matches(size, _INTEGER),
        "bad_size",
        "OriginalSize is not a whole number of bytes",
        size,
    )
    md5 = table["OriginalMD5"]
    check.fail(
        ~_matches(md5, _MD5_BASE64),
        "bad_md5",
        "OriginalMD5 is not the base64 of a 16-byte MD5",
        md5,
    )
    if "Thumbnail300KURL" in table.column_names:
        thumb = table["Thumbnail300KURL"]
        check.fail(
            ~(_is_empty(thumb) | _matches(thumb, _HTTP_URL)),
            "bad_url",
            "Thumbnail300KURL is not an http(s) URL",
            thumb,
        )
    if "Rotation" in table.column_names:
        rotation = table["Rotation"]
        check.fail(
            ~(_is_empty(rotation) | _matches(rotation, _ROTATION)),
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
            columns[name] = _as_text(table[name]).take(take)
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
    check, keys = _first_checks(table, bad_utf8)
    source = _combine(table["Source"])
    check.fail(
        ~_is_in(source, releases.KNOWN_SOURCES),
        "bad_source",
        f"Source is not one of {', '.join(releases.KNOWN_SOURCES)}",
        source,
    )
    label = _check_label(check, table)
    conf_column = table["Confidence"]
    confidence, conf_ok = _to_float(conf_column)
    check.fail(~conf_ok, "bad_confidence", "Confidence is not a number", conf_column)
    check.fail(
        ~((confidence >= 0.0) & (confidence <= 1.0)),
        "bad_confidence",
        "Confidence is not within [0, 1]",
        conf_column,
    )
    human = _is_in(source, tuple(sorted(releases.HUMAN_SOURCES)))
    check.fail(
        human & (confidence != 0.0) & (confidence != 1.0),
        "bad_confidence",
        "a human Confidence must be 0 or 1",
        conf_column,
    )
    good = np.flatnonzero(~check.bad)
    take = pa.array(good)
    columns: dict[str, pa.Array] = {
        KEY: pa.array(keys[good], pa.uint64()),
        "Source": _as_text(source.take(take)),
        "LabelName": _as_text(label.take(take)),
        "Confidence": pa.array(confidence[good], pa.float64()),
    }
    for name in extras:  # another labels file's extra columns are null here
        columns[name] = (
            _as_text(table[name]).take(take)
            if name in table.column_names
            else pa.nulls(len(good), pa.string())
        )
    schema = labels_internal_schema(extras)
    names = [f.name for f in schema if f.name not in (SRC, LINE)]
    return pa.table([columns[c] for c in names], names=names), check.problems(), good


_BOX_SOURCE = r"^[A-Za-z][A-Za-z0-9_-]*$"
_SIGNED_NUMBER = r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"


def check_boxes(
    table: pa.Table, bad_utf8: np.ndarray | None = None
) -> tuple[pa.Table, Problems, np.ndarray]:
    """Validates box rows (strings): ImageID, Source (a word such as xclick or
    activemil), LabelName, Confidence in [0, 1], every coordinate a number with
    0 <= min <= max <= 1, flags -1, 0 or 1 (-1 = not annotated)."""
    from oibeam.schemas.boxes import BOX_FLAGS

    check, keys = _first_checks(table, bad_utf8)
    source = _combine(table["Source"])
    check.fail(
        ~_matches(source, _BOX_SOURCE), "bad_source", "Source is not a word", source
    )
    label = _check_label(check, table)
    confidence, conf_ok = _to_float(table["Confidence"])
    check.fail(
        ~conf_ok | ~((confidence >= 0.0) & (confidence <= 1.0)),
        "bad_confidence",
        "Confidence is not a number within [0, 1]",
        table["Confidence"],
    )
    coords = {}
    for name in ("XMin", "XMax", "YMin", "YMax"):
        coords[name], ok = _to_float(table[name], _SIGNED_NUMBER)
        check.fail(~ok, "bad_coordinate", f"{name} is not a number", table[name])
    for low, high in (("XMin", "XMax"), ("YMin", "YMax")):
        lo, hi = coords[low], coords[high]
        check.fail(
            ~((lo >= 0.0) & (hi <= 1.0)),
            "box_outside_image",
            f"{low}/{high} not within [0, 1]",
            pc.binary_join_element_wise(
                _as_text(table[low]), _as_text(table[high]), ".."
            ),
        )
        check.fail(
            ~(lo <= hi),
            "box_inverted",
            f"{low} > {high}",
            pc.binary_join_element_wise(
                _as_text(table[low]), _as_text(table[high]), " > "
            ),
        )
    flags = {}
    for name in BOX_FLAGS:
        if name not in table.column_names:
            continue
        flags[name] = _combine(table[name])
        check.fail(
            ~_is_in(flags[name], ("-1", "0", "1")),
            "bad_flag",
            f"{name} is not -1, 0 or 1",
            flags[name],
        )
    good = np.flatnonzero(~check.bad)
    take = pa.array(good)
    columns: dict[str, pa.Array] = {
        KEY: pa.array(keys[good], pa.uint64()),
        "Source": _as_text(source.take(take)),
        "LabelName": _as_text(label.take(take)),
        "Confidence": pa.array(confidence[good], pa.float64()),
    }
    for name, values in coords.items():
        columns[name] = pa.array(values[good], pa.float64())
    for name in BOX_FLAGS:
        columns[name] = (
            pc.cast(_as_text(flags[name]).take(take), pa.int8())
            if name in flags
            else pa.nulls(len(good), pa.int8())
        )
    names = [f.name for f in boxes_internal_schema() if f.name not in (SRC, LINE)]
    return pa.table([columns[c] for c in names], names=names), check.problems(), good
