"""The flags that choose which images to fetch."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from oibeam.pipelines.options.flags import FlagGroup, flag
from oibeam.schemas.releases import SOURCE_KINDS, SUBSETS
from oibeam.transforms.select.selection import Selection

IMAGE_SOURCES = ("original", "thumbnail")  # which URL --image-source picks
TITLE = "selection (what to fetch)"
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelQuery:
    """--label values as given (display names or mids), resolved to mids where
    the run is launched; with_descendants adds every label under them."""

    names: tuple[str, ...] = ()
    with_descendants: bool = False


def add_legacy_source(parser: argparse.ArgumentParser) -> None:
    """--source, which used to mean both --label-source and --image-source."""
    parser.add_argument(
        "--source",
        dest="legacy_source",
        nargs="+",
        action="extend",
        choices=SOURCE_KINDS + IMAGE_SOURCES,
        metavar="SOURCE",
        help="deprecated: use --label-source or --image-source",
    )


def apply_legacy_source(args: argparse.Namespace) -> None:
    """Moves the values of a deprecated --source to --label-source and
    --image-source (ValueError where they say two things)."""
    values = getattr(args, "legacy_source", None)
    if not values:
        return
    _LOG.warning("--source is deprecated: use --label-source or --image-source")
    for dest, kinds in (
        ("label_source", SOURCE_KINDS),
        ("image_source", IMAGE_SOURCES),
    ):
        found = list(dict.fromkeys(v for v in values if v in kinds))
        given = getattr(args, dest)
        if len(found) > 1 or (found and given and given != found[0]):
            flag_name = "--" + dest.replace("_", "-")
            raise ValueError(f"--source {' '.join(values)}: two values for {flag_name}")
        if found:
            setattr(args, dest, found[0])


def _distinct(values: list[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values or ()))


LABELS = FlagGroup(
    TITLE,
    LabelQuery,
    (
        flag(
            "--label",
            "names",
            nargs="+",
            action="extend",
            metavar="NAME_OR_MID",
            help="keep images with these labels (display names need --classes)",
        ),
        flag(
            "--with-descendants",
            action="store_true",
            help="--label also selects every label under it in --hierarchy "
            "(e.g. Mammal selects Dog and Cat)",
        ),
    ),
)

SELECTION = FlagGroup(
    TITLE,
    Selection,
    (
        flag(
            "--min-confidence",
            type=float,
            help="ignore label rows below this confidence",
        ),
        flag(
            "--label-source",
            "source",
            choices=SOURCE_KINDS,
            default=None,  # None: not given (the deprecated --source may say)
            help="which labels select an image: machine, human (a human 0 never "
            "does), or any (a human verdict on a label overrules the machine's; "
            "the default)",
        ),
        flag(
            "--subset",
            "subsets",
            convert=_distinct,
            nargs="+",
            action="extend",
            choices=SUBSETS,
            help="keep images of these subsets (default: every subset)",
        ),
        flag(
            "--trainable-only",
            action="store_true",
            help="only labels of the trainable set select images",
        ),
        flag(
            "--max-per-label",
            type=int,
            help="at most N images per label (stable hash of ImageID)",
        ),
        flag("--limit", type=int, help="at most N images in all"),
        flag(
            "--sample",
            type=float,
            metavar="FRACTION",
            help="a stable fraction of the images, e.g. 0.01",
        ),
        flag(
            "--drop-eval-duplicates",
            action="store_true",
            help="drop train images that duplicate a validation or test image: "
            "the same OriginalMD5, or (--duplicates-from) in a duplicates group "
            "with one; each counted in the manifest with its reason",
        ),
        flag(
            "--duplicates-from",
            metavar="RUN_DIR",
            help="with --drop-eval-duplicates: also drop the train images the "
            "duplicates table of this earlier fetch or snapshot run puts in a "
            "group with a validation or test image (near duplicates are known "
            "only after a fetch); a snapshot refresh defaults to its --previous",
        ),
    ),
)
