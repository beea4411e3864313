"""Command-line flags -> frozen, validated configs, shared by every command.

Our flags are not a PipelineOptions subclass on purpose: Beam's Dataflow options
own `--label` and `--labels` (job labels), which are our selection and
labels-files flags. oibeam parses its own flags first and hands the rest to
Beam; Dataflow job labels go through `--job-label KEY=VALUE`.
"""

from __future__ import annotations

import argparse
import datetime
import re
from dataclasses import asdict, dataclass

from oibeam.schemas.snapshot import LATEST
from oibeam.transforms.common.write_files import DEFAULT_COMPRESSION
from oibeam.transforms.fetch.fetcher import FetchPolicy
from oibeam.transforms.fetch.image_check import DEFAULT_MAX_PIXELS
from oibeam.transforms.fetch.image_tasks import FetchConfig
from oibeam.transforms.read.csv_inputs import DEFAULT_SPLIT_BYTES
from oibeam.transforms.select.select_images import Selection
from oibeam.transforms.stats.trainable import PRESETS, TrainableRule, make_rule

_KINDS = ("machine", "human", "any")
_IMAGE_SOURCES = ("original", "thumbnail")


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,  # a prefix of one of our flags must reach Beam intact
        description=description + " Other flags are Beam pipeline options "
        "(--runner, --project, --region, --temp_location, ...).",
    )


