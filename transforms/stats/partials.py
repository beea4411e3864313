"""Label statistics as small partial tables (pure NumPy/Arrow, no Beam).

Each labels table is folded into partial tables (one row per label, subset and
source or source kind) that sum exactly in any order, so no key is ever a
label: a label on millions of images costs the same as a rare one, on any
number of workers. Images are counted once per (label, subset, source kind)
however many sources of that kind label them; a kind's verdict on an (image,
label) is its highest confidence (0 = verified negative).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.releases import HUMAN_SOURCES, MACHINE_SOURCES
from oibeam.schemas.tables import HISTOGRAM_BINS
from oibeam.transforms.common.arrow_util import combine as _combine
from oibeam.transforms.common.arrow_util import encode as _encode
from oibeam.transforms.common.arrow_util import ranks
from oibeam.transforms.common.image_keys import parse_image_ids

HIST = [f"hist_{i}" for i in range(HISTOGRAM_BINS)]
SOURCE_PARTIAL = pa.schema(
    [
        ("label", pa.string()),
        ("subset", pa.string()),
        ("source", pa.string()),
        ("rows", pa.int64()),
        ("positive_images", pa.int64()),
        ("negative_images", pa.int64()),
        ("confidence_micros", pa.int64()),
        ("inferred_rows", pa.int64()),
    ]
)
KIND_PARTIAL = pa.schema(
    [
        ("label", pa.string()),
        ("subset", pa.string()),
        ("kind", pa.string()),
        ("positive_images", pa.int64()),
        ("negative_images", pa.int64()),
        ("confidence_micros", pa.int64()),
        *[(h, pa.int64()) for h in HIST],
        ("verified", pa.int64()),
        ("confirmed", pa.int64()),
    ]
)
_COMPACT_AFTER = 16
# Confidences are summed as integer millionths: exact, so the sums do not
# depend on the order in which a runner merges partials.
MICROS = 1_000_000


@dataclasses.dataclass
class LabelPartials:
    """Partial sums: source-level and kind-level tables (uncompacted pieces)."""

    sources: list[pa.Table] = dataclasses.field(default_factory=list)
    kinds: list[pa.Table] = dataclasses.field(default_factory=list)

    def add(self, other: LabelPartials) -> LabelPartials:
        self.sources.extend(other.sources)
        self.kinds.extend(other.kinds)
        if len(self.sources) > _COMPACT_AFTER:
            self.compact()
        return self

    def compact(self) -> LabelPartials:
        self.sources = [sum_by(self.sources, SOURCE_PARTIAL, 3)]
        self.kinds = [sum_by(self.kinds, KIND_PARTIAL, 3)]
        return self


def sum_by(pieces: list[pa.Table], schema: pa.Schema, key_count: int) -> pa.Table:
    """The pieces summed by their first `key_count` columns, sorted by them."""
    pieces = [p for p in pieces if p.num_rows]
    if not pieces:
        return schema.empty_table()
    table = pa.concat_tables(pieces)
    keys = schema.names[:key_count]
    values = schema.names[key_count:]
    summed = table.group_by(keys, use_threads=False).aggregate(
        [(v, "sum") for v in values]
    )
    summed = summed.rename_columns(
        [n.removesuffix("_sum") for n in summed.column_names]
    )
    return (
        summed.select(schema.names)
        .cast(schema)
        .sort_by([(k, "ascending") for k in keys])
    )


def _to_micros(conf: np.ndarray) -> np.ndarray:
    return np.rint(conf * MICROS)


def _micros(sums: np.ndarray) -> np.ndarray:
    """Float sums of whole micros (exact below 2**53) back to int64."""
    return np.rint(sums).astype(np.int64)


def _member(values: pa.Array, allowed: frozenset[str]) -> np.ndarray:
    return np.array([v in allowed for v in values.to_pylist()], dtype=bool)


@dataclasses.dataclass
class _Rows:
    """A labels table's rows as NumPy arrays, dictionary-encoded, with the rows
    of each (image, label) pair next to each other."""

    keys: np.ndarray  # uint64 ImageID keys
    conf: np.ndarray  # Confidence
    inferred: np.ndarray  # bool: an ancestor row added by the join
    labels: pa.Array  # distinct LabelNames; label_codes index them
    label_codes: np.ndarray
    sources: pa.Array
    source_codes: np.ndarray
    subsets: pa.Array
    subset_codes: np.ndarray

    @classmethod
    def of(cls, table: pa.Table) -> _Rows:
        keys, _ = parse_image_ids(_combine(table["ImageID"]))
        labels, label_codes = _encode(table["LabelName"])
        sources, source_codes = _encode(table["Source"])
        subsets, subset_codes = _encode(table["Subset"])
        conf = np.asarray(_combine(table["Confidence"]).to_numpy(zero_copy_only=False))
        if "InferredFrom" in table.column_names:
            valid = pc.is_valid(_combine(table["InferredFrom"]))
            inferred = np.asarray(valid.to_numpy(zero_copy_only=False))
        else:
            inferred = np.zeros(len(conf), dtype=bool)
        rows = cls(
            keys,
            conf,
            inferred,
            labels,
            label_codes,
            sources,
            source_codes,
            subsets,
            subset_codes,
        )
        order = _pair_order(keys, label_codes, labels)
        return rows if order is None else rows.take(order)

    def take(self, order: np.ndarray) -> _Rows:
        return dataclasses.replace(
            self,
            keys=self.keys[order],
            conf=self.conf[order],
            inferred=self.inferred[order],
            label_codes=self.label_codes[order],
            source_codes=self.source_codes[order],
            subset_codes=self.subset_codes[order],
        )


def fold_labels(table: pa.Table) -> LabelPartials:
    """Partial statistics of a labels table (ImageID, Source, LabelName,
    Confidence, Subset).

    Rows need not be sorted, but every row of an image must be in this table
    and each (ImageID, LabelName, Source) only once: JoinLabelsToImages emits
    its tables so (an image lives in one bucket).
    """
    if not table.num_rows:
        return LabelPartials()
    rows = _Rows.of(table)
    return LabelPartials(sources=[_source_partial(rows)], kinds=[_kind_partial(rows)])


def _pair_order(keys, label_codes, labels) -> np.ndarray | None:
    """None if rows of each (image, label) are contiguous, else a sorting order."""
    r = ranks(labels)[label_codes]
    grouped = (keys[1:] > keys[:-1]) | ((keys[1:] == keys[:-1]) & (r[1:] >= r[:-1]))
    return None if grouped.all() else np.lexsort((r, keys))


def _source_partial(rows: _Rows) -> pa.Table:
    """SOURCE_PARTIAL: rows, positives, negatives, confidence and inferred rows
    per (label, subset, source)."""
    shape = (len(rows.labels), len(rows.subsets), len(rows.sources))
    index = np.ravel_multi_index(
        (rows.label_codes, rows.subset_codes, rows.source_codes), shape
    )
    size = int(np.prod(shape))
    counted = np.bincount(index, minlength=size)
    positive = np.bincount(index[rows.conf > 0], minlength=size)
    inferred_rows = np.bincount(index[rows.inferred], minlength=size)
    weights = _to_micros(rows.conf)
    micros = _micros(np.bincount(index, weights=weights, minlength=size))
    present = np.flatnonzero(counted)
    li, si, ri = np.unravel_index(present, shape)
    return pa.table(
        {
            "label": rows.labels.take(pa.array(li)),
            "subset": rows.subsets.take(pa.array(si)),
            "source": rows.sources.take(pa.array(ri)),
            "rows": counted[present],
            "positive_images": positive[present],
            "negative_images": counted[present] - positive[present],
            "confidence_micros": micros[present],
            "inferred_rows": inferred_rows[present],
        },
        schema=SOURCE_PARTIAL,
    )


@dataclasses.dataclass
class _Verdicts:
    """Each (image, label) pair's verdict per source kind: its highest
    confidence from that kind, -1 where the kind did not label the pair."""

    machine: np.ndarray
    human: np.ndarray
    any: np.ndarray  # the human verdict where there is one (it overrules)
    cell: np.ndarray  # the pair's (label, subset) cell
    size: int  # cells
    on_validation: np.ndarray  # bool: the image is a validation image

    @classmethod
    def of(cls, rows: _Rows) -> _Verdicts:
        start = np.ones(len(rows.keys), dtype=bool)
        start[1:] = (rows.keys[1:] != rows.keys[:-1]) | (
            rows.label_codes[1:] != rows.label_codes[:-1]
        )
        starts = np.flatnonzero(start)
        machine = _member(rows.sources, MACHINE_SOURCES)[rows.source_codes]
        human = _member(rows.sources, HUMAN_SOURCES)[rows.source_codes]
        best_machine = np.maximum.reduceat(np.where(machine, rows.conf, -1.0), starts)
        best_human = np.maximum.reduceat(np.where(human, rows.conf, -1.0), starts)
        # Humans overrule the machine: a rejected machine label is no positive.
        best_any = np.where(best_human >= 0, best_human, best_machine)
        shape = (len(rows.labels), len(rows.subsets))
        subset_codes = rows.subset_codes[starts]
        names = rows.subsets.to_pylist()
        validation = names.index("validation") if "validation" in names else -1
        return cls(
            best_machine,
            best_human,
            best_any,
            np.ravel_multi_index((rows.label_codes[starts], subset_codes), shape),
            int(np.prod(shape)),
            subset_codes == validation,
        )


def _kind_partial(rows: _Rows) -> pa.Table:
    """KIND_PARTIAL: per (label, subset) and source kind, the images it calls
    positive or negative, their confidence; for the machine kind also its
    confidence histogram and how often humans confirmed it on validation."""
    verdicts = _Verdicts.of(rows)
    shape = (len(rows.labels), len(rows.subsets))
    pieces = []
    for kind in ("machine", "human", "any"):
        columns = _kind_counts(getattr(verdicts, kind), verdicts, kind == "machine")
        used = np.flatnonzero(columns["positive_images"] + columns["negative_images"])
        li, si = np.unravel_index(used, shape)
        table = {
            "label": rows.labels.take(pa.array(li)),
            "subset": rows.subsets.take(pa.array(si)),
            "kind": pa.array([kind] * len(used), pa.string()),
        }
        table.update({name: values[used] for name, values in columns.items()})
        pieces.append(pa.table(table, schema=KIND_PARTIAL))
    return pa.concat_tables(pieces)


def _kind_counts(
    best: np.ndarray, verdicts: _Verdicts, machine: bool
) -> dict[str, np.ndarray]:
    """One kind's counts per cell (the KIND_PARTIAL value columns)."""
    size, cell = verdicts.size, verdicts.cell
    present = best >= 0
    weights = _to_micros(best[present])
    columns = {
        "positive_images": np.bincount(cell[present & (best > 0)], minlength=size),
        "negative_images": np.bincount(cell[present & (best == 0)], minlength=size),
        "confidence_micros": _micros(
            np.bincount(cell[present], weights=weights, minlength=size)
        ),
    }
    hist = np.zeros((size, len(HIST)), dtype=np.int64)
    verified = confirmed = np.zeros(size, dtype=np.int64)
    if machine:
        bins = np.clip(np.floor(best[present] * 10 + 1e-9), 0, 9).astype(np.int64)
        hist = np.bincount(
            cell[present] * len(HIST) + bins, minlength=size * len(HIST)
        ).reshape(size, len(HIST))
        checked = present & (verdicts.human >= 0) & verdicts.on_validation
        verified = np.bincount(cell[checked], minlength=size)
        confirmed = np.bincount(cell[checked & (verdicts.human > 0)], minlength=size)
    columns.update({h: hist[:, i] for i, h in enumerate(HIST)})
    columns["verified"] = verified
    columns["confirmed"] = confirmed
    return columns
