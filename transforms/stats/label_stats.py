"""ComputeLabelStats: label counts, statistics and the trainable set.

Each labels table is folded into small partial tables (one row per label,
subset and source or source kind) with NumPy; a CombineFn sums the partials, so
no key is ever a label: a label on millions of images costs the same as a rare
one, on any number of workers. Images are counted once per (label, subset,
source kind) however many sources of that kind label them; a kind's verdict on
an (image, label) is its highest confidence (0 = verified negative).
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.coders import register_coders
from oibeam.schemas.releases import HUMAN_SOURCES, MACHINE_SOURCES, SUBSETS
from oibeam.schemas.tables import BOX_COUNTS, HISTOGRAM_BINS, LABEL_COUNTS, LABEL_STATS
from oibeam.transforms.common.arrow_util import combine as _combine
from oibeam.transforms.common.arrow_util import encode as _encode
from oibeam.transforms.common.arrow_util import ranks
from oibeam.transforms.common.image_keys import parse_image_ids
from oibeam.transforms.read.csv_parse import csv_line
from oibeam.transforms.stats.trainable import TrainableRule, trainable_mask

register_coders()

_HIST = [f"hist_{i}" for i in range(HISTOGRAM_BINS)]
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
        *[(h, pa.int64()) for h in _HIST],
        ("verified", pa.int64()),
        ("confirmed", pa.int64()),
    ]
)
_COMPACT_AFTER = 16
# Confidences are summed as integer millionths: exact, so the sums do not
# depend on the order in which a runner merges partials.
_MICROS = 1_000_000


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
        self.sources = [_sum_by(self.sources, SOURCE_PARTIAL, 3)]
        self.kinds = [_sum_by(self.kinds, KIND_PARTIAL, 3)]
        return self


def _sum_by(pieces: list[pa.Table], schema: pa.Schema, key_count: int) -> pa.Table:
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
    return np.rint(conf * _MICROS)


def _micros(sums: np.ndarray) -> np.ndarray:
    """Float sums of whole micros (exact below 2**53) back to int64."""
    return np.rint(sums).astype(np.int64)


def _member(values: pa.Array, allowed: frozenset[str]) -> np.ndarray:
    return np.array([v in allowed for v in values.to_pylist()], dtype=bool)


def fold_labels(table: pa.Table) -> LabelPartials:
    """Partial statistics of a labels table (ImageID, Source, LabelName,
    Confidence, Subset).

    Rows need not be sorted, but every row of an image must be in this table
    and each (ImageID, LabelName, Source) only once: JoinLabelsToImages emits
    its tables so (an image lives in one bucket).
    """
    if not table.num_rows:
        return LabelPartials()
    keys, _ = parse_image_ids(_combine(table["ImageID"]))
    labels, label_codes = _encode(table["LabelName"])
    sources, source_codes = _encode(table["Source"])
    subsets, subset_codes = _encode(table["Subset"])
    conf = np.asarray(_combine(table["Confidence"]).to_numpy(zero_copy_only=False))
    if "InferredFrom" in table.column_names:
        inferred = np.asarray(
            pc.is_valid(_combine(table["InferredFrom"])).to_numpy(zero_copy_only=False)
        )
    else:
        inferred = np.zeros(len(conf), dtype=bool)
    order = _pair_order(keys, label_codes, labels)
    if order is not None:
        keys, label_codes = keys[order], label_codes[order]
        source_codes, subset_codes, conf, inferred = (
            source_codes[order],
            subset_codes[order],
            conf[order],
            inferred[order],
        )
    codes = (label_codes, source_codes, subset_codes)
    return LabelPartials(
        sources=[_source_partial(labels, sources, subsets, codes, conf, inferred)],
        kinds=[
            _kind_partial(
                keys,
                labels,
                sources,
                subsets,
                label_codes,
                source_codes,
                subset_codes,
                conf,
            )
        ],
    )


def _pair_order(keys, label_codes, labels) -> np.ndarray | None:
    """None if rows of each (image, label) are contiguous, else a sorting order."""
    r = ranks(labels)[label_codes]
    grouped = (keys[1:] > keys[:-1]) | ((keys[1:] == keys[:-1]) & (r[1:] >= r[:-1]))
    return None if grouped.all() else np.lexsort((r, keys))


def _source_partial(labels, sources, subsets, codes, conf, inferred) -> pa.Table:
    label_codes, source_codes, subset_codes = codes
    shape = (len(labels), len(subsets), len(sources))
    index = np.ravel_multi_index((label_codes, subset_codes, source_codes), shape)
    size = int(np.prod(shape))
    rows = np.bincount(index, minlength=size)
    positive = np.bincount(index[conf > 0], minlength=size)
    inferred_rows = np.bincount(index[inferred], minlength=size)
    micros = _micros(np.bincount(index, weights=_to_micros(conf), minlength=size))
    present = np.flatnonzero(rows)
    li, si, ri = np.unravel_index(present, shape)
    return pa.table(
        {
            "label": labels.take(pa.array(li)),
            "subset": subsets.take(pa.array(si)),
            "source": sources.take(pa.array(ri)),
            "rows": rows[present],
            "positive_images": positive[present],
            "negative_images": rows[present] - positive[present],
            "confidence_micros": micros[present],
            "inferred_rows": inferred_rows[present],
        },
        schema=SOURCE_PARTIAL,
    )


def _kind_partial(
    keys, labels, sources, subsets, label_codes, source_codes, subset_codes, conf
) -> pa.Table:
    n = len(keys)
    start = np.ones(n, dtype=bool)
    start[1:] = (keys[1:] != keys[:-1]) | (label_codes[1:] != label_codes[:-1])
    starts = np.flatnonzero(start)
    machine = _member(sources, MACHINE_SOURCES)[source_codes]
    human = _member(sources, HUMAN_SOURCES)[source_codes]
    # A kind's verdict per (image, label): its highest confidence, -1 if absent.
    best_machine = np.maximum.reduceat(np.where(machine, conf, -1.0), starts)
    best_human = np.maximum.reduceat(np.where(human, conf, -1.0), starts)
    # Humans overrule the machine: where a human verified the label, that is the
    # verdict of "any" (a rejected machine label is not a positive).
    best_any = np.where(best_human >= 0, best_human, best_machine)
    shape = (len(labels), len(subsets))
    cell = np.ravel_multi_index((label_codes[starts], subset_codes[starts]), shape)
    size = int(np.prod(shape))
    subset_names = subsets.to_pylist()
    validation = (
        subset_names.index("validation") if "validation" in subset_names else -1
    )
    on_validation = subset_codes[starts] == validation
    pieces = []
    for kind, best in (
        ("machine", best_machine),
        ("human", best_human),
        ("any", best_any),
    ):
        present = best >= 0
        positive = np.bincount(cell[present & (best > 0)], minlength=size)
        negative = np.bincount(cell[present & (best == 0)], minlength=size)
        micros = _micros(
            np.bincount(
                cell[present], weights=_to_micros(best[present]), minlength=size
            )
        )
        hist = np.zeros((size, len(_HIST)), dtype=np.int64)
        verified = np.zeros(size, dtype=np.int64)
        confirmed = np.zeros(size, dtype=np.int64)
        if kind == "machine":
            bins = np.clip(np.floor(best[present] * 10 + 1e-9), 0, 9).astype(np.int64)
            hist = np.bincount(
                cell[present] * len(_HIST) + bins, minlength=size * len(_HIST)
            ).reshape(size, len(_HIST))
            checked = present & (best_human >= 0) & on_validation
            verified = np.bincount(cell[checked], minlength=size)
            confirmed = np.bincount(cell[checked & (best_human > 0)], minlength=size)
        used = np.flatnonzero(positive + negative)
        li, si = np.unravel_index(used, shape)
        columns = {
            "label": labels.take(pa.array(li)),
            "subset": subsets.take(pa.array(si)),
            "kind": pa.array([kind] * len(used), pa.string()),
            "positive_images": positive[used],
            "negative_images": negative[used],
            "confidence_micros": micros[used],
        }
        columns.update({h: hist[used, i] for i, h in enumerate(_HIST)})
        columns["verified"] = verified[used]
        columns["confirmed"] = confirmed[used]
        pieces.append(pa.table(columns, schema=KIND_PARTIAL))
    return pa.concat_tables(pieces)


def labels_of_images(images: pa.Table) -> pa.Table:
    """The labels table (ImageID, Source, LabelName, Confidence, Subset) of an
    images table's nested labels: statistics of a table read back from Parquet."""
    nested = _combine(images["labels"])
    rows = pc.list_parent_indices(nested)
    items = pc.list_flatten(nested)
    columns = {
        "ImageID": _combine(images["ImageID"]).take(rows),
        "Source": items.field("source"),
        "LabelName": items.field("label"),
        "Confidence": items.field("confidence"),
        "Subset": _combine(images["Subset"]).take(rows),
    }
    if items.type.get_field_index("inferred_from") >= 0:
        columns["InferredFrom"] = items.field("inferred_from")
    return pa.table(columns)


