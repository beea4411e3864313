"""`oibeam fetch`: select images, fetch and verify them, write WebDataset shards.

CSVs: ReadOpenImagesCsv + JoinLabelsToImages   or   ReadImagesTables (Parquet)
    -> [ComputeLabelStats -> trainable set, for --trainable-only]
    -> SelectImages -> FetchImages -> tables/images (+ status columns),
       shards/images-SSSSS-of-NNNNN.tar, shards/index/*.parquet
    -> WriteManifest (last): selected == statuses == images rows
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import tempfile
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from oibeam.pipelines import wiring
from oibeam.pipelines.beam_options import (
    LOCAL_RUNNER,
    for_fetching,
    pipeline_options,
    runner_name,
)
from oibeam.pipelines.layout import RunLayout, UsageError, run_info
from oibeam.pipelines.options import FetchRunConfig
from oibeam.pipelines.tables import (
    build_inputs,
    extra_inputs,
    log_plan,
    plan_config_inputs,
)
from oibeam.schemas import fetch as fetch_schema
from oibeam.schemas import tables as schemas
from oibeam.schemas.elements import FileCount
from oibeam.transforms.common.exchange import remove_exchange
from oibeam.transforms.fetch.fetch_images import FetchImages
from oibeam.transforms.fetch.progress import ProgressPrinter
from oibeam.transforms.publish.manifest import WriteManifest
from oibeam.transforms.read.classes import CLASSES, ParsedClasses, parse_classes
from oibeam.transforms.read.csv_inputs import InputError, InputPlan
from oibeam.transforms.read.hierarchy import load_hierarchy, with_descendants
from oibeam.transforms.read.read_images_tables import (
    ReadImagesTables,
    count_rows,
    is_images_table,
    plan_images_tables,
)
from oibeam.transforms.select.select_images import SelectImages, resolve_labels
from oibeam.transforms.stats.label_stats import (
    ComputeLabelStats,
    labels_of_images,
    trainable_set,
)

_LOG = logging.getLogger(__name__)


def load_class_names(paths: tuple[str, ...]) -> dict[str, str]:
    """mid -> display name from class description files (read where we launch)."""
    parsed = ParsedClasses()
    for file_id, path in enumerate(paths):
        for match in FileSystems.match([path])[0].metadata_list:
            with FileSystems.open(
                match.path, compression_type=CompressionTypes.AUTO
            ) as handle:
                parse_classes(handle.read(), file_id, file_id, parsed)
    return parsed.names


def resolved(config: FetchRunConfig) -> FetchRunConfig:
    """The config with --label names turned into mids (ValueError if unknown)
    and, with --with-descendants, every label under them added."""
    mids = config.selection.labels
    if not all(v.startswith("/") for v in mids):
        if not config.tables.classes:
            raise ValueError(
                "--label by display name needs --classes (or give the mid)"
            )
        mids = resolve_labels(mids, load_class_names(config.tables.classes))
    if config.with_descendants:
        mids = with_descendants(mids, load_hierarchy(config.hierarchy))
    return dataclasses.replace(
        config, selection=dataclasses.replace(config.selection, labels=mids)
    )


def _nested_labels(element) -> pa.Table:
    return labels_of_images(element[1])


def build_fetch(
    root: beam.Pipeline,
    config: FetchRunConfig,
    plan: InputPlan | None,
    tables: tuple[list[str], tuple[str, ...]] | None,
    info: dict[str, Any],
    progress_dir: str | None = None,
) -> None:
    """Wires the fetch pipeline onto `root`: from CSVs (`plan`) or from Parquet
    images tables (`tables`: files and extra columns)."""
    layout = RunLayout(config.tables.output)
    selection = config.selection
    written, counts, ranges = [], [], []
    if plan is not None:
        inputs = build_inputs(root, config.tables, plan, layout)
        images, classes, extras = inputs.images, inputs.classes, plan.image_extras
        label_tables = inputs.labels | "LabelTables" >> beam.Map(
            wiring.values
        ).with_output_types(pa.Table)
        written.append(
            wiring.write_table(
                "errors",
                inputs.errors,
                layout.table_dir("errors"),
                schemas.ERRORS,
                config.tables.parquet_compression,
            )
        )
        counts.append(inputs.counts)
        ranges.append(inputs.ranges)
    else:
        files, extras = tables
        images = root | "ReadImagesTables" >> ReadImagesTables(files, extras)
        classes = root | "NoClasses" >> beam.Create([CLASSES.empty_table()])
        label_tables = images | "NestedLabels" >> beam.Map(
            _nested_labels
        ).with_output_types(pa.Table)
    trainable = None
    if selection.trainable_only:
        stats = label_tables | "ComputeLabelStats" >> ComputeLabelStats(
            config.tables.rule, classes, inputs.box_counts if plan else None
        )
        trainable = beam.pvalue.AsSingleton(
            stats["label_stats"] | "TrainableSet" >> beam.Map(trainable_set)
        )
    # (bucket, pa.Table) of the selected rows
    selected = images | "SelectImages" >> SelectImages(selection, trainable)
    status_schema = schemas.images_with_status_schema(extras)
    fetched = selected | "FetchImages" >> FetchImages(
        config.fetch,
        layout.shards,
        layout.table_dir("images"),
        status_schema,
        layout.exchange,
        config.tables.parquet_compression,
        progress_dir,
    )
    written.append(fetched["written"])
    if not counts:
        counts.append(
            root | "NoInputCounts" >> beam.Create([]).with_output_types(FileCount)
        )
    empty_tables = {"errors": layout.empty_table("errors", schemas.ERRORS)}
    _ = {
        "written": written | "AllWrittenFiles" >> beam.Flatten(),
        "counts": counts | "AllInputCounts" >> beam.Flatten(),
        "tallies": fetched["counts"],
        **({"ranges": ranges[0]} if ranges else {}),
    } | "WriteManifest" >> WriteManifest(
        plan or InputPlan((), (), (), ()),
        config.tables.output,
        empty_tables,
        info,
        cleanup=[layout.exchange],
    )


def run_fetch(config: FetchRunConfig, beam_args: list[str]) -> str:
    """Plans, runs to completion, returns the manifest path."""
    args = beam_args + config.tables.beam_args()
    options = pipeline_options(args)
    try:
        config = resolved(config)
    except ValueError as e:
        raise UsageError(str(e)) from e
    layout = RunLayout(config.tables.output)
    plan = tables = None
    if is_images_table(config.tables.images):
        if config.tables.labels:
            raise InputError("--labels goes with CSV --images, not images tables")
        tables = plan_images_tables(config.tables.images)
        columns = list(schemas.images_schema(tables[1]).names)
        rows = count_rows(tables[0])
    else:
        plan = plan_config_inputs(config.tables)
        log_plan(plan)
        columns = list(schemas.images_schema(plan.image_extras).names)
        rows = plan.image_rows
    options = for_fetching(options, args, config.selection.at_most(rows))
    try:
        config.fetch.check_template(columns)
    except ValueError as e:
        raise UsageError(str(e)) from e
    layout.claim(config.tables.overwrite)
    info = run_info("fetch", runner_name(options), config.as_json())
    info["status_vocabulary"] = {
        name: meaning for name, (_, meaning) in fetch_schema.STATUSES.items()
    }
    info.update(extra_inputs(config.tables))
    if tables is not None:
        info["images_tables"] = tables[0]
    local = runner_name(options) == LOCAL_RUNNER
    progress_dir = tempfile.mkdtemp(prefix="oibeam-progress-") if local else None
    try:
        with ProgressPrinter(progress_dir) if local else contextlib.nullcontext():
            with beam.Pipeline(options=options) as root:
                build_fetch(root, config, plan, tables, info, progress_dir)
    finally:
        remove_exchange(layout.exchange)
        if progress_dir:
            shutil.rmtree(progress_dir, ignore_errors=True)
    return layout.manifest
