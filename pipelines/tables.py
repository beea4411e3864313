"""`oibeam tables`: Open Images CSVs -> Parquet tables, label statistics, trainable set.

ReadOpenImagesCsv ---+--> JoinLabelsToImages --> images (labels, boxes nested),
                     |   (+ ancestors with --expand-ancestors)   labels tables
ReadClassDescriptions +          |
                                 +--> ComputeLabelStats --> label_counts,
                                 |                          label_stats,
errors (read, join, classes) --> ResolveErrorLines -->      trainable_labels.csv
                                                  errors table
everything written + every count --> WriteManifest (last)
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from oibeam.pipelines import wiring
from oibeam.pipelines.beam_options import pipeline_options, runner_name
from oibeam.pipelines.layout import RunLayout, run_info
from oibeam.pipelines.options import TablesConfig
from oibeam.schemas import tables as schemas
from oibeam.schemas.elements import WrittenFile
from oibeam.transforms.common.exchange import remove_exchange
from oibeam.transforms.common.write_files import write_csv_output
from oibeam.transforms.join.labels_to_images import JoinLabelsToImages, choose_buckets
from oibeam.transforms.publish.manifest import EXTRA_INPUTS, WriteManifest
from oibeam.transforms.read.classes import ReadClassDescriptions
from oibeam.transforms.read.csv_inputs import InputPlan, plan_inputs
from oibeam.transforms.read.errors import ResolveErrorLines
from oibeam.transforms.read.hierarchy import load_hierarchy
from oibeam.transforms.read.read_csv import ReadOpenImagesCsv
from oibeam.transforms.stats.label_stats import ComputeLabelStats

_LOG = logging.getLogger(__name__)


@dataclass
class Inputs:
    """The CSV inputs read, validated and joined (PCollections)."""

    classes: Any  # one pa.Table (LabelName, DisplayName)
    images: Any  # (bucket, pa.Table) images_schema
    labels: Any  # (bucket, pa.Table) labels_schema
    errors: Any  # (part name, pa.Table ERRORS)
    counts: Any  # FileCount per input file
    ranges: Any  # RangeLines per read range (lines, MD5 of its bytes)
    box_counts: Any  # pa.Table BOX_COUNTS per bucket, None without box files
    buckets: int


def build_inputs(
    root: beam.Pipeline, config: TablesConfig, plan: InputPlan, layout: RunLayout
) -> Inputs:
    """Reads, validates and joins the CSV inputs; resolves error lines."""
    buckets = config.join_buckets or choose_buckets(plan.total_bytes)
    # images / labels: pa.Table (internal schemas); errors: pa.Table; lines, counts
    read = root | "ReadOpenImagesCsv" >> ReadOpenImagesCsv(plan)
    # classes: one pa.Table (LabelName, DisplayName)
    classes = root | "ReadClassDescriptions" >> ReadClassDescriptions(
        plan.of_kind("classes"), plan.ranges_of("classes")
    )
    # images / labels: (bucket, pa.Table) in the output schemas
    closure = None
    if config.expand_ancestors:
        closure = load_hierarchy(config.hierarchy).closure()
    joined = {
        "images": read["images"],
        "labels": read["labels"],
        "boxes": read["boxes"],
    } | "JoinLabelsToImages" >> JoinLabelsToImages(
        plan, buckets, classes["classes"], layout.exchange, closure
    )
    # parts: (part name, pa.Table ERRORS)
    errors = (
        (read["errors"], joined["errors"], classes["errors"])
        | "AllErrors" >> beam.Flatten()
        | "ResolveErrorLines" >> ResolveErrorLines(plan, read["lines"])
    )
    counts = (
        read["counts"],
        joined["counts"],
        classes["counts"],
        errors["counts"],
    ) | "AllCounts" >> beam.Flatten()
    return Inputs(
        classes=classes["classes"],
        images=joined["images"],
        labels=joined["labels"],
        errors=errors["parts"],
        counts=counts,
        ranges=(read["lines"], classes["lines"]) | "AllRanges" >> beam.Flatten(),
        box_counts=joined["box_counts"] if plan.of_kind("boxes") else None,
        buckets=buckets,
    )


def build_tables(
    root: beam.Pipeline,
    config: TablesConfig,
    plan: InputPlan,
    info: dict[str, Any],
) -> None:
    """Wires the tables pipeline onto `root` (nothing runs until root.run())."""
    layout = RunLayout(config.output)
    inputs = build_inputs(root, config, plan, layout)
    # label_counts / label_stats: one pa.Table each; trainable_csv: one str
    stats = (
        inputs.labels
        | "LabelTables" >> beam.Map(wiring.values).with_output_types(pa.Table)
        | "ComputeLabelStats"
        >> ComputeLabelStats(config.rule, inputs.classes, inputs.box_counts)
    )

    def write(name: str, parts, schema: pa.Schema):
        return wiring.write_table(
            name, parts, layout.table_dir(name), schema, config.parquet_compression
        )

    image_schema = schemas.images_schema(plan.image_extras)
    label_schema = schemas.labels_schema(plan.label_extras)
    written = [
        write(
            "images",
            wiring.bucket_parts("images", inputs.images, inputs.buckets),
            image_schema,
        ),
        write(
            "labels",
            wiring.bucket_parts("labels", inputs.labels, inputs.buckets),
            label_schema,
        ),
        write(
            "label_counts",
            wiring.single_part("label_counts", stats["label_counts"]),
            schemas.LABEL_COUNTS,
        ),
        write(
            "label_stats",
            wiring.single_part("label_stats", stats["label_stats"]),
            schemas.LABEL_STATS,
        ),
        write("errors", inputs.errors, schemas.ERRORS),
        stats["trainable_csv"]
        | "WriteTrainableCsv"
        >> beam.Map(
            write_csv_output, path=layout.trainable_csv, table="trainable_labels"
        ).with_output_types(WrittenFile),
    ]
    empty_tables = dict(
        [
            ("images", layout.empty_table("images", image_schema)),
            ("labels", layout.empty_table("labels", label_schema)),
            ("errors", layout.empty_table("errors", schemas.ERRORS)),
        ]
    )
    _ = {
        "written": written | "AllWrittenFiles" >> beam.Flatten(),
        "counts": inputs.counts,
        "ranges": inputs.ranges,
    } | "WriteManifest" >> WriteManifest(
        plan, config.output, empty_tables, info, cleanup=[layout.exchange]
    )


def plan_config_inputs(config: TablesConfig) -> InputPlan:
    """The input plan of a command's CSV inputs (InputError if one is wrong)."""
    return plan_inputs(
        config.images,
        config.labels,
        config.classes,
        config.split_bytes,
        boxes=config.boxes,
    )


