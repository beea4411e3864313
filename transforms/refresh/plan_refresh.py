"""PlanRefresh: compare the selected images with the previous snapshot's, bucket
by bucket, and decide what each image needs.

Per image (see schemas/snapshot.py for the vocabulary), in this order:
  OriginalMD5 or OriginalSize changed  -> fetch           (changed: bytes_changed)
  the fetch options differ             -> fetch           (options_changed)
  previously ok, bytes in a pooled shard -> share         (carried: unchanged)
  previously ok, bytes in its own shard  -> copy          (carried: unchanged)
  previously ok, bytes missing         -> fetch           (bytes_missing)
  previously a retryable failure       -> fetch           (retryable_failure)
  a final failure, with --retry-all    -> fetch           (retry_all)
  a final failure                      -> keep            (carried: final_failure)
An image whose labels or other columns changed is `changed` (metadata_changed)
whatever its action; new images are `added`, previous images not selected any
more are `removed` (action `drop`). The tasks carry the plan to FetchImages;
shared and kept images (`carried`) go to ShareShards instead, which writes
their rows without touching any bytes. The `dead` rows name what the previous
snapshot's pooled shards hold that this one does not (see
schemas/snapshot.DELETED): its images not shared now, and what it had already
listed as deleted.

Longer than most modules on purpose: the rules above and the columns each one
compares are one decision, kept in one place to be read top to bottom.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas import fetch as fetch_contract
from oibeam.schemas import snapshot as contract
from oibeam.schemas.elements import ACTION, CHANGE, Count
from oibeam.transforms.common.arrow_util import image_ids_of
from oibeam.transforms.common.exchange import read_piece
from oibeam.transforms.fetch.image_tasks import (
    COPY,
    FETCH,
    INTERNAL_FIELDS,
    KEEP,
    PLAN,
    PREV_INDEX,
    PREV_OFFSET,
    PREV_SIZE,
    PREV_TAR,
    PREVIOUS,
    SHARE,
)
from oibeam.transforms.refresh.same_values import same_values
from oibeam.transforms.shard.locations import pooled_mask

DROP = "drop"
_BYTES_COLUMNS = ("OriginalMD5", "OriginalSize")


@dataclass(frozen=True)
class RefreshRules:
    retry_all: bool = False  # [--retry-all]
    same_bytes: bool = True  # the previous snapshot's fetch options match ours


@dataclass
class Plan:
    """One bucket's plan: the tasks for FetchImages (`to_fetch`) and for
    ShareShards (`carried`: share and keep), the diff rows and the deleted
    rows."""

    tasks: pa.Table
    diff: pa.Table
    dead: pa.Table = field(default_factory=contract.DELETED.empty_table)

    @property
    def carried(self) -> pa.Table:
        return self.tasks.filter(_carried(self.tasks))

    @property
    def to_fetch(self) -> pa.Table:
        return self.tasks.filter(pc.invert(_carried(self.tasks)))

    def counts(self) -> list[Count]:
        """Images per change and per action."""
        counts = []
        for kind in (CHANGE, ACTION):
            values, n = np.unique(
                self.diff[kind].to_numpy(zero_copy_only=False), return_counts=True
            )
            counts += [
                Count(kind, str(v), int(c)) for v, c in zip(values, n, strict=True)
            ]
        return counts


def _source(field: pa.Field) -> str:
    """The previous snapshot's column an internal task column comes from."""
    if field.name in (PREV_TAR, PREV_OFFSET, PREV_SIZE, *PREV_INDEX.values()):
        return field.name  # attached by ReadPreviousSnapshot
    return field.name.removeprefix(PREVIOUS)  # a status column


def _previous_columns(previous: pa.Table | None, where, n: int) -> list[pa.Array]:
    """The internal task columns: `previous` rows at `where` (null: none)."""
    columns = []
    for f in INTERNAL_FIELDS[1:]:
        if previous is None or _source(f) not in previous.column_names:
            columns.append(pa.nulls(n, f.type))
        else:
            values = previous[_source(f)].combine_chunks().take(where)
            columns.append(values.cast(f.type))
    return columns


