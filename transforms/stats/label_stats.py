"""ComputeLabelStats: label counts, statistics and the trainable set.

Labels tables are folded into small partials (partials.py), summed by a
CombineFn whose merge only sums, and turned into the tables (tables.py).
"""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from oibeam.transforms.stats.partials import LabelPartials, fold_labels
from oibeam.transforms.stats.tables import (
    label_counts_table,
    label_stats_table,
    trainable_labels_csv,
    with_box_stats,
)
from oibeam.transforms.stats.trainable import TrainableRule


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

    def expand(self, tables: beam.PCollection[pa.Table]) -> dict[str, beam.PCollection]:
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
