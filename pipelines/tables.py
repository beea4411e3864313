"""`oibeam tables`: Open Images CSVs -> Parquet tables, label statistics, trainable set.

ReadOpenImagesCsv ---+--> JoinLabelsToImages --> images (labels, boxes nested),
                     |   (+ ancestors with --expand-ancestors)   labels tables
ReadClassDescriptions +          +--> FindDuplicates --> duplicates (same
                                 |                       OriginalMD5)
                                 +--> ComputeLabelStats --> label_counts,
                                 |                          label_stats,
errors (read, join, classes) --> ResolveErrorLines -->      trainable_labels.csv
                                                  errors table
everything written + every count --> WriteManifest (last)
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from oibeam.pipelines import stages
from oibeam.pipelines.beam_options import pipeline_options
from oibeam.pipelines.launch import (
    check_workers_see_paths,
    launched,
    plan_csv_inputs,
    run_info,
)
from oibeam.pipelines.layout import RunLayout
from oibeam.pipelines.options.beam_commands import TablesConfig
from oibeam.schemas import tables as schemas
from oibeam.transforms.publish.manifest import WriteManifest
from oibeam.transforms.read.csv_inputs import InputPlan


def build_tables(
    root: beam.Pipeline,
    config: TablesConfig,
    plan: InputPlan,
    info: dict[str, Any],
    progress_dir: str | None = None,
) -> None:
    """Wires the tables pipeline onto `root` (nothing runs until root.run())."""
    layout = RunLayout(config.output.output)
    compression = config.output.parquet_compression
    inputs = stages.read_inputs(
        root, config.inputs, plan, layout.exchange, progress_dir
    )
    stats = stages.label_statistics(
        inputs.label_tables(), config.rule, inputs.classes, inputs.box_counts
    )
    image_schema = schemas.images_schema(plan.image_extras)
    label_schema = schemas.labels_schema(plan.label_extras)
    written = [
        stages.write_table(
            "images",
            stages.bucket_parts("images", inputs.images, inputs.buckets),
            layout,
            image_schema,
            compression,
        ),
        stages.write_table(
            "labels",
            stages.bucket_parts("labels", inputs.labels, inputs.buckets),
            layout,
            label_schema,
            compression,
        ),
        stages.write_errors(inputs.errors, layout, compression),
        *stages.write_statistics(stats, layout, compression),
        stages.write_duplicates(inputs.images, layout, compression),
    ]
    empty_tables = {
        "images": layout.empty_table("images", image_schema),
        "labels": layout.empty_table("labels", label_schema),
        "errors": layout.empty_table("errors", schemas.ERRORS),
    }
    _ = {
        "written": written | "AllWrittenFiles" >> beam.Flatten(),
        "counts": inputs.counts,
        "ranges": inputs.ranges,
        "checked": inputs.checked,
    } | "WriteManifest" >> WriteManifest(
        plan, layout.root, empty_tables, info, cleanup=[layout.exchange]
    )


def run_tables(config: TablesConfig, beam_args: list[str]) -> str:
    """Plans the inputs, runs the pipeline to completion, returns the manifest path."""
    options = pipeline_options(beam_args + config.output.beam_args())
    check_workers_see_paths(options, config)
    layout = RunLayout(config.output.output)
    plan = plan_csv_inputs(config.inputs)
    layout.claim(config.output.overwrite)
    info = run_info("tables", options, config, plan)
    totals = stages.progress_totals(config.inputs, plan)
    with launched(options, layout, totals=totals) as progress_dir:
        with beam.Pipeline(options=options) as root:
            build_tables(root, config, plan, info, progress_dir)
    return layout.manifest
