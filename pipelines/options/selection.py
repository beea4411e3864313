"""The flags that choose which images to fetch."""

from __future__ import annotations

from dataclasses import dataclass

from oibeam.pipelines.options.flags import FlagGroup, flag
from oibeam.schemas.releases import SOURCE_KINDS, SUBSETS
from oibeam.transforms.select.select_images import Selection

IMAGE_SOURCES = ("original", "thumbnail")  # which URL --source picks
TITLE = "selection (what to fetch)"


@dataclass(frozen=True)
class LabelQuery:
    """--label values as given (display names or mids), resolved to mids where
    the run is launched; with_descendants adds every label under them."""

    names: tuple[str, ...] = ()
    with_descendants: bool = False


def _one_of(values: list[str] | None, kinds: tuple[str, ...]) -> str | None:
    """The --source value among `kinds` (None: not given); ValueError for two."""
    found = [v for v in values or () if v in kinds]
    if len(found) > 1:
        raise ValueError(
            "--source: at most one of machine|human|any and one of original|thumbnail"
        )
    return found[0] if found else None


def label_source(values: list[str] | None) -> str:
    return _one_of(values, SOURCE_KINDS) or "any"


def image_source(values: list[str] | None) -> str:
    return _one_of(values, IMAGE_SOURCES) or "original"


def _distinct(values: list[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values or ()))


LABELS = FlagGroup(
    TITLE,
    LabelQuery,
    (
        flag(
            "--label",
            "names",
            action="append",
            metavar="NAME_OR_MID",
            help="keep images with this label (repeatable); names need --classes",
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
            "--source",
            convert=label_source,
            action="append",
            choices=SOURCE_KINDS + IMAGE_SOURCES,
            metavar="SOURCE",
            help="machine|human|any: which labels select (human 0 never does); "
            "original|thumbnail: which URL to download (Thumbnail300KURL, not "
            "MD5-checked: its bytes change over time). May be given twice.",
        ),
        flag(
            "--subset",
            "subsets",
            convert=_distinct,
            action="append",
            choices=SUBSETS,
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
    ),
)