def _decide(current: pa.Table, previous: pa.Table, rules: RefreshRules):
    """(plan, change, reason, changed columns) of images present in both."""
    n = current.num_rows
    bytes_same = np.ones(n, dtype=bool)
    for column in _BYTES_COLUMNS:
        bytes_same &= same_values(current[column], _column(previous, column, current))
    differing = []
    for column in current.column_names:
        if column == "ImageID" or column in _BYTES_COLUMNS:
            continue
        differing.append(
            (column, ~same_values(current[column], _column(previous, column, current)))
        )
    status = previous["status"].to_numpy(zero_copy_only=False)
    retryable = pc.fill_null(previous["retryable"], False).to_numpy(
        zero_copy_only=False
    )
    have_bytes = pc.is_valid(previous[PREV_TAR]).to_numpy(zero_copy_only=False)
    ok = status == fetch_contract.OK
    choices = [
        (~bytes_same, FETCH, "bytes_changed"),
        (np.full(n, not rules.same_bytes), FETCH, "options_changed"),
        (ok & have_bytes, COPY, "unchanged"),
        (ok, FETCH, "bytes_missing"),
        (retryable, FETCH, "retryable_failure"),
        (np.full(n, rules.retry_all), FETCH, "retry_all"),
    ]
    conditions = [c for c, _, _ in choices]
    plan = np.select(conditions, [p for _, p, _ in choices], KEEP).astype(object)
    pooled = pooled_mask(previous["shard"]).to_numpy(zero_copy_only=False)
    plan[(plan == COPY) & pooled] = SHARE  # bytes stay in the pool, shared
    reason = np.select(conditions, [r for _, _, r in choices], "final_failure")
    metadata_changed = np.zeros(n, dtype=bool)
    for _, differs in differing:
        metadata_changed |= differs
    carried = (plan == COPY) | (plan == KEEP) | (plan == SHARE)
    change = np.select(
        [~bytes_same, metadata_changed, carried],
        ["changed", "changed", "carried"],
        "refetched",
    )
    reason = np.where(bytes_same & metadata_changed, "metadata_changed", reason)
    changed_columns = [
        [c for c, differs in differing if differs[i]] or None
        if metadata_changed[i]
        else None
        for i in range(n)
    ]
    return plan, change.astype(object), reason.astype(object), changed_columns


def _column(table: pa.Table, name: str, like: pa.Table) -> pa.Array:
    if name in table.column_names:
        return table[name]
    return pa.nulls(table.num_rows, like.schema.field(name).type)


def plan_refresh(
    current: pa.Table,
    previous: pa.Table | None,
    release_ids: pa.Array | None,
    rules: RefreshRules,
    deleted: pa.Table | None = None,
    dropped_ids: pa.Array | None = None,
) -> Plan:
    """Tasks (current rows + INTERNAL_FIELDS, by ImageID), diff rows (DIFF,
    current then removed images, each by ImageID) and dead rows (DELETED) of
    one bucket; `deleted`: the previous snapshot's deleted rows of it;
    `dropped_ids`: its images --drop-eval-duplicates dropped."""
    current = current.sort_by("ImageID").combine_chunks()
    if previous is None or not previous.num_rows:
        previous = None
    else:
        previous = previous.sort_by("ImageID").combine_chunks()
    n = current.num_rows
    plan = np.full(n, FETCH, dtype=object)
    change = np.full(n, "added", dtype=object)
    reason = np.full(n, "new", dtype=object)
    changed_columns: list = [None] * n
    removed = None
    if previous is None:
        internal = _previous_columns(None, None, n)
    else:
        where = pc.index_in(current["ImageID"], value_set=previous["ImageID"])
        internal = _previous_columns(previous, where, n)
        matched = np.flatnonzero(pc.is_valid(where).to_numpy(zero_copy_only=False))
        if len(matched):
            at = pa.array(matched)
            both = previous.take(where.take(at))
            decided = _decide(current.take(at), both, rules)
            plan[matched], change[matched], reason[matched] = decided[:3]
            for i, columns in zip(matched, decided[3], strict=True):
                changed_columns[i] = columns
        gone = pc.invert(pc.is_in(previous["ImageID"], value_set=current["ImageID"]))
        removed = previous.filter(gone)
    tasks = current
    tasks = tasks.append_column(INTERNAL_FIELDS[0], pa.array(plan, pa.string()))
    for f, values in zip(INTERNAL_FIELDS[1:], internal, strict=True):
        tasks = tasks.append_column(f, values)
    prev_status = tasks[PREVIOUS + "status"]
    prev_shard = tasks[PREVIOUS + "shard"]
    diff = _diff_table(
        current["ImageID"],
        change,
        plan,
        reason,
        changed_columns,
        prev_status,
        prev_shard,
    )
    if removed is not None and removed.num_rows:
        in_release = (
            pc.is_in(removed["ImageID"], value_set=release_ids).to_numpy(
                zero_copy_only=False
            )
            if release_ids is not None
            else np.ones(removed.num_rows, dtype=bool)
        )
        k = removed.num_rows
        why = np.where(in_release, "not_selected", "not_in_release").astype(object)
        if dropped_ids is not None and len(dropped_ids):
            was_dropped = pc.is_in(removed["ImageID"], value_set=dropped_ids)
            why[was_dropped.to_numpy(zero_copy_only=False)] = "eval_duplicate"
        diff = pa.concat_tables(
            [
                diff,
                _diff_table(
                    removed["ImageID"],
                    np.full(k, "removed", dtype=object),
                    np.full(k, DROP, dtype=object),
                    why,
                    [None] * k,
                    removed["status"],
                    removed["shard"],
                ),
            ]
        )
    return Plan(tasks, diff, _dead(tasks, previous, deleted))


def _carried(tasks: pa.Table) -> pa.Array:
    """Tasks this run does nothing for but write their rows: share, keep."""
    return pc.is_in(tasks[PLAN], value_set=pa.array([SHARE, KEEP]))


