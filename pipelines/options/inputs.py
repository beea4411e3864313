"""The flags every Beam command shares: its inputs, its output, the trainable rule."""

from __future__ import annotations

from dataclasses import dataclass

from oibeam.pipelines.options.flags import FlagGroup, flag
from oibeam.schemas.releases import SOURCE_KINDS
from oibeam.transforms.common.files import absolute
from oibeam.transforms.common.write_files import DEFAULT_COMPRESSION
from oibeam.transforms.read.csv_lines import (
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_SPLIT_BYTES,
    MIN_MAX_LINE_BYTES,
)
from oibeam.transforms.stats.trainable import PRESETS, make_rule

_PATTERN_FIELDS = ("images", "labels", "classes", "boxes")  # of Inputs


@dataclass(frozen=True)
class Inputs:
    """The release files to read (patterns on any Beam filesystem)."""

    images: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    boxes: tuple[str, ...] = ()
    hierarchy: str | None = None
    expand_ancestors: bool = False
    split_bytes: int = DEFAULT_SPLIT_BYTES
    join_buckets: int = 0  # 0: chosen from the input size
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES  # longer lines: line_too_long
    max_rejected: float = 0.5  # an input that rejects more of its rows stops

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("--images is required (one or more file patterns)")
        # Workers read these, in their own working directories.
        for name in _PATTERN_FIELDS:
            paths = tuple(absolute(p) for p in getattr(self, name))
            object.__setattr__(self, name, paths)
        if self.hierarchy:
            object.__setattr__(self, "hierarchy", absolute(self.hierarchy))
        if self.expand_ancestors and not self.hierarchy:
            raise ValueError("--expand-ancestors needs --hierarchy FILE")
        if self.join_buckets < 0:
            raise ValueError("--join-buckets must be >= 0")
        if not 0.0 <= self.max_rejected <= 1.0:
            raise ValueError("--max-rejected is a share of rows, within [0, 1]")
        if self.max_line_bytes < MIN_MAX_LINE_BYTES:
            raise ValueError(f"--max-line-bytes must be at least {MIN_MAX_LINE_BYTES}")

    def paths(self) -> list[str]:
        """Every input path and pattern given."""
        patterns = [p for name in _PATTERN_FIELDS for p in getattr(self, name)]
        return patterns + ([self.hierarchy] if self.hierarchy else [])

    def require_labels(self) -> None:
        if not self.labels:
            raise ValueError("--labels is required (one or more file patterns)")


@dataclass(frozen=True)
class Output:
    """Where a run writes, and how."""

    output: str = ""
    overwrite: bool = False
    parquet_compression: str = DEFAULT_COMPRESSION
    job_labels: tuple[str, ...] = ()
    shared_paths: bool = False  # local paths every worker sees [--shared-paths]

    def __post_init__(self) -> None:
        output = self.output.rstrip("/")
        if not output:
            raise ValueError("--output is required (a directory, not /)")
        # Workers write under it, in their own working directories.
        object.__setattr__(self, "output", absolute(output))

    def beam_args(self) -> list[str]:
        """Flags of ours that become Beam pipeline options."""
        return [f"--label={label}" for label in self.job_labels]


def inputs_group(labels_required: bool) -> FlagGroup[Inputs]:
    return FlagGroup(
        "inputs and output",
        Inputs,
        (
            flag(
                "--images",
                required=True,
                nargs="+",
                action="extend",
                metavar="PATTERN",
                help="images CSV files (any Beam filesystem, .gz ok)",
            ),
            flag(
                "--labels",
                required=labels_required,
                nargs="+",
                action="extend",
                metavar="PATTERN",
                help="image-level labels CSV files (machine and/or human)"
                + ("" if labels_required else "; optional"),
            ),
            flag(
                "--classes",
                nargs="+",
                action="extend",
                metavar="FILE",
                help="dict.csv (V1) or class-descriptions*.csv (V2+): mid -> name",
            ),
            flag(
                "--boxes",
                nargs="+",
                action="extend",
                metavar="PATTERN",
                help="bounding-box CSV files (V2+, 8 or 13 columns); nested into "
                "the images table, converted to pixels after a fetch",
            ),
            flag(
                "--hierarchy",
                metavar="FILE",
                help="bbox_labels_600_hierarchy.json (Open Images) or "
                "dictionary_and_semantic_hierarchy.txt (Tencent ML-Images)",
            ),
            flag(
                "--expand-ancestors",
                action="store_true",
                help="every positive label also implies its ancestors in "
                "--hierarchy (rows marked InferredFrom; negatives never "
                "propagate); statistics then count them",
            ),
            flag(
                "--split-bytes",
                type=int,
                help="read splittable files in ranges of this many bytes",
            ),
            flag(
                "--join-buckets",
                type=int,
                help="ImageID buckets of the join (0: ~1 per 256 MiB of input)",
            ),
            flag(
                "--max-rejected",
                type=float,
                metavar="SHARE",
                help="stop, publishing nothing, when an input file rejects more "
                "than this share of its rows (most likely a file of the wrong "
                "kind or release); unknown_image and duplicate_* rows do not "
                "count, but a file none of whose rows joins an image stops the "
                "run below 1",
            ),
            flag(
                "--max-line-bytes",
                type=int,
                help="a longer line (a CR before its newline counts) is not "
                "parsed: its row goes to errors as line_too_long",
            ),
        ),
    )


OUTPUT = FlagGroup(
    "inputs and output",
    Output,
    (
        flag("--output", required=True, help="output directory (local or gs://)"),
        flag(
            "--overwrite",
            action="store_true",
            help="replace the outputs of an earlier run in --output",
        ),
        flag(
            "--parquet-compression",
            choices=["zstd", "snappy", "gzip", "lz4", "none"],
            help="the codec of every Parquet table written",
        ),
        flag(
            "--shared-paths",
            action="store_true",
            help="local --output and input paths are on storage every worker "
            "sees at the same path (an NFS mount, a cluster on this machine); "
            "without it a runner whose workers run elsewhere takes only URIs "
            "such as gs://",
        ),
        flag(
            "--job-label",
            "job_labels",
            nargs="+",
            action="extend",
            metavar="KEY=VALUE",
            help="Dataflow job labels (what Beam calls --label)",
        ),
    ),
)

RULE = FlagGroup(
    "trainable labels",
    make_rule,
    (
        flag(
            "--trainable-rule",
            "preset",
            choices=sorted(PRESETS),
            help="v1: >=50 validation (human) and >=20 train (machine) images; "
            "v2: >=30 train and >=5 validation images, human-verified",
        ),
        flag(
            "--min-train-images",
            "min_train",
            type=int,
            help="override the rule's train threshold",
        ),
        flag(
            "--min-validation-images",
            "min_validation",
            type=int,
            help="override the rule's validation threshold",
        ),
        flag(
            "--train-source",
            choices=SOURCE_KINDS,
            help="which labels count as train positives (override)",
        ),
        flag(
            "--validation-source",
            choices=SOURCE_KINDS,
            help="which labels count as validation positives",
        ),
    ),
)
