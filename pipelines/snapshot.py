"""`oibeam snapshot`: a versioned dataset snapshot in one pipeline, published
atomically.

ReadOpenImagesCsv -> JoinLabelsToImages -> images, labels (bucketed)
    -> ComputeLabelStats -> label_counts, label_stats, trainable_labels.csv
    -> SelectImages -> PlanRefresh (against ReadPreviousSnapshot, if any)
    -> FetchImages (fetch / copy / keep) -> tables/images, shards/index, and
       new shards in ROOT/pool/ID/
    -> ShareShards (share: bytes left in the pool) -> tables/images,
       shards/index, tables/deleted
    -> images parts of both -> FindDuplicates -> tables/duplicates
    -> LabelsOfSelected -> tables/labels;  PlanRefresh -> tables/diff
    -> WriteManifest (last; sweeps what an interrupted attempt left)
    -> PublishSnapshot: _SUCCESS, then ROOT/LATEST
then, from the launcher, report.html (tools/report; --no-report skips it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import TestOptions

from oibeam.pipelines import stages
from oibeam.pipelines.beam_options import for_fetching, pipeline_options
from oibeam.pipelines.eval_duplicates import listed_duplicates
from oibeam.pipelines.launch import (
    check_workers_see_paths,
    launched,
    plan_csv_inputs,
    resolve_labels_of,
    run_info,
)
from oibeam.pipelines.layout import TABLES, OutputExists, RunLayout, UsageError
from oibeam.pipelines.options.beam_commands import SnapshotConfig
from oibeam.pipelines.snapshot_outcome import Outcome, write_report
from oibeam.pipelines.unchanged_refresh import refresh_key
from oibeam.schemas import fetch as fetch_schema
from oibeam.schemas import snapshot as snapshot_schema
from oibeam.schemas import tables as schemas
from oibeam.transforms.common.exchange import remove_exchange
from oibeam.transforms.common.files import absolute
from oibeam.transforms.common.filesystem import holds_anything
from oibeam.transforms.publish.claim import claimed, wait_for_gc
from oibeam.transforms.publish.manifest import WriteManifest
from oibeam.transforms.publish.publish_snapshot import (
    Latest,
    check_publishable,
    read_latest,
    snapshot_complete,
)
from oibeam.transforms.publish.publish_step import PublishSnapshot
from oibeam.transforms.read.csv_inputs import InputPlan
from oibeam.transforms.refresh.plan_refresh import PlanRefresh, RefreshRules
from oibeam.transforms.refresh.previous_snapshot import (
    NotASnapshot,
    PreviousSnapshot,
    ReadPreviousSnapshot,
)
from oibeam.transforms.refresh.share_shards import ShareShards
from oibeam.transforms.select.selected_labels import LabelsOfSelected

_LOG = logging.getLogger(__name__)
SNAPSHOT_TABLES = (
    "images",
    "labels",
    "label_counts",
    "label_stats",
    "errors",
    "duplicates",
    "diff",
    "deleted",
)


def pool_dir(root: str, snapshot_id: str) -> str:
    """Where snapshot `snapshot_id` writes its shards: ROOT/pool/ID."""
    return f"{root.rstrip('/')}/{snapshot_schema.POOL}/{snapshot_id}"


@dataclass(frozen=True)
class Launch:
    """What the launcher found before building the pipeline."""

    config: SnapshotConfig
    plan: InputPlan
    latest: Latest  # ROOT/LATEST at the start: it moves only from this
    previous: PreviousSnapshot | None
    rules: RefreshRules
    resumed: bool
    # --drop-eval-duplicates: the train images a duplicates table marks, and
    # what the manifest says of them (pipelines/eval_duplicates.py)
    listed: pa.Array | None = None
    dropping: dict[str, Any] = field(default_factory=dict)


def find_previous(config: SnapshotConfig, latest: Latest) -> PreviousSnapshot | None:
    """The snapshot --previous names (UsageError if it is not a complete one)."""
    if not config.snapshot.previous:
        return None
    if config.snapshot.previous == "latest":
        if latest.snapshot_id is None:
            _LOG.info("no %s/LATEST yet: a full snapshot", config.root)
            return None
        path = f"{config.root}/{latest.snapshot_id}"
    elif "/" not in config.snapshot.previous:
        path = f"{config.root}/{config.snapshot.previous}"
    else:
        path = absolute(config.snapshot.previous.rstrip("/"))
    if path == config.directory:
        raise UsageError(f"--previous {path} is the snapshot being built")
    try:
        return PreviousSnapshot.load(path)
    except (NotASnapshot, OSError) as e:
        raise UsageError(str(e)) from e


def claim_snapshot(directory: str) -> bool:
    """Whether this run resumes an unfinished attempt at `directory`;
    OutputExists if that snapshot is already complete."""
    if snapshot_complete(directory):
        raise OutputExists(
            f"{directory} is a complete snapshot; snapshots are immutable: "
            "choose another --snapshot-id"
        )
    if not holds_anything(directory):
        return False
    remove_exchange(RunLayout(directory).exchange)
    _LOG.info("%s exists without _SUCCESS: resuming it", directory)
    return True


def build_snapshot(
    root: beam.Pipeline,
    launch: Launch,
    info: dict[str, Any],
    progress_dir: str | None = None,
) -> None:
    """Wires the whole snapshot onto `root`."""
    config, plan = launch.config, launch.plan
    layout = RunLayout(config.directory)
    compression = config.output.parquet_compression
    inputs = stages.read_inputs(
        root, config.inputs, plan, layout.exchange, progress_dir
    )
    stats = stages.label_statistics(
        inputs.label_tables(), config.rule, inputs.classes, inputs.box_counts
    )
    trainable = None
    if config.selection.trainable_only:
        trainable = stages.trainable_side_input(stats)
    chosen = stages.select_images_of(
        inputs.images, config.selection, trainable, launch.listed
    )
    selected, drops = chosen.images, chosen.drops
    per_label = stages.images_per_label(selected, config.selection, trainable)
    refresh_inputs = {"current": selected, "release": inputs.images}
    if launch.previous is not None:
        refresh_inputs |= root | "ReadPreviousSnapshot" >> (
            ReadPreviousSnapshot(launch.previous, inputs.buckets, layout.exchange)
        )
        if chosen.dropped is not None:  # the diff says why a dropped image left
            refresh_inputs["dropped"] = chosen.dropped
    planned = refresh_inputs | "PlanRefresh" >> PlanRefresh(
        launch.rules, schemas.images_schema(plan.image_extras)
    )
    snapshot_id = config.snapshot.snapshot_id
    fetched = stages.fetch_into_shards(
        planned["tasks"],
        config.fetch,
        layout,
        plan.image_extras,
        compression,
        progress_dir,
        after=inputs.checked,
        pool=(pool_dir(config.root, snapshot_id), snapshot_id),
    )
    shared = {
        "carried": planned["carried"],
        "dead": planned["dead"],
    } | "ShareShards" >> ShareShards(
        config.directory,
        layout.table_dir("images"),
        layout.shard_index,
        schemas.images_with_status_schema(plan.image_extras),
        compression,
        launch.previous.pooled_files if launch.previous else {},
        inputs.buckets,
    )
    labels = {
        "labels": inputs.labels,
        "selected": selected,
    } | "LabelsOfSelected" >> LabelsOfSelected()
    label_schema = schemas.labels_schema(plan.label_extras)
    written = [
        fetched["written"],
        shared["written"],
        stages.write_duplicates(
            [fetched["written"], shared["written"]],
            layout,
            compression,
            config.duplicates.near_distance,
        ),
        stages.write_table(
            "deleted",
            stages.bucket_parts("deleted", shared["deleted"], inputs.buckets),
            layout,
            snapshot_schema.DELETED,
            compression,
        ),
        stages.write_table(
            "labels",
            stages.bucket_parts("labels", labels, inputs.buckets),
            layout,
            label_schema,
            compression,
        ),
        stages.write_table(
            "diff",
            stages.bucket_parts("diff", planned["diff"], inputs.buckets),
            layout,
            snapshot_schema.DIFF,
            compression,
        ),
        stages.write_errors(inputs.errors, layout, compression),
        *stages.write_statistics(stats, layout, compression),
    ]
    empty_tables = {
        "images": layout.empty_table(
            "images", schemas.images_with_status_schema(plan.image_extras)
        ),
        "shard_index": (
            f"{layout.shard_index}/part-00000.parquet",
            fetch_schema.SHARD_INDEX,
        ),
        "deleted": layout.empty_table("deleted", snapshot_schema.DELETED),
        "labels": layout.empty_table("labels", label_schema),
        "diff": layout.empty_table("diff", snapshot_schema.DIFF),
        "errors": layout.empty_table("errors", schemas.ERRORS),
    }
    sweep = [
        f"{config.directory}/{TABLES}",
        *(layout.table_dir(name) for name in SNAPSHOT_TABLES),
        layout.shards,
        layout.shard_index,
        pool_dir(config.root, snapshot_id),
    ]
    manifest = {
        "written": written | "AllWrittenFiles" >> beam.Flatten(),
        "counts": inputs.counts,
        "tallies": (
            fetched["counts"],
            shared["counts"],
            planned["counts"],
            per_label,
            *drops,
        )
        | "AllTallies" >> beam.Flatten(),
        "ranges": inputs.ranges,
        "checked": inputs.checked,
    } | "WriteManifest" >> WriteManifest(
        plan,
        config.directory,
        empty_tables,
        info,
        [layout.exchange],
        sweep,
    )
    _ = manifest | "PublishSnapshot" >> PublishSnapshot(
        config.root, config.snapshot.snapshot_id, launch.latest
    )


def prepare(config: SnapshotConfig) -> Launch:
    """Everything checked and read before the pipeline is built."""
    config = resolve_labels_of(config)
    plan = plan_csv_inputs(config.inputs)
    try:
        config.fetch.check_template(
            list(schemas.images_schema(plan.image_extras).names)
        )
    except ValueError as e:
        raise UsageError(str(e)) from e
    latest = read_latest(config.root)
    previous = find_previous(config, latest)
    same_bytes = previous is None or config.fetch.same_bytes_as(previous.fetch_options)
    if not same_bytes:
        _LOG.warning(
            "the previous snapshot was fetched with other --image-source/"
            "--url-template/--verify options: every image is fetched again"
        )
    listed, dropping = listed_duplicates(
        config.selection, previous.path if previous else None
    )
    resumed = claim_snapshot(config.directory)
    return Launch(
        config,
        plan,
        latest,
        previous,
        RefreshRules(config.snapshot.retry_all, same_bytes),
        resumed,
        listed,
        dropping,
    )


def images_to_fetch(launch: Launch) -> int | None:
    """About how many images the run fetches, to choose local workers: the
    selection's upper estimate, less the images the previous snapshot already
    has when its bytes can be shared (a refresh fetches what changed)."""
    expected = launch.config.selection.expected(launch.plan.image_rows)
    if expected is None or launch.previous is None or not launch.rules.same_bytes:
        return expected
    return max(0, expected - launch.previous.ok_images)


def snapshot_info(launch: Launch, options) -> dict[str, Any]:
    """run_info, plus the snapshot's id, root, parent and the refresh vocabularies."""
    config, previous = launch.config, launch.previous
    info = run_info("snapshot", options, config, launch.plan)
    info["snapshot"] = {
        "id": config.snapshot.snapshot_id,
        "root": config.root,
        "parent": (
            {"id": previous.snapshot_id, "path": previous.path} if previous else None
        ),
        "resumed": launch.resumed,
    }
    info["change_vocabulary"] = snapshot_schema.CHANGES
    info["action_vocabulary"] = snapshot_schema.ACTIONS
    info["reason_vocabulary"] = snapshot_schema.REASONS
    info.update(launch.dropping)
    return info