def trainable_set(stats: pa.Table) -> frozenset[str]:
    """The mids label_stats marks trainable."""
    return frozenset(stats.filter(stats["trainable"])["label"].to_pylist())


class LabelStatsCombineFn(beam.CombineFn):
    """Labels tables -> summed LabelPartials (small: a few rows per label)."""

    def create_accumulator(self) -> LabelPartials:
        return LabelPartials()

    def add_input(self, accumulator: LabelPartials, table: pa.Table) -> LabelPartials:
        return accumulator.add(fold_labels(table))

    def merge_accumulators(self, accumulators) -> LabelPartials:
        merged = LabelPartials()
        for accumulator in accumulators:
            merged.add(accumulator)
        return merged

    def compact(self, accumulator: LabelPartials) -> LabelPartials:
        return accumulator.compact()

    def extract_output(self, accumulator: LabelPartials) -> LabelPartials:
        return accumulator.compact()


def label_counts_table(partials: LabelPartials) -> pa.Table:
    """label_counts: one row per (label, subset, source)."""
    table = _sum_by(partials.sources, SOURCE_PARTIAL, 3)
    confidence = pc.divide(table["confidence_micros"].cast(pa.float64()), _MICROS)
    table = table.append_column("confidence_sum", confidence)
    return table.select(LABEL_COUNTS.names).cast(LABEL_COUNTS)


