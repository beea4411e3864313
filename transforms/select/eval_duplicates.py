"""DropEvalDuplicates: train images that duplicate a validation or test image
leave the selection (--drop-eval-duplicates), each one counted with its reason
(transforms/select/leakage.py says which, and why).

The MD5s of the validation and test images are gathered from every bucket as
Arrow arrays (one small table per bucket, merged into one array of distinct
values: the eval subsets are a few percent of a release) and given to every
bucket as a side input; a train row is then dropped by one `is_in` per bucket.
"""

from __future__ import annotations

import logging

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.elements import DROPPED, Count
from oibeam.transforms.common.metrics import NAMESPACE
from oibeam.transforms.select.leakage import MD5, REASONS, drop_reasons, eval_md5s

_LOG = logging.getLogger(__name__)
_NO_EVAL_IMAGES = (
    "--drop-eval-duplicates: the inputs have no validation or test image with "
    "an OriginalMD5, so no train image duplicates one by its MD5"
)


class DistinctMd5sFn(beam.CombineFn):
    """One-column tables of MD5s -> one array of the distinct MD5s, sorted.

    The accumulator holds each MD5 once: it is bounded by the validation and
    test images of the release, not by its size."""

    def create_accumulator(self) -> pa.Array:
        return pa.array([], pa.string())

    def add_input(self, accumulator: pa.Array, table: pa.Table) -> pa.Array:
        return _distinct([accumulator, *table[MD5].chunks])

    def merge_accumulators(self, accumulators) -> pa.Array:
        return _distinct(list(accumulators))

    def compact(self, accumulator: pa.Array) -> pa.Array:
        return accumulator

    def extract_output(self, accumulator: pa.Array) -> pa.Array:
        return accumulator.take(pc.sort_indices(accumulator))


def _distinct(arrays: list[pa.Array]) -> pa.Array:
    return pc.unique(pa.chunked_array(arrays, pa.string()).combine_chunks())


def _eval_md5s_of(element: tuple[int, pa.Table]) -> pa.Table:
    return eval_md5s(element[1])


def _say_if_none(md5s: pa.Array) -> int:
    if not len(md5s):
        _LOG.warning(_NO_EVAL_IMAGES)
    else:
        _LOG.info(
            "--drop-eval-duplicates: %d distinct OriginalMD5s of validation "
            "and test images",
            len(md5s),
        )
    return len(md5s)


class _DropEvalDuplicatesFn(beam.DoFn):
    """(bucket, images table) -> (bucket, the rows kept); tagged 'counts':
    Count(DROPPED, reason, images) for every reason, 0 included; tagged
    'dropped': (bucket, the ImageIDs dropped), if any."""

    def setup(self) -> None:
        self._counters = {
            reason: beam.metrics.Metrics.counter(NAMESPACE, f"dropped_{reason}")
            for reason in REASONS
        }

    def process(self, element, md5s: pa.Array, listed: pa.Array):
        bucket, table = element
        keep, dropped = drop_reasons(table, md5s, listed)
        yield bucket, table.filter(pa.array(keep))
        if not keep.all():
            gone = table.select(["ImageID"]).filter(pa.array(~keep))
            yield beam.pvalue.TaggedOutput("dropped", (bucket, gone))
        for reason, n in dropped.items():
            self._counters[reason].inc(n)
            yield beam.pvalue.TaggedOutput("counts", Count(DROPPED, reason, n))


class DropEvalDuplicates(beam.PTransform):
    """PCollection[(bucket, images table)] -> {"images": (bucket, the rows
    kept), "counts": Count(DROPPED, reason, images), "dropped": (bucket,
    ImageIDs dropped), for a refresh's diff}.

    The validation and test rows of the input give the MD5s (so give it every
    image of the release, before any other selection); `listed` are the
    ImageIDs of train images a duplicates table marks (listed_train_ids; empty
    without --duplicates-from)."""

    def __init__(self, listed: pa.Array | None = None) -> None:
        super().__init__()
        self._listed = listed if listed is not None else pa.array([], pa.string())

    def expand(
        self, tables: beam.PCollection[tuple[int, pa.Table]]
    ) -> dict[str, beam.PCollection]:
        md5s = (
            tables
            | "EvalMd5s" >> beam.Map(_eval_md5s_of).with_output_types(pa.Table)
            | "DistinctEvalMd5s" >> beam.CombineGlobally(DistinctMd5sFn())
        )
        _ = md5s | "SayHowManyEvalMd5s" >> beam.Map(_say_if_none)
        listed = tables.pipeline | "ListedDuplicates" >> beam.Create([self._listed])
        # (bucket, pa.Table) of the rows kept; tagged Count per reason
        kept = tables | "DropTrainDuplicates" >> beam.ParDo(
            _DropEvalDuplicatesFn(),
            beam.pvalue.AsSingleton(md5s),
            beam.pvalue.AsSingleton(listed),
        ).with_outputs("counts", "dropped", main="images")
        return {"images": kept.images, "counts": kept.counts, "dropped": kept.dropped}
