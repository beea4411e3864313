"""JoinLabelsToImages: one row per image with its labels and boxes nested, and
labels with Subset.

Both sides are split by a stable digest of ImageID into a fixed number of
buckets; a bucket's rows wait in exchange files (see exchange.py) and each
bucket is joined in Arrow/NumPy (see bucket_join.py). No key is hot (ImageIDs
spread uniformly over buckets), nothing is per row in Python, memory is bounded
by one bucket, and every bucket writes the same rows on every run.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa

from oibeam.schemas.elements import BucketPiece, FileCount
from oibeam.schemas.tables import KEY
from oibeam.transforms.common.exchange import read_piece, write_piece
from oibeam.transforms.common.image_keys import bucket_of
from oibeam.transforms.common.metrics import NAMESPACE
from oibeam.transforms.common.progress import JOIN, PROGRESS
from oibeam.transforms.join.bucket_join import JoinSpec, join_bucket
from oibeam.transforms.read.csv_inputs import InputPlan

BUCKET_BYTES = 256 << 20
MAX_BUCKETS = 4096


def choose_buckets(input_bytes: int) -> int:
    """Buckets for a join over `input_bytes` of CSV: ~256 MiB each, at least 4."""
    return int(min(MAX_BUCKETS, max(4, -(-input_bytes // BUCKET_BYTES))))


def split_by_bucket(table: pa.Table, buckets: int):
    """(bucket, rows of that bucket) for each bucket present; row order kept."""
    which = bucket_of(table[KEY].to_numpy(), buckets)
    order = np.argsort(which, kind="stable")
    counts = np.bincount(which, minlength=buckets)
    table = table.take(pa.array(order))
    start = 0
    for bucket in np.flatnonzero(counts).tolist():
        count = int(counts[bucket])
        yield bucket, table.slice(start, count)
        start += count


class _ParkBucketsFn(beam.DoFn):
    """pa.Table with `key` -> (bucket, BucketPiece): one exchange file per bucket."""

    def __init__(self, exchange: str, buckets: int, side: str) -> None:
        self._exchange = exchange
        self._buckets = buckets
        self._side = side

    def process(self, table: pa.Table):
        for bucket, rows in split_by_bucket(table, self._buckets):
            yield bucket, write_piece(self._exchange, self._side, bucket, rows)


class _JoinBucketFn(beam.DoFn):
    """(bucket, [BucketPiece, ...]) -> joined tables.

    Outputs: main = (bucket, images table); 'labels' = (bucket, labels table);
    'errors' = pa.Table (ERRORS_INTERNAL); 'counts' = FileCount("rows");
    'box_counts' = pa.Table (BOX_COUNTS) when the run reads box files.
    """

    def __init__(
        self, plan: InputPlan, closure: pa.Table | None, progress_dir: str | None
    ) -> None:
        self._progress_dir = progress_dir
        files = {f.file_id: f for f in plan.files}
        self._range_file = {r.range_id: r.file_id for r in plan.ranges}
        self._spec = JoinSpec(
            image_extras=plan.image_extras,
            label_extras=plan.label_extras,
            range_columns={
                r.range_id: files[r.file_id].layout.columns
                for r in plan.ranges_of("images", "labels", "boxes")
            },
            with_boxes=bool(plan.of_kind("boxes")),
            closure=closure,
        )
        self._images = beam.metrics.Metrics.counter(NAMESPACE, "images_joined")
        self._labels = beam.metrics.Metrics.counter(NAMESPACE, "labels_joined")

    def process(self, element, classes: pa.Table):
        bucket, pieces = element
        sides: dict[str, list[pa.Table]] = {"images": [], "labels": [], "boxes": []}
        for piece in pieces:
            sides[piece.side].append(read_piece(piece))
        joined = join_bucket(
            sides["images"], sides["labels"], classes, self._spec, sides["boxes"]
        )
        self._images.inc(joined.images.num_rows)
        self._labels.inc(joined.labels.num_rows)
        if self._progress_dir:  # a bucket is a big step: say it at once
            PROGRESS.add(JOIN)
            PROGRESS.publish(self._progress_dir)
        yield bucket, joined.images
        yield beam.pvalue.TaggedOutput("labels", (bucket, joined.labels))
        if joined.errors.num_rows:
            yield beam.pvalue.TaggedOutput("errors", joined.errors)
        if joined.box_counts.num_rows:
            yield beam.pvalue.TaggedOutput("box_counts", joined.box_counts)
        per_file: dict[int, int] = {}
        for range_id, n in joined.rows_per_range.items():
            file_id = self._range_file[range_id]
            per_file[file_id] = per_file.get(file_id, 0) + n
        for file_id, n in sorted(per_file.items()):
            yield beam.pvalue.TaggedOutput("counts", FileCount(file_id, "rows", n))


class JoinLabelsToImages(beam.PTransform):
    """Joins label and box tables to image tables by ImageID.

    Input: {"images", "labels", "boxes": PCollection[pa.Table]} (internal
    schemas). Side input: class names (pa.Table LabelName, DisplayName).
    `exchange` is a directory for the bucket files (deleted by the caller when
    the run is done); `closure` (LabelName, Ancestor) expands labels to their
    ancestors; local runs give a `progress_dir` where buckets joined are
    counted for the progress line. Output dict: images / labels =
    PCollection[(bucket, pa.Table)], errors = PCollection[pa.Table], counts =
    PCollection[FileCount],
    box_counts = PCollection[pa.Table] (BOX_COUNTS, one per bucket with boxes).
    """

    def __init__(
        self,
        plan: InputPlan,
        buckets: int,
        classes,
        exchange: str,
        closure: pa.Table | None = None,
        progress_dir: str | None = None,
    ) -> None:
        super().__init__()
        self._progress_dir = progress_dir
        self._plan = plan
        self._buckets = buckets
        self._classes = classes
        self._exchange = exchange
        self._closure = closure

    def expand(
        self, inputs: dict[str, beam.PCollection[pa.Table]]
    ) -> dict[str, beam.PCollection]:
        parked = [
            inputs[side]
            | f"Park{side.title()}"
            >> beam.ParDo(
                _ParkBucketsFn(self._exchange, self._buckets, side)
            ).with_output_types(tuple[int, BucketPiece])
            for side in ("images", "labels", "boxes")
            if side in inputs
        ]
        joined = (
            parked
            | "MergeSides" >> beam.Flatten()
            | "GroupByBucket" >> beam.GroupByKey()
            | "JoinBuckets"
            >> beam.ParDo(
                _JoinBucketFn(self._plan, self._closure, self._progress_dir),
                beam.pvalue.AsSingleton(self._classes),
            )
            .with_output_types(
                tuple[int, pa.Table],
                labels=tuple[int, pa.Table],
                errors=pa.Table,
                counts=FileCount,
                box_counts=pa.Table,
            )
            .with_outputs("labels", "errors", "counts", "box_counts", main="images")
        )
        return {
            "images": joined.images,
            "labels": joined.labels,
            "errors": joined.errors,
            "counts": joined.counts,
            "box_counts": joined.box_counts,
        }