def label_stats_table(
    partials: LabelPartials, classes: pa.Table, rule: TrainableRule
) -> pa.Table:
    """label_stats: one row per label, with display names and `trainable`."""
    kinds = _sum_by(partials.kinds, KIND_PARTIAL, 3)
    label_values = (
        pc.unique(kinds["label"]).sort()
        if kinds.num_rows
        else pa.array([], pa.string())
    )
    n = len(label_values)
    row = np.asarray(pc.index_in(kinds["label"], value_set=label_values).to_numpy())
    subset = np.asarray(kinds["subset"].to_pylist(), dtype=object)
    kind = np.asarray(kinds["kind"].to_pylist(), dtype=object)
    columns: dict[str, object] = {"label": label_values}
    if classes.num_rows:
        where = pc.index_in(label_values, value_set=classes["LabelName"])
        columns["display_name"] = pc.take(classes["DisplayName"], where)
    else:
        columns["display_name"] = pa.nulls(n, pa.string())
    for name in ("positive", "negative"):
        values = kinds[f"{name}_images"].to_numpy()
        for s in SUBSETS:
            for k in ("machine", "human", "any"):
                out = np.zeros(n, dtype=np.int64)
                mask = (subset == s) & (kind == k)
                np.add.at(out, row[mask], values[mask])
                columns[f"{s}_{k}_{name}_images"] = out
    machine = kind == "machine"

    def machine_sum(column: str) -> np.ndarray:
        out = np.zeros(n, dtype=kinds[column].type.to_pandas_dtype())
        np.add.at(out, row[machine], kinds[column].to_numpy()[machine])
        return out

    machine_labels = machine_sum("positive_images") + machine_sum("negative_images")
    confidence_sum = machine_sum("confidence_micros") / _MICROS
    hist = np.stack([machine_sum(h) for h in _HIST], axis=1) if n else np.zeros((0, 10))
    verified, confirmed = machine_sum("verified"), machine_sum("confirmed")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(machine_labels > 0, confidence_sum / machine_labels, np.nan)
        precision = np.where(verified > 0, confirmed / verified, np.nan)
    columns["machine_labels"] = machine_labels
    columns["machine_confidence_mean"] = pa.array(mean, from_pandas=True)
    columns["machine_confidence_histogram"] = pa.array(
        hist.astype(np.int64).tolist(), pa.list_(pa.int64())
    )
    columns["machine_verified_validation"] = verified
    columns["machine_confirmed_validation"] = confirmed
    columns["machine_precision"] = pa.array(precision, from_pandas=True)
    columns["trainable"] = np.zeros(n, dtype=bool)
    sources = _sum_by(partials.sources, SOURCE_PARTIAL, 3)
    inferred = np.zeros(n, dtype=np.int64)
    where = np.asarray(
        pc.index_in(sources["label"], value_set=label_values).to_numpy(
            zero_copy_only=False
        )
    )
    np.add.at(inferred, where, sources["inferred_rows"].to_numpy())
    columns["inferred_labels"] = inferred
    columns["boxes"] = pa.nulls(n, pa.int64())
    columns["images_with_boxes"] = pa.nulls(n, pa.int64())
    stats = pa.table(columns, schema=LABEL_STATS)
    trainable = trainable_mask(stats, rule)
    return stats.set_column(
        stats.schema.get_field_index("trainable"),
        LABEL_STATS.field("trainable"),
        pa.array(trainable, pa.bool_()),
    )


