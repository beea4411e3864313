"""The building blocks of row validation, vectorised over a whole table: a
Checker that keeps each bad row's first problem (a short code, and a reason
quoting the offending value), and column tests that work on strings,
dictionary-encoded and typed fast-path columns alike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas import releases
from oibeam.schemas.tables import KEY
from oibeam.transforms.common.arrow_util import combine as _combine
from oibeam.transforms.common.image_keys import parse_image_ids

NUMBER = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"
_QUOTED_VALUE_CHARS = 60


@dataclass
class Problems:
    """The first failed check of each bad row."""

    rows: np.ndarray  # int64 row indices into the checked table
    codes: pa.Array  # string
    reasons: pa.Array  # string


class Checker:
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
            shown = as_text(values).take(pa.array(rows))
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


def as_text(values) -> pa.Array:
    values = _combine(values)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_fixed_size_binary(values.type) or pa.types.is_binary(values.type):
        values = values.cast(pa.binary()).cast(pa.string(), safe=False)
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    return values


def matches(values: pa.Array, pattern: str) -> np.ndarray:
    """True where the value matches; works on the dictionary of dict arrays."""
    values = _combine(values)
    if pa.types.is_dictionary(values.type):
        in_dict = pc.match_substring_regex(values.dictionary, pattern)
        result = pc.take(in_dict, values.indices)
    else:
        result = pc.match_substring_regex(values, pattern)
    return np.asarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False))


def is_in(values: pa.Array, allowed: tuple[str, ...]) -> np.ndarray:
    values = _combine(values)
    value_set = pa.array(list(allowed), pa.string())
    if pa.types.is_dictionary(values.type):
        result = pc.take(
            pc.is_in(values.dictionary, value_set=value_set), values.indices
        )
    else:
        result = pc.is_in(values, value_set=value_set)
    return np.asarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False))


def is_empty(values: pa.Array) -> np.ndarray:
    values = _combine(values)
    if pa.types.is_string(values.type):
        return np.asarray(
            pc.fill_null(pc.equal(pc.utf8_length(values), 0), True).to_numpy(
                zero_copy_only=False
            )
        )
    return np.asarray(values.is_null().to_numpy(zero_copy_only=False))


def empty_lines(table: pa.Table) -> np.ndarray:
    empty = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        empty &= is_empty(column)
    return empty


def to_float(values, pattern: str = NUMBER) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, parsed ok) from a float or string column."""
    values = _combine(values)
    if pa.types.is_floating(values.type):
        ok = np.asarray(values.is_valid().to_numpy(zero_copy_only=False))
        return np.asarray(pc.fill_null(values, 0.0).to_numpy()), ok
    ok = matches(values, pattern)
    text = pc.if_else(pa.array(ok), values, pa.scalar("0"))
    return np.asarray(pc.cast(text, pa.float64()).to_numpy()), ok


def first_checks(table: pa.Table, bad_utf8) -> tuple[Checker, np.ndarray]:
    """A checker with every row's first checks done (empty line, UTF-8,
    ImageID), and the ImageID keys."""
    check = Checker(table.num_rows)
    check.fail(empty_lines(table), "empty_line", "empty line")
    if bad_utf8 is not None:
        check.fail(bad_utf8, "invalid_utf8", "text is not valid UTF-8")
    keys, id_ok = parse_image_ids(_combine(table["ImageID"]))
    check.fail(~id_ok, "bad_image_id", "ImageID is not 16 hex digits", table["ImageID"])
    return check, keys


def check_label(check: Checker, table: pa.Table) -> pa.Array:
    """Fails rows whose LabelName is not a mid; returns the column."""
    label = _combine(table["LabelName"])
    check.fail(
        ~matches(label, releases.LABEL_NAME_PATTERN),
        "bad_label",
        "LabelName is not a label id like /m/0abc",
        label,
    )
    return label


def kept_label_columns(
    keys: np.ndarray,
    good: np.ndarray,
    source: pa.Array,
    label: pa.Array,
    confidence: np.ndarray,
) -> dict[str, pa.Array]:
    """The key and label columns of the rows at `good` (a label or box row)."""
    take = pa.array(good)
    return {
        KEY: pa.array(keys[good], pa.uint64()),
        "Source": as_text(source.take(take)),
        "LabelName": as_text(label.take(take)),
        "Confidence": pa.array(confidence[good], pa.float64()),
    }
