"""SelectImages: which images to fetch, decided on whole tables, deterministically.

An image qualifies through its labels: a label row counts when its confidence
is > 0 (a human 0 is a verified negative and never selects) and >= the
minimum, its source is of the wanted kind, and its label is one of the wanted
labels (and trainable, with trainable_only). Without any label condition every
image of the wanted subsets qualifies. Sampling, per-label caps and the overall
limit rank images by a salted stable digest of the ImageID, so the same inputs
select the same images on every run, on any runner, in any order.
"""

from __future__ import annotations

import difflib

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.elements import LABEL, Count
from oibeam.schemas.releases import HUMAN_SOURCES, MACHINE_SOURCES
from oibeam.transforms.common.arrow_util import combine as _combine
from oibeam.transforms.common.image_keys import mix64, parse_image_ids
from oibeam.transforms.select.selection import Selection

_SALT = np.uint64(0x5E1EC7ED0DDBA11)  # selection digests differ from bucket/shard ones
_ALL = "*"


def selection_digest(image_ids) -> np.ndarray:
    """The stable rank of each ImageID for sampling, caps and limits."""
    keys, _ = parse_image_ids(_combine(image_ids))
    return mix64(keys ^ _SALT)


def qualifying_labels(
    table: pa.Table, selection: Selection, trainable: frozenset[str] | None
) -> tuple[np.ndarray, pa.Array]:
    """(row index, label) of every label row that qualifies its image."""
    nested = _combine(table["labels"])
    rows = np.asarray(pc.list_parent_indices(nested).to_numpy(), dtype=np.int64)
    items = pc.list_flatten(nested)
    label = items.field("label")
    confidence = items.field("confidence").to_numpy(zero_copy_only=False)
    keep = (confidence > 0) & (confidence >= selection.min_confidence)
    source = items.field("source")
    human = pc.is_in(source, pa.array(sorted(HUMAN_SOURCES))).to_numpy(
        zero_copy_only=False
    )
    if selection.source == "machine":
        keep &= pc.is_in(source, pa.array(sorted(MACHINE_SOURCES))).to_numpy(
            zero_copy_only=False
        )
    elif selection.source == "human":
        keep &= human
    else:  # any: where a human verified the label, the machine's row does not count
        codes = pc.dictionary_encode(label).indices.to_numpy(zero_copy_only=False)
        pair = rows * (int(codes.max(initial=0)) + 1) + codes
        keep &= human | ~np.isin(pair, pair[human])
    if selection.labels:
        wanted = pa.array(selection.labels, pa.string())
        keep &= pc.is_in(label, wanted).to_numpy(zero_copy_only=False)
    if selection.trainable_only:
        allowed = pa.array(sorted(trainable or ()), pa.string())
        keep &= pc.is_in(label, allowed).to_numpy(zero_copy_only=False)
    where = np.flatnonzero(keep)
    return rows[where], label.take(pa.array(where))


def images_per_label(
    element: tuple[int, pa.Table], selection: Selection, trainable=None
) -> list[Count]:
    """Count(LABEL, mid, images) for each --label: how many of the selected
    images (one bucket) it qualified, 0 included (so the run can say which
    label selected nothing)."""
    _, table = element
    rows, label = qualifying_labels(table, selection, trainable)
    pairs = pa.table({"row": pa.array(rows), "label": label}).group_by("label")
    found = pairs.aggregate([("row", "count_distinct")])
    per_label = dict(
        zip(
            found["label"].to_pylist(),
            found["row_count_distinct"].to_pylist(),
            strict=True,
        )
    )
    return [Count(LABEL, mid, per_label.get(mid, 0)) for mid in selection.labels]


def candidates(
    table: pa.Table, selection: Selection, trainable: frozenset[str] | None = None
) -> pa.Table:
    """The rows that pass every per-image condition (before caps and limit)."""
    keep = np.ones(table.num_rows, dtype=bool)
    if selection.subsets:
        keep &= pc.is_in(
            table["Subset"], pa.array(selection.subsets, pa.string())
        ).to_numpy(zero_copy_only=False)
    if selection.sample is not None and selection.sample < 1.0:
        cut = np.uint64(min(int(selection.sample * 2.0**64), 2**64 - 1))
        keep &= selection_digest(table["ImageID"]) < cut
    if selection.by_label:
        rows, _ = qualifying_labels(table, selection, trainable)
        has = np.zeros(table.num_rows, dtype=bool)
        has[rows] = True
        keep &= has
    return table.filter(pa.array(keep))


def rank_pairs(
    table: pa.Table, selection: Selection, trainable, per_label: bool
) -> pa.Table:
    """(group, digest) pairs to cap: per qualifying label, or one group `*`."""
    digest = selection_digest(table["ImageID"])
    if not per_label:
        return pa.table(
            {
                "group": pa.array([_ALL] * len(digest), pa.string()),
                "digest": pa.array(digest, pa.uint64()),
            }
        )
    rows, label = qualifying_labels(table, selection, trainable)
    return pa.table({"group": label, "digest": pa.array(digest[rows], pa.uint64())})


