"""Trainable-label rules: named presets plus overridable thresholds.

"Trainable" changed meaning between releases:
  v1  >= 50 validation images with a human-positive label and
      >= 20 train images with a machine label          (Open Images V1)
  v2  >= 30 train images and >= 5 validation images,
      both human-verified positives                     (V2/V3 classes-trainable)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from oibeam.schemas.releases import SOURCE_KINDS


@dataclass(frozen=True)
class TrainableRule:
    name: str
    train_source: str  # machine | human | any
    min_train: int
    validation_source: str
    min_validation: int

    def __post_init__(self) -> None:
        for source in (self.train_source, self.validation_source):
            if source not in SOURCE_KINDS:
                kinds = ", ".join(SOURCE_KINDS)
                raise ValueError(f"trainable source {source!r} is not one of {kinds}")
        if self.min_train < 0 or self.min_validation < 0:
            raise ValueError("trainable thresholds must be >= 0")

    def describe(self) -> str:
        return (
            f">= {self.min_validation} validation images ({self.validation_source} "
            f"positive) and >= {self.min_train} train images ({self.train_source} "
            "positive)"
        )


PRESETS: dict[str, TrainableRule] = {
    "v1": TrainableRule("v1", "machine", 20, "human", 50),
    "v2": TrainableRule("v2", "human", 30, "human", 5),
}


def make_rule(
    preset: str = "v1",
    *,
    train_source: str | None = None,
    min_train: int | None = None,
    validation_source: str | None = None,
    min_validation: int | None = None,
) -> TrainableRule:
    """A preset with any of its fields overridden (the name records overrides)."""
    if preset not in PRESETS:
        raise ValueError(
            f"unknown trainable rule {preset!r}; choose {', '.join(PRESETS)}"
        )
    base = PRESETS[preset]
    changes = {
        k: v
        for k, v in dict(
            train_source=train_source,
            min_train=min_train,
            validation_source=validation_source,
            min_validation=min_validation,
        ).items()
        if v is not None and v != getattr(base, k)
    }
    if not changes:
        return base
    return replace(base, name=f"{preset}+custom", **changes)


def trainable_mask(stats: pa.Table, rule: TrainableRule) -> np.ndarray:
    """True for the label_stats rows that the rule calls trainable."""
    train = stats[f"train_{rule.train_source}_positive_images"].to_numpy()
    validation = stats[f"validation_{rule.validation_source}_positive_images"]
    return (train >= rule.min_train) & (validation.to_numpy() >= rule.min_validation)
