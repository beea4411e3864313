"""`oibeam snapshot`: a versioned dataset snapshot in one pipeline, published
atomically.

ReadOpenImagesCsv -> JoinLabelsToImages -> images, labels (bucketed)
    -> ComputeLabelStats -> label_counts, label_stats, trainable_labels.csv
    -> SelectImages -> PlanRefresh (against ReadPreviousSnapshot, if any)
    -> FetchImages (fetch / copy / keep) -> tables/images, shards, shards/index
    -> LabelsOfSelected -> tables/labels;  PlanRefresh -> tables/diff
    -> WriteManifest (last; sweeps what an interrupted attempt left)
    -> PublishSnapshot: _SUCCESS, then ROOT/LATEST
then, from the launcher, report.html (pipelines/report.py; --no-report skips it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import TestOptions

from oibeam.pipelines import wiring
from oibeam.pipelines.beam_options import (
    LOCAL_RUNNER,
    for_fetching,
    pipeline_options,
    runner_name,
)
from oibeam.pipelines.fetch import resolved
from oibeam.pipelines.layout import (
    TABLES,
    OutputExists,
    RunLayout,
    UsageError,
    run_info,
)
from oibeam.pipelines.options import SnapshotConfig
from oibeam.pipelines.tables import (
    build_inputs,
    extra_inputs,
    log_plan,
    plan_config_inputs,
)
from oibeam.schemas import fetch as fetch_schema
from oibeam.schemas import snapshot as snapshot_schema
from oibeam.schemas import tables as schemas
from oibeam.schemas.elements import WrittenFile
from oibeam.transforms.common.exchange import remove_exchange
from oibeam.transforms.common.write_files import write_csv_output
from oibeam.transforms.fetch.fetch_images import FetchImages
from oibeam.transforms.fetch.progress import ProgressPrinter
from oibeam.transforms.join.labels_to_images import choose_buckets
from oibeam.transforms.publish.manifest import WriteManifest
from oibeam.transforms.publish.publish_snapshot import (
    Latest,
    PublishSnapshot,
    check_publishable,
    read_latest,
    snapshot_complete,
)
from oibeam.transforms.read.csv_inputs import InputPlan
from oibeam.transforms.refresh.plan_refresh import PlanRefresh, RefreshRules
from oibeam.transforms.refresh.previous_snapshot import (
    NotASnapshot,
    PreviousSnapshot,
    ReadPreviousSnapshot,
)
from oibeam.transforms.select.select_images import SelectImages
from oibeam.transforms.select.selected_labels import LabelsOfSelected
from oibeam.transforms.stats.label_stats import ComputeLabelStats, trainable_set

_LOG = logging.getLogger(__name__)
SNAPSHOT_TABLES = ("images", "labels", "label_counts", "label_stats", "errors", "diff")


@dataclass(frozen=True)
class Launch:
    """What the launcher found before building the pipeline."""

    config: SnapshotConfig
    plan: InputPlan
    latest: Latest  # ROOT/LATEST at the start: it moves only from this
    previous: PreviousSnapshot | None
    rules: RefreshRules
    resumed: bool


def find_previous(config: SnapshotConfig, latest: Latest) -> PreviousSnapshot | None:
    """The snapshot --previous names (UsageError if it is not a complete one)."""
    if not config.previous:
        return None
    if config.previous == "latest":
        if latest.snapshot_id is None:
            _LOG.info("no %s/LATEST yet: a full snapshot", config.root)
            return None
        path = f"{config.root}/{latest.snapshot_id}"
    elif "/" not in config.previous:
        path = f"{config.root}/{config.previous}"
    else:
        path = config.previous.rstrip("/")
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
    if not FileSystems.exists(directory):
        return False
    remove_exchange(RunLayout(directory).exchange)
    _LOG.info("%s exists without _SUCCESS: resuming it", directory)
    return True


def _write(layout: RunLayout, name: str, parts, schema: pa.Schema, compression: str):
    return wiring.write_table(name, parts, layout.table_dir(name), schema, compression)


def build_snapshot(
    root: beam.Pipeline,
    launch: Launch,
    info: dict[str, Any],
    progress_dir: str | None = None,
) -> None:
    """Wires the whole snapshot onto `root`."""
    config = launch.config
    run = config.run
    layout = RunLayout(config.directory)
    compression = run.tables.parquet_compression
    plan = launch.plan
    inputs = build_inputs(root, run.tables, plan, layout)
    stats = (
        inputs.labels
        | "LabelTables" >> beam.Map(wiring.values).with_output_types(pa.Table)
        | "ComputeLabelStats"
        >> ComputeLabelStats(run.tables.rule, inputs.classes, inputs.box_counts)
    )
    trainable = None
    if run.selection.trainable_only:
        trainable = beam.pvalue.AsSingleton(
            stats["label_stats"] | "TrainableSet" >> beam.Map(trainable_set)
        )
    selected = inputs.images | "SelectImages" >> SelectImages(run.selection, trainable)
    refresh_inputs = {"current": selected, "release": inputs.images}
    if launch.previous is not None:
        refresh_inputs["previous"] = root | "ReadPreviousSnapshot" >> (
            ReadPreviousSnapshot(launch.previous, inputs.buckets, layout.exchange)
        )
    planned = refresh_inputs | "PlanRefresh" >> PlanRefresh(
        launch.rules, schemas.images_schema(plan.image_extras)
    )
    status_schema = schemas.images_with_status_schema(plan.image_extras)
    fetched = planned["tasks"] | "FetchImages" >> FetchImages(
        run.fetch,
        layout.shards,
        layout.table_dir("images"),
        status_schema,
        layout.exchange,
        compression,
        progress_dir,
    )
    labels = {
        "labels": inputs.labels,
        "selected": selected,
    } | "LabelsOfSelected" >> LabelsOfSelected()
    label_schema = schemas.labels_schema(plan.label_extras)
    written = [
        fetched["written"],
        _write(
            layout,
            "labels",
            wiring.bucket_parts("labels", labels, inputs.buckets),
            label_schema,
            compression,
        ),
        _write(
            layout,
            "diff",
            wiring.bucket_parts("diff", planned["diff"], inputs.buckets),
            snapshot_schema.DIFF,
            compression,
        ),
        _write(
            layout,
            "label_counts",
            wiring.single_part("label_counts", stats["label_counts"]),
            schemas.LABEL_COUNTS,
            compression,
        ),
        _write(
            layout,
            "label_stats",
            wiring.single_part("label_stats", stats["label_stats"]),
            schemas.LABEL_STATS,
            compression,
        ),
        _write(layout, "errors", inputs.errors, schemas.ERRORS, compression),
        stats["trainable_csv"]
        | "WriteTrainableCsv"
        >> beam.Map(
            write_csv_output, path=layout.trainable_csv, table="trainable_labels"
        ).with_output_types(WrittenFile),
    ]
    empty_tables = {
        "labels": layout.empty_table("labels", label_schema),
        "diff": layout.empty_table("diff", snapshot_schema.DIFF),
        "errors": layout.empty_table("errors", schemas.ERRORS),
    }
    sweep = [
        f"{config.directory}/{TABLES}",
        *(layout.table_dir(name) for name in SNAPSHOT_TABLES),
        layout.shards,
        layout.shard_index,
    ]
    manifest = {
        "written": written | "AllWrittenFiles" >> beam.Flatten(),
        "counts": inputs.counts,
        "tallies": (fetched["counts"], planned["counts"])
        | "AllTallies" >> beam.Flatten(),
        "ranges": inputs.ranges,
    } | "WriteManifest" >> WriteManifest(
        plan, config.directory, empty_tables, info, [layout.exchange], sweep
    )
    _ = manifest | "PublishSnapshot" >> PublishSnapshot(
        config.root, config.snapshot_id, launch.latest
    )


def prepare(config: SnapshotConfig) -> Launch:
    """Everything checked and read before the pipeline is built."""
    try:
        config = dataclasses.replace(config, run=resolved(config.run))
        check_publishable(config.root)
    except ValueError as e:
        raise UsageError(str(e)) from e
    tables = config.run.tables
    plan = plan_config_inputs(tables)
    log_plan(plan)
    try:
        config.run.fetch.check_template(
            list(schemas.images_schema(plan.image_extras).names)
        )
    except ValueError as e:
        raise UsageError(str(e)) from e
    latest = read_latest(config.root)
    previous = find_previous(config, latest)
    same_bytes = previous is None or config.run.fetch.same_bytes_as(
        previous.fetch_options
    )
    if not same_bytes:
        _LOG.warning(
            "the previous snapshot was fetched with other --source/--url-template/"
            "--verify options: every image is fetched again"
        )
    resumed = claim_snapshot(config.directory)
    return Launch(
        config,
        plan,
        latest,
        previous,
        RefreshRules(config.retry_all, same_bytes),
        resumed,
    )


def snapshot_info(launch: Launch, runner: str) -> dict[str, Any]:
    config = launch.config
    info = run_info("snapshot", runner, config.as_json())
    previous = launch.previous
    info["snapshot"] = {
        "id": config.snapshot_id,
        "root": config.root,
        "parent": (
            {"id": previous.snapshot_id, "path": previous.path} if previous else None
        ),
        "resumed": launch.resumed,
    }
    info["trainable_rule"] = {
        "name": config.run.tables.rule.name,
        "description": config.run.tables.rule.describe(),
    }
    info["join_buckets"] = config.run.tables.join_buckets or choose_buckets(
        launch.plan.total_bytes
    )
    info["status_vocabulary"] = {
        name: meaning for name, (_, meaning) in fetch_schema.STATUSES.items()
    }
    info.update(extra_inputs(config.run.tables))
    info["change_vocabulary"] = snapshot_schema.CHANGES
    info["action_vocabulary"] = snapshot_schema.ACTIONS
    info["reason_vocabulary"] = snapshot_schema.REASONS
    return info


@dataclass(frozen=True)
class Outcome:
    """What a snapshot run did: the published directory, or a dry run's job."""

    directory: str
    dry_run: bool
    result: Any
    report: str | None = None  # report.html, when written


