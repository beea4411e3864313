"""How duplicates are searched (no Beam here: the command line builds this)."""

from __future__ import annotations

from dataclasses import dataclass

from oibeam.schemas.duplicates import DEFAULT_NEAR_DISTANCE

MAX_NEAR_DISTANCE = 16  # beyond this, unrelated photos pair up (they differ by ~26+)


@dataclass(frozen=True)
class DuplicatesConfig:
    """The search for duplicates after a fetch (flag names in brackets)."""

    # perceptual hashes at most this many bits apart are near duplicates
    near_distance: int = DEFAULT_NEAR_DISTANCE  # [--near-duplicate-distance]

    def __post_init__(self) -> None:
        if not 0 <= self.near_distance <= MAX_NEAR_DISTANCE:
            raise ValueError(
                f"--near-duplicate-distance is 0..{MAX_NEAR_DISTANCE} bits of 64"
            )