def _dead(tasks: pa.Table, previous: pa.Table | None, deleted) -> pa.Table:
    """What the previous snapshot's pooled shards hold that this snapshot
    does not share: its pooled images not shared now, and its deleted rows.
    (Rows of shards this snapshot no longer uses are dropped later.)"""
    pieces = [] if deleted is None else [deleted.select(contract.DELETED.names)]
    if previous is not None:
        shared = tasks.filter(pc.equal(tasks[PLAN], SHARE))["ImageID"]
        gone = pc.and_(
            pooled_mask(previous["shard"]),
            pc.invert(pc.is_in(previous["ImageID"], value_set=shared)),
        )
        pieces.append(previous.filter(gone).select(contract.DELETED.names))
    if not pieces:
        return contract.DELETED.empty_table()
    return pa.concat_tables([p.cast(contract.DELETED) for p in pieces]).sort_by(
        [("shard", "ascending"), ("ImageID", "ascending")]
    )


def _diff_table(ids, change, action, reason, changed_columns, status, shard):
    return pa.Table.from_arrays(
        [
            ids,
            pa.array(change, pa.string()),
            pa.array(action, pa.string()),
            pa.array(reason, pa.string()),
            pa.array(changed_columns, pa.list_(pa.string())),
            status,
            shard,
        ],
        schema=contract.DIFF,
    )


def _plan_alone(element, rules: RefreshRules):
    """(bucket, selected) with no previous snapshot: everything is added."""
    bucket, table = element
    yield from _outputs(bucket, plan_refresh(table, None, None, rules))


def _outputs(bucket: int, plan: Plan):
    yield bucket, plan.to_fetch
    carried = plan.carried
    if carried.num_rows:
        yield beam.pvalue.TaggedOutput("carried", (bucket, carried))
    if plan.dead.num_rows:
        yield beam.pvalue.TaggedOutput("dead", (bucket, plan.dead))
    yield beam.pvalue.TaggedOutput("diff", (bucket, plan.diff))
    for count in plan.counts():
        yield beam.pvalue.TaggedOutput("counts", count)


class _PlanBucketFn(beam.DoFn):
    """(bucket, {current, previous, release}) -> (bucket, tasks); tagged diff
    and counts. `schema` is the selected images' (for a bucket with none)."""

    def __init__(self, rules: RefreshRules, schema: pa.Schema) -> None:
        self._rules = rules
        self._schema = schema

    def process(self, element):
        bucket, grouped = element
        current = list(grouped["current"])
        pieces = list(grouped["previous"])
        deleted = list(grouped["deleted"])
        if not current and not pieces and not deleted:
            return
        release = list(grouped["release"])
        dropped = list(grouped.get("dropped", ()))
        plan = plan_refresh(
            pa.concat_tables(current) if current else self._schema.empty_table(),
            pa.concat_tables([read_piece(p) for p in pieces]) if pieces else None,
            pa.concat_tables(release)["ImageID"].combine_chunks() if release else None,
            self._rules,
            pa.concat_tables([read_piece(p) for p in deleted]) if deleted else None,
            pa.concat_tables(dropped)["ImageID"].combine_chunks() if dropped else None,
        )
        yield from _outputs(bucket, plan)


class PlanRefresh(beam.PTransform):
    """{"current": (bucket, selected images), "release": (bucket, every image
    of the input), "previous" and "deleted": (bucket, BucketPiece) of the
    previous snapshot's images and deleted rows, or absent; "dropped",
    optional: (bucket, ImageIDs --drop-eval-duplicates dropped)} -> dict: tasks =
    (bucket, pa.Table) for FetchImages, carried = (bucket, pa.Table) of tasks
    for ShareShards, dead = (bucket, pa.Table DELETED), diff = (bucket,
    pa.Table DIFF), counts = Count per change and per action. Without a
    previous snapshot every image is added, with no shuffle."""

    def __init__(self, rules: RefreshRules, schema: pa.Schema) -> None:
        super().__init__()
        self._rules = rules
        self._schema = schema

    def expand(
        self, inputs: dict[str, beam.PCollection]
    ) -> dict[str, beam.PCollection]:
        typed = tuple[int, pa.Table]
        if inputs.get("previous") is None:
            planned = inputs["current"] | "AllAdded" >> beam.FlatMap(
                _plan_alone, self._rules
            ).with_outputs("carried", "dead", "diff", "counts", main="tasks")
        else:
            release = inputs["release"] | "ReleaseImageIds" >> beam.Map(
                image_ids_of
            ).with_output_types(typed)
            planned = (
                {
                    "current": inputs["current"],
                    "previous": inputs["previous"],
                    "deleted": inputs["deleted"],
                    "release": release,
                    **({"dropped": inputs["dropped"]} if "dropped" in inputs else {}),
                }
                | "GroupByBucket" >> beam.CoGroupByKey()
                | "PlanBuckets"
                >> beam.ParDo(_PlanBucketFn(self._rules, self._schema)).with_outputs(
                    "carried", "dead", "diff", "counts", main="tasks"
                )
            )
        return {
            "tasks": planned.tasks,
            "carried": planned.carried,
            "dead": planned.dead,
            "diff": planned.diff,
            "counts": planned.counts,
        }