def run_snapshot(config: SnapshotConfig, beam_args: list[str]) -> Outcome:
    """Checks, builds and runs the snapshot pipeline to completion."""
    args = beam_args + config.output.beam_args()
    options = pipeline_options(args)
    check_workers_see_paths(options, config)
    try:
        check_publishable(config.root)
    except ValueError as e:
        raise UsageError(str(e)) from e
    snapshot_id = config.snapshot.snapshot_id
    with claimed(config.root, snapshot_id):  # one run per id
        # Never alongside `oibeam gc`: it may expire --previous or erase
        # the bytes this run would share.
        wait_for_gc(config.root)
        pool = pool_dir(config.root, snapshot_id)
        if FileSystems.exists(f"{pool}/{snapshot_schema.EXPIRED}"):
            raise OutputExists(
                f"snapshot {snapshot_id} was expired by oibeam gc, and later "
                f"snapshots still share its shards in {pool}: choose another "
                "--snapshot-id"
            )
        launch = prepare(config)
        options = for_fetching(options, args, images_to_fetch(launch))
        info = snapshot_info(launch, options)
        info["refresh_key"] = refresh_key(config)  # as given, labels unresolved
        dry_run = bool(options.view_as(TestOptions).dry_run)
        layout = RunLayout(launch.config.directory)
        totals = stages.progress_totals(config.inputs, launch.plan)
        with launched(
            options, layout, keep_exchange=dry_run, totals=totals
        ) as progress_dir:
            root = beam.Pipeline(options=options)
            build_snapshot(root, launch, info, progress_dir)
            result = root.run()
            result.wait_until_finish()
    report = None
    if not dry_run and config.snapshot.report:
        report = write_report(launch.config.directory)
    return Outcome(launch.config.directory, dry_run, result, report)