def with_box_stats(
    stats: pa.Table, box_counts: list[pa.Table], classes: pa.Table
) -> pa.Table:
    """label_stats with `boxes` and `images_with_boxes` filled in (0 for a
    label without boxes); a label that only has boxes gets a row of its own
    (no image-level counts, not trainable) so that no box goes uncounted."""
    counts = _sum_by(box_counts, BOX_COUNTS, 1)
    missing = pc.invert(pc.is_in(counts["label"], value_set=stats["label"]))
    extra = counts.filter(missing)["label"]
    if len(extra):
        blank = {
            f.name: pa.array(np.zeros(len(extra), np.int64))
            if f.type == pa.int64() and not f.nullable
            else pa.array(np.zeros(len(extra), bool))
            if f.name == "trainable"
            else pa.nulls(len(extra), f.type)
            for f in LABEL_STATS
        }
        blank["label"] = extra
        if classes.num_rows:
            blank["display_name"] = pc.take(
                classes["DisplayName"],
                pc.index_in(extra, value_set=classes["LabelName"]),
            )
        stats = pa.concat_tables([stats, pa.table(blank, schema=LABEL_STATS)]).sort_by(
            "label"
        )
    where = pc.index_in(stats["label"], value_set=counts["label"])
    for name in ("boxes", "images_with_boxes"):
        values = pc.fill_null(pc.take(counts[name], where), 0)
        i = LABEL_STATS.get_field_index(name)
        stats = stats.set_column(i, LABEL_STATS.field(name), values)
    return stats


def trainable_labels_csv(stats: pa.Table) -> str:
    """LabelName,DisplayName of the trainable labels, sorted by LabelName."""
    picked = stats.filter(stats["trainable"])
    lines = ["LabelName,DisplayName"]
    for label, name in zip(
        picked["label"].to_pylist(), picked["display_name"].to_pylist(), strict=True
    ):
        lines.append(csv_line([label, name or ""]))
    return "\n".join(lines) + "\n"


class ComputeLabelStats(beam.PTransform):
    """Labels tables -> the statistics tables.

    Input: PCollection[pa.Table] (labels tables, as JoinLabelsToImages writes
    them). Side inputs: class names; `box_counts` (PCollection of BOX_COUNTS
    tables, or None when the run reads no boxes). Output dict, each a
    PCollection with one element: label_counts (pa.Table), label_stats
    (pa.Table), trainable_csv (str).
    """

    def __init__(self, rule: TrainableRule, classes, box_counts=None) -> None:
        super().__init__()
        self._rule = rule
        self._classes = classes
        self._box_counts = box_counts

    def expand(self, tables):
        partials = tables | "SumLabelPartials" >> beam.CombineGlobally(
            LabelStatsCombineFn()
        )
        counts = partials | "LabelCountsTable" >> beam.Map(
            label_counts_table
        ).with_output_types(pa.Table)
        stats = partials | "LabelStatsTable" >> beam.Map(
            label_stats_table, beam.pvalue.AsSingleton(self._classes), rule=self._rule
        ).with_output_types(pa.Table)
        if self._box_counts is not None:
            stats = stats | "JoinBoxStats" >> beam.Map(
                with_box_stats,
                beam.pvalue.AsList(self._box_counts),
                beam.pvalue.AsSingleton(self._classes),
            ).with_output_types(pa.Table)
        trainable = stats | "TrainableList" >> beam.Map(
            trainable_labels_csv
        ).with_output_types(str)
        return {
            "label_counts": counts,
            "label_stats": stats,
            "trainable_csv": trainable,
        }
