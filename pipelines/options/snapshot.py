"""The flags of a snapshot: its id, what it refreshes, its report."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from oibeam.pipelines.options.flags import FlagGroup, flag
from oibeam.schemas.snapshot import RESERVED_IDS, SNAPSHOT_ID


def default_snapshot_id(now: datetime.datetime | None = None) -> str:
    """The UTC date-time, e.g. 20261124T031500Z (sorts in time order)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class SnapshotOptions:
    """Which snapshot to build under the root, and from which earlier one."""

    snapshot_id: str = field(default_factory=default_snapshot_id)
    previous: str | None = None  # "latest", an id under the root, or a path
    retry_all: bool = False
    report: bool = True  # [--no-report]
    replan: bool = False  # run the pipeline even when nothing changed

    def __post_init__(self) -> None:
        if (
            not SNAPSHOT_ID.fullmatch(self.snapshot_id)
            or self.snapshot_id in RESERVED_IDS
        ):
            raise ValueError(
                f"--snapshot-id {self.snapshot_id!r}: use letters, digits, '.', "
                "'_' and '-' (up to 128, not starting with a symbol), not "
                f"{' or '.join(RESERVED_IDS)}"
            )


SNAPSHOT = FlagGroup(
    "snapshot",
    SnapshotOptions,
    (
        flag(
            "--snapshot-id",
            help="the snapshot's directory under --output (default: UTC "
            "date-time, e.g. 20261124T031500Z); rerunning an unfinished one "
            "resumes it",
        ),
        flag(
            "--previous",
            metavar="latest|ID|ROOT/ID",
            help="refresh from this earlier snapshot: unchanged images stay in "
            "the pooled shards that hold them (nothing fetched or written for "
            "them); `latest` follows ROOT/LATEST (and is a full run when there "
            "is none yet)",
        ),
        flag(
            "--retry-all",
            action="store_true",
            help="with --previous: fetch final failures again too (gone, changed, ...)",
        ),
        flag(
            "--replan",
            action="store_true",
            help="with --previous: plan the refresh with the whole pipeline even "
            "when its inputs and options are those of the previous snapshot "
            "(by default such a refresh is written from the previous snapshot's "
            "tables in seconds, without a pipeline)",
        ),
        flag(
            "--no-report",
            dest="report",
            action="store_false",
            help="do not write report.html at the end (`oibeam report` writes "
            "it later)",
        ),
    ),
)
