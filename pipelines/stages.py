"""The sub-graphs the Beam commands share, each wired in one place.

read_inputs       ReadOpenImagesCsv, ReadClassDescriptions -> JoinLabelsToImages;
                  rejected rows -> ResolveErrorLines       (tables, fetch, snapshot)
label_statistics  labels tables -> ComputeLabelStats       (tables, fetch, snapshot)
trainable_side_input  label_stats -> the trainable set      (fetch, snapshot)
images_per_label  selected images -> Count per --label       (fetch, snapshot)
fetch_into_shards selected images -> FetchImages           (fetch, snapshot)
write_statistics  label_counts, label_stats, trainable_labels.csv (tables, snapshot)
write_errors      tables/errors                             (tables, fetch, snapshot)
write_duplicates  images tables -> FindDuplicates -> tables/duplicates, by
                  OriginalMD5 (tables) or after a fetch, from the images
                  parts it wrote, by bytes and hashes too  (fetch, snapshot)
write_table       (part name, pa.Table) -> Parquet files, with bucket_parts and
                  single_part to name the parts            (every table)
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa

from oibeam.pipelines.layout import RunLayout
from oibeam.pipelines.options.inputs import Inputs
from oibeam.schemas import tables as schemas
from oibeam.schemas.duplicates import DUPLICATES
from oibeam.schemas.elements import Count, FileCount, RangeLines, WrittenFile
from oibeam.transforms.common.progress import JOIN, READ
from oibeam.transforms.common.write_files import write_csv_output
from oibeam.transforms.common.write_tables import WriteParquetTable
from oibeam.transforms.dedup.find_duplicates import FindDuplicates
from oibeam.transforms.dedup.written_images import ReadWrittenImages
from oibeam.transforms.fetch.fetch_images import FetchImages
from oibeam.transforms.fetch.image_tasks import FetchConfig
from oibeam.transforms.join.labels_to_images import JoinLabelsToImages, choose_buckets
from oibeam.transforms.publish.rejected import CheckRejected
from oibeam.transforms.read.classes import ReadClassDescriptions
from oibeam.transforms.read.csv_inputs import InputPlan
from oibeam.transforms.read.errors import ResolveErrorLines
from oibeam.transforms.read.hierarchy import load_hierarchy
from oibeam.transforms.read.read_csv import ReadOpenImagesCsv
from oibeam.transforms.select import select_images
from oibeam.transforms.select.eval_duplicates import DropEvalDuplicates
from oibeam.transforms.select.select_images import SelectImages
from oibeam.transforms.select.selection import Selection
from oibeam.transforms.shard.shard_outputs import ShardOutputs
from oibeam.transforms.stats.label_stats import ComputeLabelStats
from oibeam.transforms.stats.tables import trainable_set
from oibeam.transforms.stats.trainable import TrainableRule

PART = tuple[str, pa.Table]  # (part-BBBBB-of-NNNNN, the rows of that file)


@dataclass
class ReadInputs:
    """The CSV inputs read, validated and joined."""

    classes: beam.PCollection[pa.Table]  # one table: LabelName, DisplayName
    images: beam.PCollection[tuple[int, pa.Table]]  # (bucket, images_schema)
    labels: beam.PCollection[tuple[int, pa.Table]]  # (bucket, labels_schema)
    errors: beam.PCollection[PART]  # ERRORS, every line resolved
    counts: beam.PCollection[FileCount]  # rows read, kept, rejected per file
    ranges: beam.PCollection[RangeLines]  # lines and MD5 of every read range
    box_counts: beam.PCollection[pa.Table] | None  # BOX_COUNTS; None: no boxes
    buckets: int
    checked: beam.PCollection[int]  # CheckRejected: complete once inputs pass

    def label_tables(self) -> beam.PCollection[pa.Table]:
        return self.labels | "LabelTables" >> beam.Map(_value).with_output_types(
            pa.Table
        )


def _value(element: tuple[int, pa.Table]) -> pa.Table:
    return element[1]


def join_buckets(inputs: Inputs, plan: InputPlan) -> int:
    """--join-buckets, or one bucket per ~256 MiB of input."""
    return inputs.join_buckets or choose_buckets(plan.total_bytes)


def progress_totals(inputs: Inputs, plan: InputPlan) -> dict[str, int]:
    """What the progress line counts up to before the pipeline says more:
    bytes of the images, labels and boxes files, and join buckets."""
    read = sum(f.size for f in plan.files if f.kind in ("images", "labels", "boxes"))
    return {READ: read, JOIN: join_buckets(inputs, plan)}


def read_inputs(
    root: beam.Pipeline,
    inputs: Inputs,
    plan: InputPlan,
    exchange: str,
    progress_dir: str | None = None,
) -> ReadInputs:
    """Reads, validates and joins the CSV inputs; resolves error lines."""
    buckets = join_buckets(inputs, plan)
    read = root | "ReadOpenImagesCsv" >> ReadOpenImagesCsv(
        plan, inputs.max_line_bytes, progress_dir
    )
    classes = root | "ReadClassDescriptions" >> ReadClassDescriptions(
        plan.of_kind("classes"), plan.ranges_of("classes")
    )
    closure = None
    if inputs.expand_ancestors:
        closure = load_hierarchy(inputs.hierarchy).closure()
    joined = {
        "images": read["images"],
        "labels": read["labels"],
        "boxes": read["boxes"],
    } | "JoinLabelsToImages" >> JoinLabelsToImages(
        plan, buckets, classes["classes"], exchange, closure, progress_dir
    )
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
    return ReadInputs(
        classes=classes["classes"],
        images=joined["images"],
        labels=joined["labels"],
        errors=errors["parts"],
        counts=counts,
        ranges=(read["lines"], classes["lines"]) | "AllRanges" >> beam.Flatten(),
        box_counts=joined["box_counts"] if plan.of_kind("boxes") else None,
        buckets=buckets,
        checked=counts | "CheckRejected" >> CheckRejected(plan, inputs.max_rejected),
    )


def label_statistics(
    label_tables: beam.PCollection[pa.Table],
    rule: TrainableRule,
    classes: beam.PCollection[pa.Table],
    box_counts: beam.PCollection[pa.Table] | None,
) -> dict[str, beam.PCollection]:
    """label_counts, label_stats (one pa.Table each), trainable_csv (one str)."""
    return label_tables | "ComputeLabelStats" >> ComputeLabelStats(
        rule, classes, box_counts
    )


def images_per_label(
    selected: beam.PCollection[tuple[int, pa.Table]], selection: Selection, trainable
) -> beam.PCollection[Count]:
    """Count(LABEL, mid, images) of the selected images each --label
    qualified (none without --label): a label that selected nothing shows."""
    if not selection.labels:
        return selected.pipeline | "NoLabelCounts" >> beam.Create([]).with_output_types(
            Count
        )
    return selected | "CountImagesPerLabel" >> beam.FlatMap(
        select_images.images_per_label, selection, trainable
    ).with_output_types(Count)


@dataclass
class Selected:
    """What select_images gives: the selected rows, and what
    --drop-eval-duplicates dropped before the selection (nothing without)."""

    images: beam.PCollection  # (bucket, pa.Table) of the selected rows
    drops: list  # its Count tallies per reason, for the manifest
    dropped: beam.PCollection | None  # (bucket, ImageIDs dropped), for a diff


def select_images_of(
    images: beam.PCollection[tuple[int, pa.Table]],
    selection: Selection,
    trainable,
    listed: pa.Array | None,
) -> Selected:
    """SelectImages, after DropEvalDuplicates with --drop-eval-duplicates:
    `images` are every image of the release (the validation and test rows
    give the MD5s); `listed` the train images a duplicates table marks."""
    drops, dropped = [], None
    if selection.drop_eval_duplicates:
        kept = images | "DropEvalDuplicates" >> DropEvalDuplicates(listed)
        images, drops, dropped = kept["images"], [kept["counts"]], kept["dropped"]
    selected = images | "SelectImages" >> SelectImages(selection, trainable)
    return Selected(selected, drops, dropped)


def trainable_side_input(stats: dict[str, beam.PCollection]):
    """The trainable mids (a frozenset), as a singleton side input."""
    return beam.pvalue.AsSingleton(
        stats["label_stats"] | "TrainableSet" >> beam.Map(trainable_set)
    )


def fetch_into_shards(
    tasks: beam.PCollection[tuple[int, pa.Table]],
    fetch: FetchConfig,
    layout: RunLayout,
    image_extras: tuple[str, ...],
    compression: str,
    progress_dir: str | None,
    after: beam.PCollection | None = None,
    pool: tuple[str, str] | None = None,
) -> dict[str, beam.PCollection]:
    """FetchImages into RUN/shards/ (or `pool`: (ROOT/pool/ID, ID), a
    snapshot's) and RUN/tables/images/ (images columns plus status columns):
    written (WrittenFile), counts (Count), shards (one int). No image is
    fetched before `after` is complete (the input check). A snapshot with
    nothing to fetch writes no shard."""
    outputs = ShardOutputs(
        layout.shards,
        layout.table_dir("images"),
        schemas.images_with_status_schema(image_extras),
        compression,
        pool,
    )
    return tasks | "FetchImages" >> FetchImages(
        fetch,
        outputs,
        layout.exchange,
        progress_dir,
        after,
        least_shards=0 if pool else 1,
    )


def _camel(name: str) -> str:
    return name.title().replace("_", "")


def _bucket_part(element: tuple[int, pa.Table], buckets: int) -> PART:
    bucket, table = element
    return f"part-{bucket:05d}-of-{buckets:05d}", table


def _single_part(table: pa.Table) -> PART:
    return "part-00000", table


def bucket_parts(
    name: str, tables: beam.PCollection[tuple[int, pa.Table]], buckets
) -> beam.PCollection[PART]:
    """(bucket, pa.Table) -> (part-BBBBB-of-NNNNN, pa.Table); `buckets` may be a
    side input (AsSingleton) when the count is known only at run time."""
    return tables | f"Name{_camel(name)}Parts" >> beam.Map(
        _bucket_part, buckets=buckets
    ).with_output_types(PART)


def single_part(name: str, table: beam.PCollection[pa.Table]) -> beam.PCollection[PART]:
    """One pa.Table -> ("part-00000", pa.Table)."""
    return table | f"Name{_camel(name)}Part" >> beam.Map(
        _single_part
    ).with_output_types(PART)


def write_table(
    name: str,
    parts: beam.PCollection[PART],
    layout: RunLayout,
    schema: pa.Schema,
    compression: str,
) -> beam.PCollection[WrittenFile]:
    """(part name, pa.Table) -> RUN/tables/NAME/<part>.parquet."""
    return parts | f"Write{_camel(name)}" >> WriteParquetTable(
        layout.table_dir(name), name, schema, compression
    )


def write_errors(
    errors: beam.PCollection[PART], layout: RunLayout, compression: str
) -> beam.PCollection[WrittenFile]:
    """tables/errors: every input row that could not be used."""
    return write_table("errors", errors, layout, schemas.ERRORS, compression)


def write_statistics(
    stats: dict[str, beam.PCollection], layout: RunLayout, compression: str
) -> list[beam.PCollection[WrittenFile]]:
    """tables/label_counts, tables/label_stats and tables/trainable_labels.csv."""
    return [
        write_table(
            "label_counts",
            single_part("label_counts", stats["label_counts"]),
            layout,
            schemas.LABEL_COUNTS,
            compression,
        ),
        write_table(
            "label_stats",
            single_part("label_stats", stats["label_stats"]),
            layout,
            schemas.LABEL_STATS,
            compression,
        ),
        stats["trainable_csv"]
        | "WriteTrainableCsv"
        >> beam.Map(
            write_csv_output, path=layout.trainable_csv, table="trainable_labels"
        ).with_output_types(WrittenFile),
    ]


def write_duplicates(
    images: beam.PCollection[tuple[int, pa.Table]] | list[beam.PCollection],
    layout: RunLayout,
    compression: str,
    near_distance: int | None = None,
) -> beam.PCollection[WrittenFile]:
    """tables/duplicates. `images`: the release's (bucket, images table),
    searched by OriginalMD5 only; or the WrittenFile collections of a fetch,
    whose images parts are read back and searched by OriginalMD5, by the MD5
    of the bytes and, with `near_distance`, by perceptual hash."""
    if isinstance(images, list):
        tables = (
            images
            | "AllFetchedFiles" >> beam.Flatten()
            | "ReadWrittenImages" >> ReadWrittenImages()
        )
    else:
        tables = images | "DuplicateKeyTables" >> beam.Map(_value).with_output_types(
            pa.Table
        )
    found = tables | "FindDuplicates" >> FindDuplicates(near_distance)
    return write_table(
        "duplicates", single_part("duplicates", found), layout, DUPLICATES, compression
    )
