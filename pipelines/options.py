"""Command-line flags -> a frozen, validated config.

Our flags are not a PipelineOptions subclass on purpose: Beam's Dataflow options
own `--labels` (job labels), which is our labels-files flag. oibeam parses its
own flags first and hands the rest to Beam; Dataflow job labels still work with
Beam's other spelling, `--label key=value`.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

from transforms.csv_inputs import DEFAULT_SPLIT_BYTES
from transforms.trainable import PRESETS, TrainableRule, make_rule
from transforms.write_files import DEFAULT_COMPRESSION

_SOURCES = ("machine", "human", "any")


def add_tables_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `oibeam tables`."""
    parser.add_argument(
        "--images",
        nargs="+",
        action="extend",
        metavar="PATTERN",
        help="images CSV files (patterns on any Beam filesystem, .gz ok)",
    )
    parser.add_argument(
        "--labels",
        nargs="+",
        action="extend",
        metavar="PATTERN",
        help="image-level labels CSV files (machine and/or human)",
    )
    parser.add_argument(
        "--classes",
        nargs="+",
        action="extend",
        metavar="FILE",
        default=None,
        help="dict.csv (V1) or class-descriptions*.csv (V2+): mid -> name",
    )
    parser.add_argument("--output", help="output directory (local or gs://)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the tables and manifest of an earlier run in --output",
    )
    parser.add_argument(
        "--trainable-rule",
        dest="trainable_rule",
        default="v1",
        choices=sorted(PRESETS),
        help="v1: >=50 validation (human) and >=20 train (machine) images; "
        "v2: >=30 train and >=5 validation images, human-verified",
    )
    parser.add_argument(
        "--min-train-images",
        dest="min_train_images",
        type=int,
        default=None,
        help="override the rule's train threshold",
    )
    parser.add_argument(
        "--min-validation-images",
        dest="min_validation_images",
        type=int,
        default=None,
        help="override the rule's validation threshold",
    )
    parser.add_argument(
        "--train-source",
        dest="train_source",
        choices=_SOURCES,
        default=None,
        help="which labels count as train positives (override)",
    )
    parser.add_argument(
        "--validation-source",
        dest="validation_source",
        choices=_SOURCES,
        default=None,
        help="which labels count as validation positives",
    )
    parser.add_argument(
        "--split-bytes",
        dest="split_bytes",
        type=int,
        default=DEFAULT_SPLIT_BYTES,
        help="read splittable files in ranges of this many bytes",
    )
    parser.add_argument(
        "--join-buckets",
        dest="join_buckets",
        type=int,
        default=0,
        help="ImageID buckets of the join (0: ~1 per 128 MiB of input)",
    )
    parser.add_argument(
        "--parquet-compression",
        dest="parquet_compression",
        default=DEFAULT_COMPRESSION,
        choices=["zstd", "snappy", "gzip", "lz4", "none"],
    )


@dataclass(frozen=True)
class TablesConfig:
    """Everything `oibeam tables` needs, checked once."""

    images: tuple[str, ...]
    labels: tuple[str, ...]
    classes: tuple[str, ...]
    output: str
    rule: TrainableRule
    overwrite: bool = False
    split_bytes: int = DEFAULT_SPLIT_BYTES
    join_buckets: int = 0
    parquet_compression: str = DEFAULT_COMPRESSION

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("--images is required (one or more file patterns)")
        if not self.labels:
            raise ValueError("--labels is required (one or more file patterns)")
        if not self.output:
            raise ValueError("--output is required")
        if self.join_buckets < 0:
            raise ValueError("--join-buckets must be >= 0")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TablesConfig:
        return cls(
            images=tuple(args.images or ()),
            labels=tuple(args.labels or ()),
            classes=tuple(args.classes or ()),
            output=(args.output or "").rstrip("/"),
            rule=make_rule(
                args.trainable_rule,
                train_source=args.train_source,
                min_train=args.min_train_images,
                validation_source=args.validation_source,
                min_validation=args.min_validation_images,
            ),
            overwrite=args.overwrite,
            split_bytes=args.split_bytes,
            join_buckets=args.join_buckets,
            parquet_compression=args.parquet_compression,
        )

    def as_json(self) -> dict:
        return asdict(self)


def tables_parser(prog: str = "oibeam tables") -> argparse.ArgumentParser:
    """The parser `oibeam tables --help` shows; unknown flags go to Beam."""
    parser = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,  # --label (Beam's job labels) must not mean --labels
        description="Read Open Images CSVs into typed Parquet tables, label "
        "statistics and the trainable label set. Other flags are Beam pipeline "
        "options (--runner, --project, --region, --temp_location, ...).",
    )
    add_tables_arguments(parser)
    return parser
