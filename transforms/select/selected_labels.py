"""LabelsOfSelected: the flat labels table of the selected images only.

Labels and selected images are both keyed by join bucket, so each bucket's
labels are filtered by that bucket's selected ImageIDs: one small group per
bucket, the label rows keep every column (extras included).
"""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.transforms.common.arrow_util import image_ids_of


def _labels_of_bucket(element):
    bucket, grouped = element
    selected = list(grouped["selected"])
    labels = list(grouped["labels"])
    if not selected or not labels:
        return
    ids = pa.concat_tables(selected)["ImageID"].combine_chunks()
    table = pa.concat_tables(labels)
    kept = table.filter(pc.is_in(table["ImageID"], value_set=ids))
    if kept.num_rows:
        yield bucket, kept


class LabelsOfSelected(beam.PTransform):
    """{"labels": (bucket, labels table), "selected": (bucket, images table)}
    -> (bucket, labels table) of the selected images."""

    def expand(
        self, inputs: dict[str, beam.PCollection[tuple[int, pa.Table]]]
    ) -> beam.PCollection[tuple[int, pa.Table]]:
        typed = tuple[int, pa.Table]
        ids = inputs["selected"] | "SelectedImageIds" >> beam.Map(
            image_ids_of
        ).with_output_types(typed)
        return (
            {"labels": inputs["labels"], "selected": ids}
            | "GroupByBucket" >> beam.CoGroupByKey()
            | "KeepSelected" >> beam.FlatMap(_labels_of_bucket).with_output_types(typed)
        )
