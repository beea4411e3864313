"""`oibeam tables`: Open Images CSVs -> Parquet tables, label statistics, trainable set.

ReadOpenImagesCsv ---+--> JoinLabelsToImages --> images, labels tables
ReadClassDescriptions +          |
                                 +--> ComputeLabelStats --> label_counts,
                                 |                          label_stats,
errors (read, join, classes) --> ResolveErrorLines -->      trainable_labels.csv
                                                  errors table
everything written + every count --> WriteManifest (last)
"""

from __future__ import annotations

import datetime
import logging
import platform
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipelines.beam_options import pipeline_options, runner_name
from pipelines.options import TablesConfig
from schemas import tables as schemas
from schemas.elements import WrittenFile
from transforms.classes import ReadClassDescriptions
from transforms.csv_inputs import InputPlan, plan_inputs
from transforms.errors import ResolveErrorLines
from transforms.exchange import EXCHANGE_DIR
from transforms.join import JoinLabelsToImages, choose_buckets
from transforms.label_stats import ComputeLabelStats
from transforms.manifest import MANIFEST, WriteManifest
from transforms.read_csv import ReadOpenImagesCsv
from transforms.write_files import WriteParquetTable, write_csv_output

_LOG = logging.getLogger(__name__)
TABLES = "tables"


class OutputExists(ValueError):
    """The output directory holds an earlier run and --overwrite was not given."""


@dataclass(frozen=True)
class TablesLayout:
    """Where each output of `oibeam tables` goes under the output directory."""

    root: str

    def table_dir(self, name: str) -> str:
        return f"{self.root}/{TABLES}/{name}"

    @property
    def trainable_csv(self) -> str:
        return f"{self.root}/{TABLES}/trainable_labels.csv"

    @property
    def manifest(self) -> str:
        return f"{self.root}/{MANIFEST}"

    @property
    def exchange(self) -> str:
        return f"{self.root}/{EXCHANGE_DIR}"


def versions() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {
        "oibeam": version("oibeam"),
        "apache-beam": version("apache-beam"),
        "pyarrow": version("pyarrow"),
        "python": platform.python_version(),
    }


def prepare_output(layout: TablesLayout, overwrite: bool) -> None:
    """Refuses to mix runs: an earlier run's outputs go only with --overwrite."""
    earlier = [
        p for p in (layout.manifest, f"{layout.root}/{TABLES}") if FileSystems.exists(p)
    ]
    if not earlier:
        return
    if not overwrite:
        raise OutputExists(
            f"{layout.root} already holds a run ({', '.join(earlier)}); "
            "pass --overwrite to replace it, or choose another --output"
        )
    FileSystems.delete(earlier)


def _part(element: tuple[int, pa.Table], buckets: int) -> tuple[str, pa.Table]:
    bucket, table = element
    return f"part-{bucket:05d}-of-{buckets:05d}", table


def _single_part(table: pa.Table) -> tuple[str, pa.Table]:
    return "part-00000", table


def _values(element: tuple[int, pa.Table]) -> pa.Table:
    return element[1]


def _camel(name: str) -> str:
    return name.title().replace("_", "")


