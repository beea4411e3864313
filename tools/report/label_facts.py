"""What the report shows about labels, from a label_stats table (pure, no I/O).

"Images of a label" are summed over subsets: an image is in one subset and is
counted once per (label, subset, kind), so the sums count images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from oibeam.schemas.releases import SUBSETS
from oibeam.schemas.tables import HISTOGRAM_BINS
from oibeam.transforms.stats.trainable import PRESETS, TrainableRule, trainable_mask

KINDS = ("machine", "human", "any")
POSITIVE_COLUMNS = [f"{s}_{k}_positive_images" for s in SUBSETS for k in KINDS]
BOX_COLUMNS = ("boxes", "images_with_boxes")
# The label_stats columns the report reads (those a run lacks are skipped);
# precision and `trainable` are recomputed from them.
LABEL_STATS_COLUMNS = [
    "label",
    "display_name",
    *POSITIVE_COLUMNS,
    "machine_confidence_histogram",
    "machine_verified_validation",
    "machine_confirmed_validation",
    *BOX_COLUMNS,
]


def images_of(stats: pa.Table, kind: str) -> np.ndarray:
    """Per label: images with a positive label of `kind`, over every subset."""
    out = np.zeros(stats.num_rows, dtype=np.int64)
    for subset in SUBSETS:
        column = f"{subset}_{kind}_positive_images"
        if column in stats.column_names:
            out += np.asarray(stats[column].to_numpy(), dtype=np.int64)
    return out


@dataclass(frozen=True)
class PresetCount:
    name: str
    description: str
    labels: int
    is_run_rule: bool


@dataclass(frozen=True)
class LabelFacts:
    """Per-label arrays (aligned with `mids`) and the totals built from them."""

    mids: list[str]
    names: list[str | None]
    machine: np.ndarray  # images with a positive machine label
    human: np.ndarray  # images with a human-verified positive label
    images: np.ndarray  # images with a positive label of any kind
    validation_human: np.ndarray
    verified: np.ndarray  # machine labels human-verified on validation
    confirmed: np.ndarray
    precision: np.ndarray  # NaN where nothing was verified
    trainable: np.ndarray  # under the run's rule
    confidence_histogram: np.ndarray  # HISTOGRAM_BINS counts, over every label
    presets: list[PresetCount]
    boxes: np.ndarray | None  # None: the run has no box counts
    images_with_boxes: np.ndarray | None

    @property
    def count(self) -> int:
        return len(self.mids)

    def ranked(self) -> np.ndarray:
        """Label indices by images (most first), ties by mid: a stable order."""
        return np.lexsort((np.asarray(self.mids, dtype=object), -self.images))


def _histogram(stats: pa.Table) -> np.ndarray:
    total = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    if "machine_confidence_histogram" not in stats.column_names:
        return total
    for row in stats["machine_confidence_histogram"].to_pylist():
        if row:
            total[: len(row)] += np.asarray(row[:HISTOGRAM_BINS], dtype=np.int64)
    return total


def _ints(stats: pa.Table, column: str) -> np.ndarray:
    if column not in stats.column_names:
        return np.zeros(stats.num_rows, dtype=np.int64)
    return np.asarray(stats[column].fill_null(0).to_numpy(), dtype=np.int64)


def preset_counts(stats: pa.Table, rule: TrainableRule) -> list[PresetCount]:
    """Trainable labels under every preset, and under the run's rule if custom."""
    rules = dict(PRESETS)
    rules.setdefault(rule.name, rule)
    return [
        PresetCount(
            name,
            preset.describe(),
            int(trainable_mask(stats, preset).sum()) if stats.num_rows else 0,
            preset == rule,
        )
        for name, preset in rules.items()
    ]


def label_facts(stats: pa.Table, rule: TrainableRule) -> LabelFacts:
    """LabelFacts of a label_stats table (any subset of LABEL_STATS_COLUMNS)."""
    n = stats.num_rows
    verified = _ints(stats, "machine_verified_validation")
    confirmed = _ints(stats, "machine_confirmed_validation")
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(verified > 0, confirmed / verified, np.nan)
    names = (
        stats["display_name"].to_pylist()
        if "display_name" in stats.column_names
        else [None] * n
    )
    trainable = (trainable_mask(stats, rule) if n else np.zeros(0, dtype=bool)).astype(
        bool
    )
    # Box counts are null when the run read no box files.
    has_boxes = all(
        c in stats.column_names and stats[c].null_count < n for c in BOX_COLUMNS
    )
    return LabelFacts(
        mids=stats["label"].to_pylist(),
        names=names,
        machine=images_of(stats, "machine"),
        human=images_of(stats, "human"),
        images=images_of(stats, "any"),
        validation_human=_ints(stats, "validation_human_positive_images"),
        verified=verified,
        confirmed=confirmed,
        precision=precision,
        trainable=trainable,
        confidence_histogram=_histogram(stats),
        presets=preset_counts(stats, rule),
        boxes=_ints(stats, "boxes") if has_boxes else None,
        images_with_boxes=_ints(stats, "images_with_boxes") if has_boxes else None,
    )


@dataclass(frozen=True)
class InferredFacts:
    """Label rows the hierarchy expansion added (InferredFrom not null)."""

    rows: int  # every label row
    inferred: int
    by_label: dict[str, int]  # mid -> inferred rows, only where > 0


def inferred_from_counts(counts: pa.Table | None) -> InferredFacts | None:
    """From label_counts' `inferred_rows`; None when the run has no such column."""
    if counts is None or "inferred_rows" not in counts.column_names:
        return None
    per_label = counts.group_by("label", use_threads=False).aggregate(
        [("inferred_rows", "sum")]
    )
    by_label = {
        mid: int(n)
        for mid, n in zip(
            per_label["label"].to_pylist(),
            per_label["inferred_rows_sum"].to_pylist(),
            strict=True,
        )
        if n
    }
    rows = int(np.asarray(counts["rows"].to_numpy()).sum()) if counts.num_rows else 0
    return InferredFacts(rows, sum(by_label.values()), by_label)
