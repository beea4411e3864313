"""The statistics tables from summed partials (pure Arrow/NumPy, no Beam):
label_counts, label_stats with box counts and the trainable flag, the
trainable labels CSV; and the labels table of an images table read back."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.releases import SOURCE_KINDS, SUBSETS
from oibeam.schemas.tables import BOX_COUNTS, LABEL_COUNTS, LABEL_STATS
from oibeam.transforms.common.arrow_util import combine as _combine
from oibeam.transforms.common.csv_text import csv_line
from oibeam.transforms.stats.partials import (
    HIST,
    KIND_PARTIAL,
    MICROS,
    SOURCE_PARTIAL,
    LabelPartials,
    sum_by,
)
from oibeam.transforms.stats.trainable import TrainableRule, trainable_mask


def label_counts_table(partials: LabelPartials) -> pa.Table:
    """label_counts: one row per (label, subset, source)."""
    table = sum_by(partials.sources, SOURCE_PARTIAL, 3)
    confidence = pc.divide(table["confidence_micros"].cast(pa.float64()), MICROS)
    table = table.append_column("confidence_sum", confidence)
    return table.select(LABEL_COUNTS.names).cast(LABEL_COUNTS)


def label_stats_table(
    partials: LabelPartials, classes: pa.Table, rule: TrainableRule
) -> pa.Table:
    """label_stats: one row per label, with display names and `trainable`."""
    kinds = _KindSums(sum_by(partials.kinds, KIND_PARTIAL, 3))
    columns: dict[str, object] = {
        "label": kinds.labels,
        "display_name": _display_names(kinds.labels, classes),
        **kinds.image_counts(),
        **kinds.machine_quality(),
        "trainable": np.zeros(kinds.n, dtype=bool),
        "inferred_labels": _inferred_labels(partials, kinds.labels),
        "boxes": pa.nulls(kinds.n, pa.int64()),
        "images_with_boxes": pa.nulls(kinds.n, pa.int64()),
    }
    stats = pa.table(columns, schema=LABEL_STATS)
    return stats.set_column(
        stats.schema.get_field_index("trainable"),
        LABEL_STATS.field("trainable"),
        pa.array(trainable_mask(stats, rule), pa.bool_()),
    )


class _KindSums:
    """KIND_PARTIAL summed over every bucket, indexed by label."""

    def __init__(self, kinds: pa.Table) -> None:
        self.table = kinds
        self.labels = (
            pc.unique(kinds["label"]).sort()
            if kinds.num_rows
            else pa.array([], pa.string())
        )
        self.n = len(self.labels)
        where = pc.index_in(kinds["label"], value_set=self.labels)
        self.row = np.asarray(where.to_numpy())  # each partial row's label
        self.subset = np.asarray(kinds["subset"].to_pylist(), dtype=object)
        self.kind = np.asarray(kinds["kind"].to_pylist(), dtype=object)

    def _sum(self, column: str, mask: np.ndarray, dtype=np.int64) -> np.ndarray:
        out = np.zeros(self.n, dtype=dtype)
        np.add.at(out, self.row[mask], self.table[column].to_numpy()[mask])
        return out

    def image_counts(self) -> dict[str, np.ndarray]:
        """{subset}_{kind}_{positive,negative}_images for every subset and kind."""
        return {
            f"{s}_{k}_{name}_images": self._sum(
                f"{name}_images", (self.subset == s) & (self.kind == k)
            )
            for name in ("positive", "negative")
            for s in SUBSETS
            for k in SOURCE_KINDS
        }

    def machine_quality(self) -> dict[str, object]:
        """How many machine labels, how confident, and how often humans
        confirmed them on validation images."""
        machine = self.kind == "machine"

        def total(column: str) -> np.ndarray:
            dtype = self.table[column].type.to_pandas_dtype()
            return self._sum(column, machine, dtype)

        labels = total("positive_images") + total("negative_images")
        confidence_sum = total("confidence_micros") / MICROS
        hist = (
            np.stack([total(h) for h in HIST], axis=1)
            if self.n
            else np.zeros((0, len(HIST)))
        )
        verified, confirmed = total("verified"), total("confirmed")
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(labels > 0, confidence_sum / labels, np.nan)
            precision = np.where(verified > 0, confirmed / verified, np.nan)
        return {
            "machine_labels": labels,
            "machine_confidence_mean": pa.array(mean, from_pandas=True),
            "machine_confidence_histogram": pa.array(
                hist.astype(np.int64).tolist(), pa.list_(pa.int64())
            ),
            "machine_verified_validation": verified,
            "machine_confirmed_validation": confirmed,
            "machine_precision": pa.array(precision, from_pandas=True),
        }


def _display_names(labels: pa.Array, classes: pa.Table) -> pa.Array:
    if not classes.num_rows:
        return pa.nulls(len(labels), pa.string())
    where = pc.index_in(labels, value_set=classes["LabelName"])
    return pc.take(classes["DisplayName"], where)


def _inferred_labels(partials: LabelPartials, labels: pa.Array) -> np.ndarray:
    """Rows of each label that the join inferred (ancestor expansion)."""
    sources = sum_by(partials.sources, SOURCE_PARTIAL, 3)
    inferred = np.zeros(len(labels), dtype=np.int64)
    where = pc.index_in(sources["label"], value_set=labels)
    np.add.at(
        inferred,
        np.asarray(where.to_numpy(zero_copy_only=False)),
        sources["inferred_rows"].to_numpy(),
    )
    return inferred


def with_box_stats(
    stats: pa.Table, box_counts: list[pa.Table], classes: pa.Table
) -> pa.Table:
    """label_stats with `boxes` and `images_with_boxes` filled in (0 for a
    label without boxes); a label that only has boxes gets a row of its own
    (no image-level counts, not trainable) so that no box goes uncounted."""
    counts = sum_by(box_counts, BOX_COUNTS, 1)
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


def trainable_set(stats: pa.Table) -> frozenset[str]:
    """The mids label_stats marks trainable."""
    return frozenset(stats.filter(stats["trainable"])["label"].to_pylist())


def labels_of_images(images: pa.Table) -> pa.Table:
    """The labels table (ImageID, Source, LabelName, Confidence, Subset) of an
    images table's nested labels: statistics of a table read back from Parquet."""
    nested = _combine(images["labels"])
    parents = pc.list_parent_indices(nested)
    items = pc.list_flatten(nested)
    columns = {
        "ImageID": _combine(images["ImageID"]).take(parents),
        "Source": items.field("source"),
        "LabelName": items.field("label"),
        "Confidence": items.field("confidence"),
        "Subset": _combine(images["Subset"]).take(parents),
    }
    if items.type.get_field_index("inferred_from") >= 0:
        columns["InferredFrom"] = items.field("inferred_from")
    return pa.table(columns)