def extra_inputs(config: TablesConfig) -> dict[str, Any]:
    """The manifest entry (under EXTRA_INPUTS) of the --hierarchy file."""
    if not config.hierarchy:
        return {}
    with FileSystems.open(config.hierarchy) as f:
        data = f.read()
    entry = {
        "path": config.hierarchy,
        "kind": "hierarchy",
        "bytes": len(data),
        "md5": hashlib.md5(data).hexdigest(),
        "labels": len(load_hierarchy(config.hierarchy).labels),
    }
    return {EXTRA_INPUTS: [entry]}


def log_plan(plan: InputPlan) -> None:
    _LOG.info(
        "reading %d images file(s), %d labels file(s), %d box file(s), "
        "%d class file(s) in %d ranges",
        len(plan.of_kind("images")),
        len(plan.of_kind("labels")),
        len(plan.of_kind("boxes")),
        len(plan.of_kind("classes")),
        len(plan.ranges),
    )


def run_tables(config: TablesConfig, beam_args: list[str]) -> str:
    """Plans the inputs, runs the pipeline to completion, returns the manifest path."""
    options = pipeline_options(beam_args + config.beam_args())
    layout = RunLayout(config.output)
    plan = plan_config_inputs(config)
    layout.claim(config.overwrite)
    info = run_info("tables", runner_name(options), config.as_json())
    info["trainable_rule"] = {
        "name": config.rule.name,
        "description": config.rule.describe(),
    }
    info["join_buckets"] = config.join_buckets or choose_buckets(plan.total_bytes)
    info.update(extra_inputs(config))
    log_plan(plan)
    try:
        with beam.Pipeline(options=options) as root:
            build_tables(root, config, plan, info)
    finally:  # a failed run must not leave a copy of its inputs behind
        remove_exchange(layout.exchange)
    return layout.manifest