def add_input_arguments(parser: argparse.ArgumentParser, labels_required: bool):
    group = parser.add_argument_group("inputs and output")
    group.add_argument(
        "--images",
        nargs="+",
        action="extend",
        metavar="PATTERN",
        help="images CSV files (any Beam filesystem, .gz ok)",
    )
    group.add_argument(
        "--labels",
        nargs="+",
        action="extend",
        metavar="PATTERN",
        help="image-level labels CSV files (machine and/or human)"
        + ("" if labels_required else "; optional"),
    )
    group.add_argument(
        "--classes",
        nargs="+",
        action="extend",
        metavar="FILE",
        help="dict.csv (V1) or class-descriptions*.csv (V2+): mid -> name",
    )
    group.add_argument(
        "--boxes",
        nargs="+",
        action="extend",
        metavar="PATTERN",
        help="bounding-box CSV files (V2+, 8 or 13 columns); nested into the "
        "images table, converted to pixels after a fetch",
    )
    group.add_argument(
        "--hierarchy",
        metavar="FILE",
        help="bbox_labels_600_hierarchy.json (Open Images) or "
        "dictionary_and_semantic_hierarchy.txt (Tencent ML-Images)",
    )
    group.add_argument(
        "--expand-ancestors",
        dest="expand_ancestors",
        action="store_true",
        help="every positive label also implies its ancestors in --hierarchy "
        "(rows marked InferredFrom; negatives never propagate); statistics "
        "then count them",
    )
    group.add_argument("--output", help="output directory (local or gs://)")
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the outputs of an earlier run in --output",
    )
    group.add_argument(
        "--split-bytes",
        dest="split_bytes",
        type=int,
        default=DEFAULT_SPLIT_BYTES,
        help="read splittable files in ranges of this many bytes",
    )
    group.add_argument(
        "--join-buckets",
        dest="join_buckets",
        type=int,
        default=0,
        help="ImageID buckets of the join (0: ~1 per 256 MiB of input)",
    )
    group.add_argument(
        "--parquet-compression",
        dest="parquet_compression",
        default=DEFAULT_COMPRESSION,
        choices=["zstd", "snappy", "gzip", "lz4", "none"],
    )
    group.add_argument(
        "--job-label",
        dest="job_labels",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Dataflow job label (Beam's --label)",
    )


def add_rule_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("trainable labels")
    group.add_argument(
        "--trainable-rule",
        dest="trainable_rule",
        default="v1",
        choices=sorted(PRESETS),
        help="v1: >=50 validation (human) and >=20 train (machine) images; "
        "v2: >=30 train and >=5 validation images, human-verified",
    )
    group.add_argument(
        "--min-train-images",
        dest="min_train_images",
        type=int,
        default=None,
        help="override the rule's train threshold",
    )
    group.add_argument(
        "--min-validation-images",
        dest="min_validation_images",
        type=int,
        default=None,
        help="override the rule's validation threshold",
    )
    group.add_argument(
        "--train-source",
        dest="train_source",
        choices=_KINDS,
        default=None,
        help="which labels count as train positives (override)",
    )
    group.add_argument(
        "--validation-source",
        dest="validation_source",
        choices=_KINDS,
        default=None,
        help="which labels count as validation positives",
    )


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("selection (what to fetch)")
    group.add_argument(
        "--label",
        dest="label",
        action="append",
        default=[],
        metavar="NAME_OR_MID",
        help="keep images with this label (repeatable); names need --classes",
    )
    group.add_argument(
        "--min-confidence",
        dest="min_confidence",
        type=float,
        default=0.0,
        help="ignore label rows below this confidence",
    )
    group.add_argument(
        "--source",
        dest="source",
        action="append",
        default=[],
        choices=_KINDS + _IMAGE_SOURCES,
        metavar="SOURCE",
        help="machine|human|any: which labels select (human 0 never does); "
        "original|thumbnail: which URL to download (Thumbnail300KURL, not "
        "MD5-checked: its bytes change over time). May be given twice.",
    )
    group.add_argument(
        "--subset",
        dest="subset",
        action="append",
        default=[],
        choices=("train", "validation", "test"),
    )
    group.add_argument(
        "--trainable-only",
        dest="trainable_only",
        action="store_true",
        help="only labels of the trainable set select images",
    )
    group.add_argument(
        "--max-per-label",
        dest="max_per_label",
        type=int,
        help="at most N images per label (stable hash of ImageID)",
    )
    group.add_argument("--limit", type=int, help="at most N images in all")
    group.add_argument(
        "--sample",
        type=float,
        metavar="FRACTION",
        help="a stable fraction of the images, e.g. 0.01",
    )
    group.add_argument(
        "--with-descendants",
        dest="with_descendants",
        action="store_true",
        help="--label also selects every label under it in --hierarchy "
        "(e.g. Mammal selects Dog and Cat)",
    )


def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fetching")
    defaults = FetchPolicy()
    group.add_argument(
        "--url-template",
        dest="url_template",
        help="build the URL from image columns, e.g. "
        "'gs://my-mirror/{Subset}/{ImageID}.jpg' or 'https://m.example/{ImageID}.jpg'",
    )
    group.add_argument(
        "--verify",
        default="auto",
        choices=("auto", "md5", "decode"),
        help="auto: size+MD5 for originals and templates, full decode for thumbnails",
    )
    group.add_argument(
        "--concurrency", type=int, default=16, help="requests in flight per worker"
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=defaults.timeout,
        help="connect and read timeout, seconds",
    )
    group.add_argument(
        "--deadline",
        type=float,
        default=defaults.deadline,
        help="hard limit per image, retries included, seconds",
    )
    group.add_argument(
        "--retries",
        type=int,
        default=defaults.retries,
        help="retries of transient failures (5xx, 429, resets)",
    )
    group.add_argument(
        "--max-bytes",
        dest="max_bytes",
        type=int,
        default=defaults.max_bytes,
        help="largest image to download",
    )
    group.add_argument(
        "--max-per-host",
        dest="max_per_host",
        type=int,
        default=defaults.max_per_host,
        help="connections to one host per worker",
    )
    group.add_argument(
        "--host-delay",
        dest="host_delay",
        type=float,
        default=defaults.host_delay,
        help="politeness: seconds between requests to one host",
    )
    group.add_argument(
        "--max-redirects",
        dest="max_redirects",
        type=int,
        default=defaults.max_redirects,
    )
    group.add_argument(
        "--allow-private-hosts",
        dest="allow_private_hosts",
        action="store_true",
        help="allow hosts on private/loopback/link-local addresses (refused by "
        "default: a CSV row must not reach internal services)",
    )
    group.add_argument(
        "--max-pixels",
        dest="max_pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="larger images are bombs",
    )
    group.add_argument(
        "--full-decode",
        dest="full_decode",
        action="store_true",
        help="decode every image fully, not only unverifiable ones",
    )
    group.add_argument(
        "--shard-bytes",
        dest="shard_bytes",
        type=int,
        default=FetchConfig().shard_bytes,
        help="target size of one tar shard (smaller when that gives fewer than "
        "16 shards of at least 100 images: shards are the unit of parallel work)",
    )


@dataclass(frozen=True)
class TablesConfig:
    """The inputs, output and table options shared by every command."""

    images: tuple[str, ...]
    labels: tuple[str, ...]
    classes: tuple[str, ...]
    output: str
    rule: TrainableRule
    overwrite: bool = False
    split_bytes: int = DEFAULT_SPLIT_BYTES
    join_buckets: int = 0
    parquet_compression: str = DEFAULT_COMPRESSION
    job_labels: tuple[str, ...] = ()
    boxes: tuple[str, ...] = ()  # [--boxes]
    hierarchy: str | None = None  # [--hierarchy]
    expand_ancestors: bool = False  # [--expand-ancestors]

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("--images is required (one or more file patterns)")
        if self.expand_ancestors and not self.hierarchy:
            raise ValueError("--expand-ancestors needs --hierarchy FILE")
        if not self.output:
            raise ValueError("--output is required")
        if self.join_buckets < 0:
            raise ValueError("--join-buckets must be >= 0")

    @classmethod
    def from_args(cls, args: argparse.Namespace, labels_required=True) -> TablesConfig:
        if labels_required and not args.labels:
            raise ValueError("--labels is required (one or more file patterns)")
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
            job_labels=tuple(args.job_labels),
            boxes=tuple(args.boxes or ()),
            hierarchy=args.hierarchy,
            expand_ancestors=args.expand_ancestors,
        )

    def beam_args(self) -> list[str]:
        """Flags of ours that become Beam pipeline options."""
        return [f"--label={label}" for label in self.job_labels]

    def as_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FetchRunConfig:
    """Everything `oibeam fetch` needs, checked once."""

    tables: TablesConfig
    selection: Selection
    label_args: tuple[str, ...]  # --label values as given (names or mids)
    fetch: FetchConfig
    with_descendants: bool = False  # [--with-descendants]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FetchRunConfig:
        kinds = [s for s in args.source if s in _KINDS]
        image_sources = [s for s in args.source if s in _IMAGE_SOURCES]
        if len(kinds) > 1 or len(image_sources) > 1:
            raise ValueError(
                "--source: at most one of machine|human|any and one of "
                "original|thumbnail"
            )
        selection = Selection(
            labels=tuple(args.label),  # names are resolved to mids later
            min_confidence=args.min_confidence,
            source=kinds[0] if kinds else "any",
            subsets=tuple(dict.fromkeys(args.subset)),
            trainable_only=args.trainable_only,
            max_per_label=args.max_per_label,
            limit=args.limit,
            sample=args.sample,
        )
        policy = FetchPolicy(
            timeout=args.timeout,
            deadline=args.deadline,
            retries=args.retries,
            max_bytes=args.max_bytes,
            max_per_host=args.max_per_host,
            host_delay=args.host_delay,
            max_redirects=args.max_redirects,
            allow_private_hosts=args.allow_private_hosts,
        )
        fetch = FetchConfig(
            source=image_sources[0] if image_sources else "original",
            url_template=args.url_template,
            verify=args.verify,
            concurrency=args.concurrency,
            policy=policy,
            max_pixels=args.max_pixels,
            full_decode=args.full_decode,
            shard_bytes=args.shard_bytes,
        )
        return cls(
            tables=TablesConfig.from_args(args, labels_required=False),
            selection=selection,
            label_args=tuple(args.label),
            fetch=fetch,
            with_descendants=args.with_descendants,
        )

    @property
    def hierarchy(self) -> str | None:
        return self.tables.hierarchy

    def __post_init__(self) -> None:
        if self.with_descendants and not (self.hierarchy and self.label_args):
            raise ValueError("--with-descendants needs --hierarchy and --label")

    def as_json(self) -> dict:
        return asdict(self)


