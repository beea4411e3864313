"""The parser and config of `oibeam plan`: fetch's flags (without running a
fetch) plus the probe and the projection."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

from oibeam.pipelines.options.beam_commands import FetchRunConfig, fetch_parser
from oibeam.pipelines.options.flags import FlagGroup, add_groups, at_least_one, flag
from oibeam.tools.plan.plan_config import PlanOptions, plan_options

PLAN = FlagGroup(
    "plan: probe and projection",
    plan_options,
    (
        flag(
            "--probe",
            type=int,
            metavar="N",
            help="probe this many selected URLs at random, one ranged GET each "
            "(0: no probe)",
        ),
        flag("--probe-seed", type=int, metavar="S", help="which random sample"),
        flag(
            "--probe-timeout",
            type=float,
            metavar="SECONDS",
            help="the whole probe's time; what has not answered by then is "
            "reported as unfinished",
        ),
        flag(
            "--workers", type=at_least_one, metavar="N", help="workers to project for"
        ),
        flag(
            "--worker-images-per-second",
            type=float,
            metavar="X",
            help="images one worker fetches a second (measured: 275 at 80 ms RTT)",
        ),
        flag(
            "--worker-mb-per-second",
            type=float,
            metavar="X",
            help="MB one worker fetches a second (measured: 130-230)",
        ),
        flag(
            "--worker-hour-price",
            type=float,
            metavar="USD",
            help="one worker-hour (Dataflow n1-standard-2, us-central1, 2025 "
            "list price)",
        ),
        flag(
            "--storage-gb-month-price",
            type=float,
            metavar="USD",
            help="one GB-month of output (GCS Standard regional, 2025 list price)",
        ),
        flag(
            "--storage-months",
            type=float,
            metavar="M",
            help="months the output is kept, for the storage cost",
        ),
    ),
)


@dataclass(frozen=True)
class PlanConfig(FetchRunConfig):
    """`oibeam plan`: a fetch's flags; --output is the plan's own directory."""

    plan: PlanOptions = PlanOptions()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PlanConfig:
        run = FetchRunConfig.from_args(args)
        return cls(**vars(run), plan=PLAN.from_args(args))

    def as_json(self) -> dict:
        return asdict(self)


def plan_parser(prog: str = "oibeam plan") -> argparse.ArgumentParser:
    """The parser of `oibeam plan`: fetch's flags, then the plan's."""
    parser = fetch_parser(prog)
    parser.description = (
        "Before a fetch: select as `oibeam fetch` would with the same flags, "
        "count the images and bytes (OriginalSize) per subset and host, probe a "
        "random sample of their URLs, and project hours and cost for N workers. "
        "Prints a table; writes --output DIR/plan.json and DIR/tables/selected "
        "(what the fetch would fetch). Nothing is fetched but the probe."
    )
    add_groups(parser, PLAN)
    return parser
