"""The parser of `oibeam gc`: a snapshot ROOT, what to keep, --dry-run."""

from __future__ import annotations

import argparse

from oibeam.pipelines.options.flags import at_least_one


def _days(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError("must be a number of days, 0 or more")
    return value


def gc_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oibeam gc",
        description="Expire old snapshots under a snapshot ROOT, delete the "
        "pooled shards no kept snapshot uses, and erase from the shards that "
        "stay the bytes of images no kept snapshot has (takedowns). A snapshot "
        "is kept if it is among the newest N, published within D days, or the "
        "one ROOT/LATEST names; unfinished snapshots are never touched. Refuses "
        "to run while a snapshot is being built under ROOT.",
    )
    parser.add_argument("root", metavar="ROOT", help="a snapshot root, local or gs://")
    parser.add_argument(
        "--keep",
        type=at_least_one,
        metavar="N",
        help="keep the N newest complete snapshots",
    )
    parser.add_argument(
        "--keep-days",
        dest="keep_days",
        type=_days,
        metavar="D",
        help="keep every snapshot published within the last D days",
    )
    parser.add_argument(
        "--dry-run",
        dest="dry_run",
        action="store_true",
        help="say what would be expired, deleted and erased; change nothing",
    )
    return parser
