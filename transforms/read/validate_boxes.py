"""Validate parsed bounding-box rows, vectorised over a whole table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.boxes import BOX_FLAGS
from oibeam.schemas.tables import LINE, SRC, boxes_internal_schema
from oibeam.transforms.common.arrow_util import combine as _combine
from oibeam.transforms.read.row_checks import (
    Problems,
    as_text,
    check_label,
    first_checks,
    is_in,
    kept_label_columns,
    matches,
    to_float,
)

_BOX_SOURCE = r"^[A-Za-z][A-Za-z0-9_-]*$"
_SIGNED_NUMBER = r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"


def check_boxes(
    table: pa.Table, bad_utf8: np.ndarray | None = None
) -> tuple[pa.Table, Problems, np.ndarray]:
    """Validates box rows (strings): ImageID, Source (a word such as xclick or
    activemil), LabelName, Confidence in [0, 1], every coordinate a number with
    0 <= min <= max <= 1, flags -1, 0 or 1 (-1 = not annotated)."""
    check, keys = first_checks(table, bad_utf8)
    source = _combine(table["Source"])
    check.fail(
        ~matches(source, _BOX_SOURCE), "bad_source", "Source is not a word", source
    )
    label = check_label(check, table)
    confidence, conf_ok = to_float(table["Confidence"])
    check.fail(
        ~conf_ok | ~((confidence >= 0.0) & (confidence <= 1.0)),
        "bad_confidence",
        "Confidence is not a number within [0, 1]",
        table["Confidence"],
    )
    coords = {}
    for name in ("XMin", "XMax", "YMin", "YMax"):
        coords[name], ok = to_float(table[name], _SIGNED_NUMBER)
        check.fail(~ok, "bad_coordinate", f"{name} is not a number", table[name])
    for low, high in (("XMin", "XMax"), ("YMin", "YMax")):
        lo, hi = coords[low], coords[high]
        check.fail(
            ~((lo >= 0.0) & (hi <= 1.0)),
            "box_outside_image",
            f"{low}/{high} not within [0, 1]",
            pc.binary_join_element_wise(
                as_text(table[low]), as_text(table[high]), ".."
            ),
        )
        check.fail(
            ~(lo <= hi),
            "box_inverted",
            f"{low} > {high}",
            pc.binary_join_element_wise(
                as_text(table[low]), as_text(table[high]), " > "
            ),
        )
    flags = {}
    for name in BOX_FLAGS:
        if name not in table.column_names:
            continue
        flags[name] = _combine(table[name])
        check.fail(
            ~is_in(flags[name], ("-1", "0", "1")),
            "bad_flag",
            f"{name} is not -1, 0 or 1",
            flags[name],
        )
    good = np.flatnonzero(~check.bad)
    take = pa.array(good)
    columns = kept_label_columns(keys, good, source, label, confidence)
    for name, values in coords.items():
        columns[name] = pa.array(values[good], pa.float64())
    for name in BOX_FLAGS:
        columns[name] = (
            pc.cast(as_text(flags[name]).take(take), pa.int8())
            if name in flags
            else pa.nulls(len(good), pa.int8())
        )
    names = [f.name for f in boxes_internal_schema() if f.name not in (SRC, LINE)]
    return pa.table([columns[c] for c in names], names=names), check.problems(), good