def run_snapshot(config: SnapshotConfig, beam_args: list[str]) -> Outcome:
    """Checks, builds and runs the snapshot pipeline to completion."""
    args = beam_args + config.run.tables.beam_args()
    options = pipeline_options(args)
    launch = prepare(config)
    images = launch.config.run.selection.at_most(launch.plan.image_rows)
    options = for_fetching(options, args, images)
    info = snapshot_info(launch, runner_name(options))
    local = runner_name(options) == LOCAL_RUNNER
    progress_dir = tempfile.mkdtemp(prefix="oibeam-progress-") if local else None
    dry_run = bool(options.view_as(TestOptions).dry_run)
    layout = RunLayout(launch.config.directory)
    try:
        with ProgressPrinter(progress_dir) if local else contextlib.nullcontext():
            root = beam.Pipeline(options=options)
            build_snapshot(root, launch, info, progress_dir)
            result = root.run()
            result.wait_until_finish()
    finally:
        if not dry_run:
            remove_exchange(layout.exchange)
        if progress_dir:
            shutil.rmtree(progress_dir, ignore_errors=True)
    report = None
    if not dry_run and config.report:
        report = _write_report(launch.config.directory)
    return Outcome(launch.config.directory, dry_run, result, report)


def _write_report(directory: str) -> str | None:
    """report.html of a published snapshot; a failure is logged, not raised:
    the snapshot is complete without it and `oibeam report` can redo it."""
    from oibeam.tools.report.write_report import write_report

    try:
        return write_report(directory)
    except Exception as e:
        _LOG.warning(
            "no report.html (%s: %s); run `oibeam report %s`",
            type(e).__name__,
            e,
            directory,
        )
        return None
