"""`oibeam fetch`: select images, fetch and verify them, write WebDataset shards.

CSVs: ReadOpenImagesCsv + JoinLabelsToImages   or   ReadImagesTables (Parquet)
    -> [ComputeLabelStats -> trainable set, for --trainable-only]
    -> [DropEvalDuplicates] -> SelectImages -> FetchImages -> tables/images
       (+ status columns),
       shards/images-SSSSS-of-NNNNN.tar, shards/index/*.parquet
    -> ReadWrittenImages (the images parts) -> FindDuplicates -> tables/duplicates
    -> WriteManifest (last): selected == statuses == images rows
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import apache_beam as beam
import pyarrow as pa

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
from oibeam.pipelines.layout import RunLayout, UsageError
from oibeam.pipelines.options.beam_commands import FetchRunConfig
from oibeam.schemas import tables as schemas
from oibeam.schemas.elements import FileCount
from oibeam.schemas.tables import CLASSES
from oibeam.transforms.publish.manifest import WriteManifest
from oibeam.transforms.read.csv_inputs import InputError, InputPlan
from oibeam.transforms.read.read_images_tables import (
    ImagesTables,
    ReadImagesTables,
    count_rows,
    is_images_table,
    plan_images_tables,
)
from oibeam.transforms.stats.tables import labels_of_images

Source = InputPlan | ImagesTables  # release CSVs, or images tables read back
C = TypeVar("C", bound=FetchRunConfig)


def _nested_labels(element: tuple[int, pa.Table]) -> pa.Table:
    return labels_of_images(element[1])


@dataclass
class Chosen:
    """What a fetch selects, and what reading its inputs gave besides."""

    selected: beam.PCollection  # (bucket, pa.Table) of the selected rows
    extras: tuple[str, ...]
    trainable: Any  # the trainable labels' side input, or None
    written: list  # PCollection[WrittenFile]s written so far (tables/errors)
    manifest_inputs: dict[str, beam.PCollection]
    plan: InputPlan
    drops: list  # tallies of --drop-eval-duplicates


def select_for_fetch(
    root: beam.Pipeline,
    config: FetchRunConfig,
    source: Source,
    layout: RunLayout,
    progress_dir: str | None = None,
    listed: pa.Array | None = None,
) -> Chosen:
    """Reads the inputs and selects as `oibeam fetch` does (`oibeam plan`
    selects with this too); tables/errors is written."""
    compression = config.output.parquet_compression
    manifest_inputs: dict[str, beam.PCollection] = {}
    written = []
    if isinstance(source, InputPlan):
        inputs = stages.read_inputs(
            root, config.inputs, source, layout.exchange, progress_dir
        )
        images, classes, box_counts = inputs.images, inputs.classes, inputs.box_counts
        extras, label_tables = source.image_extras, inputs.label_tables()
        written.append(stages.write_errors(inputs.errors, layout, compression))
        manifest_inputs.update(
            counts=inputs.counts, ranges=inputs.ranges, checked=inputs.checked
        )
        plan = source
    else:
        images = root | "ReadImagesTables" >> ReadImagesTables(source)
        classes = root | "NoClasses" >> beam.Create([CLASSES.empty_table()])
        box_counts, extras = None, source.extras
        label_tables = images | "NestedLabels" >> beam.Map(
            _nested_labels
        ).with_output_types(pa.Table)
        manifest_inputs["counts"] = root | "NoInputCounts" >> beam.Create(
            []
        ).with_output_types(FileCount)
        plan = InputPlan((), (), (), ())
    trainable = None
    if config.selection.trainable_only:
        stats = stages.label_statistics(label_tables, config.rule, classes, box_counts)
        trainable = stages.trainable_side_input(stats)
    chosen = stages.select_images_of(images, config.selection, trainable, listed)
    return Chosen(
        chosen.images, extras, trainable, written, manifest_inputs, plan, chosen.drops
    )


def build_fetch(
    root: beam.Pipeline,
    config: FetchRunConfig,
    source: Source,
    info: dict[str, Any],
    progress_dir: str | None = None,
    listed: pa.Array | None = None,
) -> None:
    """Wires the fetch pipeline onto `root`, from release CSVs (an InputPlan)
    or from the images tables of an earlier run; `listed`: the train images a
    duplicates table marks (--drop-eval-duplicates)."""
    layout = RunLayout(config.output.output)
    compression = config.output.parquet_compression
    chosen = select_for_fetch(root, config, source, layout, progress_dir, listed)
    selected, extras, trainable = chosen.selected, chosen.extras, chosen.trainable
    written, manifest_inputs = chosen.written, chosen.manifest_inputs
    plan, drops = chosen.plan, chosen.drops
    per_label = stages.images_per_label(selected, config.selection, trainable)
    fetched = stages.fetch_into_shards(
        selected,
        config.fetch,
        layout,
        extras,
        compression,
        progress_dir,
        after=manifest_inputs.get("checked"),
    )
    written.append(fetched["written"])
    written.append(
        stages.write_duplicates(
            [fetched["written"]],
            layout,
            compression,
            config.duplicates.near_distance,
        )
    )
    empty_tables = {"errors": layout.empty_table("errors", schemas.ERRORS)}
    # What an interrupted attempt left and this one did not write again.
    sweep = [
        layout.table_dir("images"),
        layout.table_dir("errors"),
        layout.shards,
        layout.shard_index,
    ]
    _ = {
        "written": written | "AllWrittenFiles" >> beam.Flatten(),
        "tallies": (fetched["counts"], per_label, *drops)
        | "AllTallies" >> beam.Flatten(),
        **manifest_inputs,
    } | "WriteManifest" >> WriteManifest(
        plan,
        layout.root,
        empty_tables,
        info,
        [layout.exchange],
        sweep,
    )


def plan_source(config: FetchRunConfig) -> tuple[Source, list[str], int]:
    """What the run reads, the images columns it has, and its image rows."""
    images = config.inputs.images
    if not is_images_table(images):
        plan = plan_csv_inputs(config.inputs)
        columns = schemas.images_schema(plan.image_extras).names
        return plan, columns, plan.image_rows
    if config.inputs.labels:
        raise InputError("--labels goes with CSV --images, not images tables")
    tables = plan_images_tables(images)
    columns = schemas.images_schema(tables.extras).names
    return tables, columns, count_rows(tables.files)


def prepare(config: C, beam_args: list[str]) -> tuple[C, list[str], Any, Source, int]:
    """What a fetch (or a plan of one) settles before its pipeline: the config
    with --label names resolved, the Beam flags and options, the source and its
    image rows; UsageError for paths workers cannot see or a bad template."""
    args = beam_args + config.output.beam_args()
    options = pipeline_options(args)
    check_workers_see_paths(options, config)
    config = resolve_labels_of(config)
    source, columns, rows = plan_source(config)
    try:
        config.fetch.check_template(list(columns))
    except ValueError as e:
        raise UsageError(str(e)) from e
    return config, args, options, source, rows


def run_fetch(config: FetchRunConfig, beam_args: list[str]) -> str:
    """Plans, runs to completion, returns the manifest path."""
    config, args, options, source, rows = prepare(config, beam_args)
    layout = RunLayout(config.output.output)
    options = for_fetching(options, args, config.selection.expected(rows))
    listed, dropping = listed_duplicates(config.selection)
    resumed = layout.claim(config.output.overwrite, resumable=True)
    plan = source if isinstance(source, InputPlan) else None
    info = run_info("fetch", options, config, plan)
    info["resumed"] = resumed
    info.update(dropping)
    if plan is None:
        info["images_tables"] = list(source.files)
    totals = stages.progress_totals(config.inputs, plan) if plan else None
    with launched(options, layout, totals=totals) as progress_dir:
        with beam.Pipeline(options=options) as root:
            build_fetch(root, config, source, info, progress_dir, listed)
    return layout.manifest
