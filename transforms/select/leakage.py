"""Leakage between subsets (no Beam here): which train images duplicate a
validation or test image, by OriginalMD5 or by a duplicates table
(schemas/duplicates.py), and why each one is dropped (--drop-eval-duplicates).

Two reasons, checked in this order:
- `eval_duplicate_md5`: the train image has the OriginalMD5 of a validation or
  test image of the same inputs (an exact duplicate, known from the CSVs);
- `eval_duplicate_listed`: the train image is in a duplicates group with a
  validation or test image, in the duplicates table of an earlier fetch or
  snapshot (--duplicates-from: exact by fetched bytes, or near by perceptual
  hash; only a fetch can tell).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.transforms.common.arrow_util import combine

TRAIN = "train"
EVAL_SUBSETS = ("validation", "test")
BY_MD5 = "eval_duplicate_md5"
LISTED = "eval_duplicate_listed"
REASONS = {
    BY_MD5: "a train image with the OriginalMD5 of a validation or test image "
    "of the inputs (an exact duplicate, known from the CSVs)",
    LISTED: "a train image in a duplicates group with a validation or test "
    "image, in the duplicates table of --duplicates-from (near by perceptual "
    "hash, or exact by fetched bytes)",
}
MD5 = "OriginalMD5"


def eval_md5s(table: pa.Table) -> pa.Table:
    """The distinct OriginalMD5s of the validation and test rows of an images
    table (nulls and empty values left out), as a one-column table."""
    if MD5 not in table.column_names:
        return pa.table({MD5: pa.array([], pa.string())})
    is_eval = pc.is_in(table["Subset"], value_set=pa.array(EVAL_SUBSETS))
    md5 = combine(table[MD5]).filter(combine(pc.fill_null(is_eval, False)))
    md5 = md5.filter(pc.fill_null(pc.not_equal(md5, ""), False))
    return pa.table({MD5: pc.unique(md5).cast(pa.string())})


def listed_train_ids(duplicates: pa.Table) -> pa.Array:
    """The ImageIDs of the train rows of a duplicates table (schemas/
    duplicates.py) whose group also holds a validation or test image: the
    train images a duplicates table marks as leaking into evaluation."""
    is_eval = pc.is_in(duplicates["subset"], value_set=pa.array(EVAL_SUBSETS))
    groups = pc.unique(combine(duplicates["group"]).filter(combine(is_eval)))
    leaking = pc.and_(
        pc.equal(duplicates["subset"], TRAIN),
        pc.is_in(duplicates["group"], value_set=groups),
    )
    ids = combine(duplicates["ImageID"]).filter(combine(leaking))
    return pc.unique(ids).cast(pa.string())


def drop_reasons(
    table: pa.Table, md5s: pa.Array, listed: pa.Array
) -> tuple[np.ndarray, dict[str, int]]:
    """(which rows to keep, images dropped per reason) for one images table:
    train rows whose OriginalMD5 is in `md5s` (BY_MD5), then train rows whose
    ImageID is in `listed` (LISTED)."""
    keep = np.ones(table.num_rows, dtype=bool)
    dropped = dict.fromkeys(REASONS, 0)
    if not table.num_rows:
        return keep, dropped
    train = pc.fill_null(pc.equal(table["Subset"], TRAIN), False)
    train = np.asarray(combine(train).to_numpy(zero_copy_only=False), dtype=bool)
    checks = [(BY_MD5, MD5, md5s), (LISTED, "ImageID", listed)]
    for reason, column, values in checks:
        if not len(values) or column not in table.column_names:
            continue
        found = pc.fill_null(pc.is_in(table[column], value_set=values), False)
        hit = keep & train & combine(found).to_numpy(zero_copy_only=False)
        dropped[reason] = int(hit.sum())
        keep &= ~hit
    return keep, dropped
