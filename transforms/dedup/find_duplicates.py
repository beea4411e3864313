"""FindDuplicates: images tables -> the run's `duplicates` table.

    images tables -> KEYS -> exact entries (digest) --> GroupByKey(bucket)
                          \\-> near entries (band)  --> GroupByKey(bucket)
        -> pairs per bucket (pairs.py) -> every pair, in one place
        -> groups (groups.py) -> one DUPLICATES table

Everything moves as Arrow tables of thousands of rows. Entries go to one of
`buckets` buckets by a stable digest of their digest or (band, band value),
so every copy of a digest, and every hash with a given band value, meets in
one bucket. Only the pairs (fewer than the images: copies of one digest or
hash pair in a star) are brought together for the union-find.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa

from oibeam.transforms.common.metrics import NAMESPACE
from oibeam.transforms.dedup import pairs as search
from oibeam.transforms.dedup.groups import concat_pairs, duplicate_rows
from oibeam.transforms.dedup.keys import duplicate_keys

DEFAULT_BUCKETS = 32
BUCKETED = tuple[int, pa.Table]


def _split(table: pa.Table, bucket: np.ndarray):
    """(bucket, rows) for each bucket present. Each bucket's rows are a copy:
    a slice would carry its parent's buffers (on the local runner 32 slices
    of a table held 32 times its bytes)."""
    order = np.argsort(bucket, kind="stable")
    bucket = bucket[order]
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(bucket)]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        yield int(bucket[start]), table.take(pa.array(order[start:end]))


class _BucketEntriesFn(beam.DoFn):
    """An images table -> (bucket, EXACT_ENTRIES) per bucket; tagged "near":
    (bucket, NEAR_ENTRIES) per bucket, when near duplicates are searched."""

    def __init__(self, distance: int | None, buckets: int) -> None:
        self._distance = distance
        self._buckets = buckets

    def process(self, images: pa.Table):
        keys = duplicate_keys(images)
        exact = search.exact_entries(keys)
        if exact.num_rows:
            yield from _split(exact, search.exact_buckets(exact, self._buckets))
        if self._distance is None:
            return
        near = search.band_entries(keys, self._distance)
        if near.num_rows:
            for element in _split(near, search.near_buckets(near, self._buckets)):
                yield beam.pvalue.TaggedOutput("near", element)


def _exact_pairs(element: tuple[int, list[pa.Table]]) -> pa.Table:
    return search.exact_pairs(pa.concat_tables(element[1]))


class _NearPairsFn(beam.DoFn):
    """(bucket, NEAR_ENTRIES tables) -> PAIRS within the distance."""

    def __init__(self, distance: int) -> None:
        self._distance = distance
        self._compared = beam.metrics.Metrics.counter(NAMESPACE, "near_compared")
        self._truncated = beam.metrics.Metrics.counter(NAMESPACE, "near_truncated")

    def process(self, element: tuple[int, list[pa.Table]]):
        found = search.near_pairs(pa.concat_tables(element[1]), self._distance)
        self._compared.inc(found.compared)
        self._truncated.inc(found.truncated)
        yield found.pairs


def _group(tables: list[pa.Table]) -> pa.Table:
    return duplicate_rows(concat_pairs(tables))


class FindDuplicates(beam.PTransform):
    """PCollection[pa.Table] of images tables (any part of a run's images
    table: with status columns after a fetch) -> PCollection with one
    pa.Table, the DUPLICATES rows. `distance` None: exact duplicates only
    (no hashes before a fetch); else near ones too, at most that many bits
    apart. Counters: near_compared (candidate pairs verified), near_truncated
    (rows of band values searched by window only, see pairs.py)."""

    def __init__(self, distance: int | None, buckets: int = DEFAULT_BUCKETS) -> None:
        super().__init__()
        if distance is not None and not 0 <= distance < 64:
            raise ValueError("the near-duplicate distance is 0..63 bits")
        self._distance = distance
        self._buckets = buckets

    def expand(self, images: beam.PCollection[pa.Table]) -> beam.PCollection[pa.Table]:
        entries = images | "BucketEntries" >> beam.ParDo(
            _BucketEntriesFn(self._distance, self._buckets)
        ).with_output_types(BUCKETED, near=BUCKETED).with_outputs("near", main="exact")
        # PAIRS tables
        pairs = [
            entries.exact
            | "GroupExactByBucket" >> beam.GroupByKey()
            | "ExactPairs" >> beam.Map(_exact_pairs).with_output_types(pa.Table)
        ]
        if self._distance is not None:
            pairs.append(
                entries.near
                | "GroupNearByBucket" >> beam.GroupByKey()
                | "NearPairs"
                >> beam.ParDo(_NearPairsFn(self._distance)).with_output_types(pa.Table)
            )
        return (
            pairs
            | "AllPairs" >> beam.Flatten()
            | "CollectPairs" >> beam.combiners.ToList()
            | "GroupDuplicates" >> beam.Map(_group).with_output_types(pa.Table)
        )