def build_tables(
    root: beam.Pipeline,
    config: TablesConfig,
    plan: InputPlan,
    info: dict[str, Any],
) -> None:
    """Wires the tables pipeline onto `root` (nothing runs until root.run())."""
    layout = TablesLayout(config.output)
    buckets = config.join_buckets or choose_buckets(plan.total_bytes)
    # images / labels: pa.Table (internal schemas); errors: pa.Table; lines, counts
    read = root | "ReadOpenImagesCsv" >> ReadOpenImagesCsv(plan)
    # classes: one pa.Table (LabelName, DisplayName)
    classes = root | "ReadClassDescriptions" >> ReadClassDescriptions(
        plan.of_kind("classes"), plan.ranges_of("classes")
    )
    # images / labels: (bucket, pa.Table) in the output schemas
    joined = {
        "images": read["images"],
        "labels": read["labels"],
    } | "JoinLabelsToImages" >> JoinLabelsToImages(
        plan, buckets, classes["classes"], layout.exchange
    )
    # label_counts / label_stats: one pa.Table each; trainable_csv: one str
    stats = (
        joined["labels"]
        | "LabelTables" >> beam.Map(_values).with_output_types(pa.Table)
        | "ComputeLabelStats" >> ComputeLabelStats(config.rule, classes["classes"])
    )
    # parts: (part name, pa.Table ERRORS)
    errors = (
        (read["errors"], joined["errors"], classes["errors"])
        | "AllErrors" >> beam.Flatten()
        | "ResolveErrorLines" >> ResolveErrorLines(plan, read["lines"])
    )

    def write(name: str, parts, schema: pa.Schema):
        """(part name, pa.Table) -> WrittenFile, under tables/<name>/."""
        return parts | f"Write{_camel(name)}" >> WriteParquetTable(
            layout.table_dir(name), name, schema, config.parquet_compression
        )

    def by_bucket(name: str, tables):
        return tables | f"Name{_camel(name)}Parts" >> beam.Map(
            _part, buckets=buckets
        ).with_output_types(tuple[str, pa.Table])

    def single(name: str, table):
        return table | f"Name{_camel(name)}Part" >> beam.Map(
            _single_part
        ).with_output_types(tuple[str, pa.Table])

    image_schema = schemas.images_schema(plan.image_extras)
    label_schema = schemas.labels_schema(plan.label_extras)
    written = [
        write("images", by_bucket("images", joined["images"]), image_schema),
        write("labels", by_bucket("labels", joined["labels"]), label_schema),
        write(
            "label_counts",
            single("label_counts", stats["label_counts"]),
            schemas.LABEL_COUNTS,
        ),
        write(
            "label_stats",
            single("label_stats", stats["label_stats"]),
            schemas.LABEL_STATS,
        ),
        write("errors", errors["parts"], schemas.ERRORS),
        stats["trainable_csv"]
        | "WriteTrainableCsv"
        >> beam.Map(
            write_csv_output, path=layout.trainable_csv, table="trainable_labels"
        ).with_output_types(WrittenFile),
    ]
    counts = (
        read["counts"],
        joined["counts"],
        classes["counts"],
        errors["counts"],
    ) | "AllCounts" >> beam.Flatten()
    empty_tables = {
        name: (f"{layout.table_dir(name)}/part-00000.parquet", schema)
        for name, schema in (
            ("images", image_schema),
            ("labels", label_schema),
            ("errors", schemas.ERRORS),
        )
    }
    _ = (
        written | "AllWrittenFiles" >> beam.Flatten(),
        counts,
    ) | "WriteManifest" >> WriteManifest(
        plan, config.output, empty_tables, info, cleanup=[layout.exchange]
    )


def run_tables(config: TablesConfig, beam_args: list[str]) -> str:
    """Plans the inputs, runs the pipeline to completion, returns the manifest path."""
    options = pipeline_options(beam_args)
    layout = TablesLayout(config.output)
    plan = plan_inputs(config.images, config.labels, config.classes, config.split_bytes)
    prepare_output(layout, config.overwrite)
    info = {
        "command": "tables",
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "runner": runner_name(options),
        "versions": versions(),
        "options": config.as_json(),
        "trainable_rule": {
            "name": config.rule.name,
            "description": config.rule.describe(),
        },
        "join_buckets": config.join_buckets or choose_buckets(plan.total_bytes),
    }
    _LOG.info(
        "reading %d images file(s), %d labels file(s), %d class file(s) in %d ranges",
        len(plan.of_kind("images")),
        len(plan.of_kind("labels")),
        len(plan.of_kind("classes")),
        len(plan.ranges),
    )
    with beam.Pipeline(options=options) as root:
        build_tables(root, config, plan, info)
    return layout.manifest