_SNAPSHOT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def default_snapshot_id(now: datetime.datetime | None = None) -> str:
    """The UTC date-time, e.g. 20261124T031500Z (sorts in time order)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class SnapshotConfig:
    """Everything `oibeam snapshot` needs: a fetch run plus where it publishes."""

    run: FetchRunConfig  # run.tables.output is the snapshot root
    snapshot_id: str
    previous: str | None = None  # "latest", an id under the root, or a path
    retry_all: bool = False
    report: bool = True  # [--no-report]

    def __post_init__(self) -> None:
        if not _SNAPSHOT_ID.match(self.snapshot_id) or self.snapshot_id == LATEST:
            raise ValueError(
                f"--snapshot-id {self.snapshot_id!r}: use letters, digits, '.', "
                "'_' and '-' (up to 128, not starting with a symbol), not LATEST"
            )
        if self.run.tables.overwrite:
            raise ValueError(
                "snapshots are never overwritten: rerunning an unfinished "
                "--snapshot-id resumes it, a finished one is kept as it is"
            )

    @property
    def root(self) -> str:
        return self.run.tables.output

    @property
    def directory(self) -> str:
        return f"{self.root}/{self.snapshot_id}"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SnapshotConfig:
        if not args.labels:
            raise ValueError("--labels is required (one or more file patterns)")
        return cls(
            run=FetchRunConfig.from_args(args),
            snapshot_id=args.snapshot_id or default_snapshot_id(),
            previous=args.previous,
            retry_all=args.retry_all,
            report=args.report,
        )

    def as_json(self) -> dict:
        return {
            **self.run.as_json(),
            "snapshot": {
                "id": self.snapshot_id,
                "previous": self.previous,
                "retry_all": self.retry_all,
            },
        }


def add_snapshot_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("snapshot")
    group.add_argument(
        "--snapshot-id",
        dest="snapshot_id",
        help="the snapshot's directory under --output (default: UTC date-time, "
        "e.g. 20261124T031500Z); rerunning an unfinished one resumes it",
    )
    group.add_argument(
        "--previous",
        metavar="latest|ID|ROOT/ID",
        help="refresh from this earlier snapshot: unchanged images are copied "
        "from its shards, not fetched; `latest` follows ROOT/LATEST (and is a "
        "full run when there is none yet)",
    )
    group.add_argument(
        "--retry-all",
        dest="retry_all",
        action="store_true",
        help="with --previous: fetch final failures again too (gone, changed, ...)",
    )
    group.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="do not write report.html at the end (`oibeam report` writes it later)",
    )


def tables_parser(prog: str = "oibeam tables") -> argparse.ArgumentParser:
    """The parser `oibeam tables --help` shows; unknown flags go to Beam."""
    parser = _parser(
        prog,
        "Read Open Images CSVs into typed Parquet tables, label statistics and "
        "the trainable label set.",
    )
    add_input_arguments(parser, labels_required=True)
    add_rule_arguments(parser)
    return parser


def fetch_parser(prog: str = "oibeam fetch") -> argparse.ArgumentParser:
    """The parser of `oibeam fetch`."""
    parser = _parser(
        prog,
        "Select images, fetch them (HTTP(S) or a gs:// mirror), verify them "
        "against OriginalSize/OriginalMD5 and Pillow, and write WebDataset tar "
        "shards with a status for every selected image. --images also takes the "
        "images table of `oibeam tables` (tables/images/*.parquet).",
    )
    add_input_arguments(parser, labels_required=False)
    add_selection_arguments(parser)
    add_rule_arguments(parser)
    add_fetch_arguments(parser)
    return parser


def snapshot_parser(prog: str = "oibeam snapshot") -> argparse.ArgumentParser:
    """The parser of `oibeam snapshot`."""
    parser = _parser(
        prog,
        "Build a versioned dataset snapshot in one pipeline: tables, label "
        "statistics, selection, fetch and shards, written to ROOT/<snapshot-id>/ "
        "and published atomically (_SUCCESS, then ROOT/LATEST). With --previous, "
        "a refresh: only new, changed and retryable images are fetched.",
    )
    add_input_arguments(parser, labels_required=True)
    add_snapshot_arguments(parser)
    add_selection_arguments(parser)
    add_rule_arguments(parser)
    add_fetch_arguments(parser)
    return parser
