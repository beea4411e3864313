"""The parsers of the three Beam commands (tables, fetch, snapshot) and their
configs, each a flat bundle of flag groups.

Our flags are not a PipelineOptions subclass on purpose: Beam's Dataflow options
own `--label` and `--labels` (job labels), which are our selection and
labels-files flags. oibeam parses its own flags first and hands the rest to
Beam; Dataflow job labels go through `--job-label KEY=VALUE`.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

from oibeam.pipelines.options.duplicates import DUPLICATES
from oibeam.pipelines.options.fetching import FETCH, POLICY, fetch_config
from oibeam.pipelines.options.flags import add_groups
from oibeam.pipelines.options.inputs import OUTPUT, RULE, Inputs, Output, inputs_group
from oibeam.pipelines.options.selection import (
    LABELS,
    SELECTION,
    LabelQuery,
    add_legacy_source,
    apply_legacy_source,
)
from oibeam.pipelines.options.snapshot import SNAPSHOT, SnapshotOptions
from oibeam.transforms.dedup.dedup_config import DuplicatesConfig
from oibeam.transforms.fetch.fetch_config import FetchConfig
from oibeam.transforms.select.selection import Selection
from oibeam.transforms.stats.trainable import TrainableRule


@dataclass(frozen=True)
class TablesConfig:
    """`oibeam tables`: what to read, where to write, the trainable rule."""

    inputs: Inputs
    output: Output
    rule: TrainableRule

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TablesConfig:
        inputs = inputs_group(True).from_args(args)
        inputs.require_labels()
        return cls(inputs, OUTPUT.from_args(args), RULE.from_args(args))

    def as_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FetchRunConfig(TablesConfig):
    """`oibeam fetch`: a tables run's inputs plus what to select and fetch."""

    labels: LabelQuery = LabelQuery()
    selection: Selection = Selection()  # labels: mids, once resolved
    fetch: FetchConfig = FetchConfig()
    duplicates: DuplicatesConfig = DuplicatesConfig()

    def __post_init__(self) -> None:
        if self.labels.with_descendants and not (
            self.inputs.hierarchy and self.labels.names
        ):
            raise ValueError("--with-descendants needs --hierarchy and --label")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FetchRunConfig:
        apply_legacy_source(args)
        return cls(
            inputs=inputs_group(False).from_args(args),
            output=OUTPUT.from_args(args),
            rule=RULE.from_args(args),
            labels=LABELS.from_args(args),
            selection=SELECTION.from_args(args),
            fetch=fetch_config(args),
            duplicates=DUPLICATES.from_args(args),
        )


@dataclass(frozen=True)
class SnapshotConfig(FetchRunConfig):
    """`oibeam snapshot`: a fetch run, published as ROOT/<snapshot id>."""

    snapshot: SnapshotOptions = SnapshotOptions()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.output.overwrite:
            raise ValueError(
                "snapshots are never overwritten: rerunning an unfinished "
                "--snapshot-id resumes it, a finished one is kept as it is"
            )

    @property
    def root(self) -> str:
        return self.output.output

    @property
    def directory(self) -> str:
        return f"{self.root}/{self.snapshot.snapshot_id}"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SnapshotConfig:
        run = FetchRunConfig.from_args(args)
        run.inputs.require_labels()
        return cls(**vars(run), snapshot=SNAPSHOT.from_args(args))


def _beam_parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,  # a prefix of one of our flags must reach Beam intact
        description=description + " Other flags are Beam pipeline options "
        "(--runner, --project, --region, --temp_location, ...).",
    )


def tables_parser(prog: str = "oibeam tables") -> argparse.ArgumentParser:
    """The parser of `oibeam tables`; unknown flags go to Beam."""
    parser = _beam_parser(
        prog,
        "Read Open Images CSVs into typed Parquet tables, label statistics and "
        "the trainable label set.",
    )
    add_groups(parser, inputs_group(True), OUTPUT, RULE)
    return parser


def fetch_parser(prog: str = "oibeam fetch") -> argparse.ArgumentParser:
    """The parser of `oibeam fetch`."""
    parser = _beam_parser(
        prog,
        "Select images, fetch them (HTTP(S) or a gs:// mirror), verify them "
        "against OriginalSize/OriginalMD5 and Pillow, and write WebDataset tar "
        "shards with a status for every selected image. --images also takes the "
        "images table of `oibeam tables` (tables/images/*.parquet).",
    )
    add_groups(
        parser,
        inputs_group(False),
        OUTPUT,
        LABELS,
        SELECTION,
        RULE,
        FETCH,
        POLICY,
        DUPLICATES,
    )
    add_legacy_source(parser)
    return parser


def snapshot_parser(prog: str = "oibeam snapshot") -> argparse.ArgumentParser:
    """The parser of `oibeam snapshot`."""
    parser = _beam_parser(
        prog,
        "Build a versioned dataset snapshot in one pipeline: tables, label "
        "statistics, selection, fetch and shards, written to ROOT/<snapshot-id>/ "
        "and published atomically (_SUCCESS, then ROOT/LATEST). With --previous, "
        "a refresh: only new, changed and retryable images are fetched.",
    )
    add_groups(
        parser,
        inputs_group(True),
        OUTPUT,
        SNAPSHOT,
        LABELS,
        SELECTION,
        RULE,
        FETCH,
        POLICY,
        DUPLICATES,
    )
    add_legacy_source(parser)
    return parser