class SmallestPerGroupFn(beam.CombineFn):
    """Tables of (group, digest) -> {group: the n-th smallest digest, or the
    largest when a group has fewer}: keeping digests <= it keeps n per group."""

    def __init__(self, n: int) -> None:
        self._n = n

    def create_accumulator(self) -> pa.Table:
        return pa.table(
            {"group": pa.array([], pa.string()), "digest": pa.array([], pa.uint64())}
        )

    def add_input(self, accumulator: pa.Table, table: pa.Table) -> pa.Table:
        return self._compact(pa.concat_tables([accumulator, table]))

    def merge_accumulators(self, accumulators) -> pa.Table:
        return self._compact(pa.concat_tables(list(accumulators)))

    def _compact(self, table: pa.Table) -> pa.Table:
        table = table.sort_by([("group", "ascending"), ("digest", "ascending")])
        groups = _combine(table["group"])
        first = np.ones(len(groups), dtype=bool)
        if len(groups) > 1:
            first[1:] = pc.not_equal(groups[1:], groups[:-1]).to_numpy(
                zero_copy_only=False
            )
        starts = np.flatnonzero(first)
        sizes = np.diff(np.append(starts, len(groups)))
        rank = np.arange(len(groups)) - np.repeat(starts, sizes)
        return table.filter(pa.array(rank < self._n))

    def extract_output(self, accumulator: pa.Table) -> dict[str, int]:
        table = self._compact(accumulator)
        cutoffs = table.group_by("group").aggregate([("digest", "max")])
        return dict(
            zip(
                cutoffs["group"].to_pylist(),
                cutoffs["digest_max"].to_pylist(),
                strict=True,
            )
        )


def within_cutoffs(
    table: pa.Table,
    cutoffs: dict[str, int],
    selection: Selection,
    trainable,
    per_label: bool,
) -> pa.Table:
    """The rows whose digest is within their group's cutoff (any label, per label)."""
    digest = selection_digest(table["ImageID"])
    if not per_label:
        cut = cutoffs.get(_ALL)
        keep = (
            digest <= np.uint64(cut) if cut is not None else np.zeros(len(digest), bool)
        )
        return table.filter(pa.array(keep))
    rows, label = qualifying_labels(table, selection, trainable)
    groups = pa.array(list(cutoffs), pa.string())
    values = np.array(list(cutoffs.values()), dtype=np.uint64)
    where = pc.fill_null(pc.index_in(label, value_set=groups), -1).to_numpy()
    known = where >= 0
    ok = np.zeros(len(rows), dtype=bool)
    ok[known] = digest[rows[known]] <= values[where[known]]
    keep = np.zeros(table.num_rows, dtype=bool)
    keep[rows[ok]] = True
    return table.filter(pa.array(keep))


def _keep_candidates(element, selection: Selection, trainable):
    bucket, table = element
    return bucket, candidates(table, selection, trainable)


def _rank(element, selection: Selection, trainable, per_label: bool) -> pa.Table:
    return rank_pairs(element[1], selection, trainable, per_label)


def _cap(element, cutoffs, selection: Selection, trainable, per_label: bool):
    bucket, table = element
    return bucket, within_cutoffs(table, cutoffs, selection, trainable, per_label)


class SelectImages(beam.PTransform):
    """PCollection[(bucket, pa.Table)] of images tables -> the selected rows.

    `trainable` is a side input (AsSingleton of a frozenset of mids) or None;
    it is used only with trainable_only. Caps and the limit each wait for a
    global pass over the candidates (a CombineGlobally of small tables).
    """

    def __init__(self, selection: Selection, trainable=None) -> None:
        super().__init__()
        self._selection = selection
        self._trainable = trainable

    def expand(
        self, tables: beam.PCollection[tuple[int, pa.Table]]
    ) -> beam.PCollection[tuple[int, pa.Table]]:
        selection = self._selection
        typed = tuple[int, pa.Table]
        picked = tables | "KeepCandidates" >> beam.Map(
            _keep_candidates, selection, self._trainable
        ).with_output_types(typed)
        steps = []
        if selection.max_per_label:
            steps.append(("PerLabel", selection.max_per_label, True))
        if selection.limit:
            steps.append(("Limit", selection.limit, False))
        for name, n, per_label in steps:
            cutoffs = (
                picked
                | f"Rank{name}"
                >> beam.Map(
                    _rank, selection, self._trainable, per_label
                ).with_output_types(pa.Table)
                | f"Cutoffs{name}" >> beam.CombineGlobally(SmallestPerGroupFn(n))
            )
            picked = picked | f"Cap{name}" >> beam.Map(
                _cap,
                beam.pvalue.AsSingleton(cutoffs),
                selection,
                self._trainable,
                per_label,
            ).with_output_types(typed)
        return picked


def resolve_labels(values: tuple[str, ...], names: dict[str, str]) -> tuple[str, ...]:
    """Mids for --label values: a mid is kept, a display name is looked up.

    Names are matched case-insensitively; a name shared by several mids, or
    unknown, is a ValueError that lists the candidates.
    """
    by_name: dict[str, list[str]] = {}
    for mid, name in names.items():
        by_name.setdefault(name.casefold(), []).append(mid)
    mids = []
    for value in values:
        if value.startswith("/"):
            mids.append(value)
            continue
        found = by_name.get(value.casefold(), [])
        if len(found) == 1:
            mids.append(found[0])
            continue
        if found:
            listed = ", ".join(f"{m} ({names[m]})" for m in sorted(found))
            raise ValueError(
                f"--label {value!r} is ambiguous: {listed}; give the mid instead"
            )
        close = difflib.get_close_matches(value.casefold(), list(by_name), n=5)
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        raise ValueError(f"--label {value!r}: no class has this name{hint}")
    return tuple(dict.fromkeys(mids))
