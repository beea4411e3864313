"""The flags of the duplicates search (fetch and snapshot runs)."""

from __future__ import annotations

from oibeam.pipelines.options.flags import FlagGroup, flag
from oibeam.transforms.dedup.dedup_config import DuplicatesConfig

TITLE = "duplicates"

DUPLICATES = FlagGroup(
    TITLE,
    DuplicatesConfig,
    (
        flag(
            "--near-duplicate-distance",
            "near_distance",
            type=int,
            metavar="BITS",
            help="fetched images whose perceptual hashes (64 bits) differ in at "
            "most this many bits are near duplicates in tables/duplicates "
            "(re-encoded or resized copies differ by 0-2, crops of 2-3%% by "
            "2-6, different photos by 26 or more)",
        ),
    ),
)
