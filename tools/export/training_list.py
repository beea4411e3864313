"""Training lists in the Tencent ML-Images format, one file per Subset.

    tencent/classes.tsv    mid<TAB>display name, sorted by mid: the class index
                           of a label is its 0-based line number
    tencent/<subset>.txt   per ok image with a positive label, in ImageID order:
                           shards/<shard>/<member><TAB>index:confidence<TAB>...

Labels are in class order; a confidence is written as the shortest decimal
that reads back as the same double (`1`, `0.9`). A positive is a label row
with confidence > 0 and >= `min_confidence` from a source of the `source`
kind; with `any`, a human verdict on a label overrules the machine's (a human
Confidence 0 is a verified negative: never a positive, and it silences the
machine's row). Several rows for one label keep the highest confidence. The
classes are the labels positive on at least one exported image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.releases import HUMAN_SOURCES, MACHINE_SOURCES, SOURCE_KINDS
from oibeam.tools.export.base import (
    PATH,
    Exporter,
    OutputFile,
    WrittenExport,
    by_subset,
    merge_names,
    subset_name,
)
from oibeam.transforms.common.arrow_util import combine

CLASSES_FILE = "classes.tsv"


@dataclass(frozen=True)
class LabelRule:
    """Which label rows are positives of a training list."""

    source: str = "any"
    min_confidence: float = 0.0
    allowed: frozenset[str] | None = None  # the trainable set, with --trainable-only

    def __post_init__(self) -> None:
        if self.source not in SOURCE_KINDS:
            raise ValueError(f"source must be one of {', '.join(SOURCE_KINDS)}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError("min_confidence must be within [0, 1]")


def _mask(array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False))


def positive_labels(labels, rule: LabelRule) -> pa.Table:
    """The positives of a `labels` column (list<struct label, display_name,
    source, confidence, ...>): a table (row, label, display_name, confidence),
    one row per (image row, label), sorted by (row, label)."""
    nested = combine(labels)
    rows = np.asarray(pc.list_parent_indices(nested).to_numpy(), dtype=np.int64)
    items = pc.list_flatten(nested)
    label, source = items.field("label"), items.field("source")
    confidence = items.field("confidence")
    keep = _mask(pc.greater(confidence, 0.0))
    keep &= _mask(pc.greater_equal(confidence, rule.min_confidence))
    human = _mask(pc.is_in(source, pa.array(sorted(HUMAN_SOURCES))))
    if rule.source == "machine":
        keep &= _mask(pc.is_in(source, pa.array(sorted(MACHINE_SOURCES))))
    elif rule.source == "human":
        keep &= human
    elif human.any():  # any: the machine's row counts only without a human verdict
        codes = np.asarray(
            pc.dictionary_encode(label).indices.to_numpy(zero_copy_only=False),
            dtype=np.int64,
        )
        pair = rows * (int(codes.max(initial=0)) + 1) + codes
        keep &= human | ~np.isin(pair, pair[human])
    if rule.allowed is not None:
        keep &= _mask(pc.is_in(label, pa.array(sorted(rule.allowed), pa.string())))
    where = pa.array(np.flatnonzero(keep))
    found = pa.table(
        {
            "row": pa.array(rows).take(where),
            "label": label.take(where),
            "display_name": items.field("display_name").take(where),
            "confidence": confidence.take(where),
        }
    )
    grouped = found.group_by(["row", "label"], use_threads=False).aggregate(
        [("confidence", "max"), ("display_name", "min")]
    )
    return grouped.rename_columns(
        {"confidence_max": "confidence", "display_name_min": "display_name"}
    ).sort_by([("row", "ascending"), ("label", "ascending")])


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


class TrainingList(Exporter):
    """Writes tencent/classes.tsv and tencent/<subset>.txt."""

    name = "tencent"
    columns = ("Subset", "labels")

    def __init__(self, rule: LabelRule) -> None:
        super().__init__()
        self._rule = rule
        self._names: dict[str, str | None] = {}
        self._classes = pa.array([], pa.string())
        self._lists: dict[str, OutputFile] = {}
        self.unlabelled = 0  # ok images without a positive label: no line

    def observe(self, table: pa.Table) -> None:
        positives = positive_labels(table["labels"], self._rule)
        merge_names(self._names, positives["label"], positives["display_name"])

    def start(self, directory: str) -> None:
        self._directory = directory
        labels = sorted(self._names)
        self._classes = pa.array(labels, pa.string())
        classes = self.open(f"{directory}/{CLASSES_FILE}", "classes")
        classes.write(
            "".join(f"{m}\t{_clean(self._names[m])}\n" for m in labels), len(labels)
        )

    def write(self, table: pa.Table) -> None:
        positives = positive_labels(table["labels"], self._rule)
        index = pc.index_in(positives["label"], value_set=self._classes)
        entries = pc.binary_join_element_wise(
            pc.cast(index, pa.string()),
            pc.cast(positives["confidence"], pa.string()),
            ":",
        )
        rows = np.asarray(positives["row"].to_numpy(), dtype=np.int64)
        counts = np.bincount(rows, minlength=table.num_rows)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        per_image = pa.ListArray.from_arrays(pa.array(offsets), combine(entries))
        lines = pc.binary_join_element_wise(
            combine(table[PATH]), pc.binary_join(per_image, "\t"), "\t"
        )
        labelled = counts > 0
        self.unlabelled += int((~labelled).sum())
        subsets = combine(table["Subset"])
        for subset in pc.unique(subsets).to_pylist():
            same = (
                _mask(pc.is_null(subsets))
                if subset is None
                else _mask(pc.equal(subsets, subset))
            )
            chosen = lines.filter(pa.array(same & labelled))
            if not len(chosen):
                continue
            name = f"{subset_name(subset)}.txt"
            if name not in self._lists:
                self._lists[name] = self.open(f"{self._directory}/{name}")
            self._lists[name].write("\n".join(chosen.to_pylist()) + "\n", len(chosen))

    def finish(self) -> list[WrittenExport]:
        return by_subset(self.commit_all())
