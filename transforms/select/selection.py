"""Selection: which images a run picks (the selection flags), and what can be
told of its size before it runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Selection:
    labels: tuple[str, ...] = ()  # mids; empty: any label
    min_confidence: float = 0.0
    source: str = "any"  # machine | human | any
    subsets: tuple[str, ...] = ()  # empty: every subset
    trainable_only: bool = False
    max_per_label: int | None = None
    limit: int | None = None
    sample: float | None = None  # fraction of images, by digest
    # Train images that duplicate a validation or test image are dropped
    # (transforms/select/eval_duplicates.py), and counted with their reason.
    drop_eval_duplicates: bool = False
    duplicates_from: str | None = None  # a run whose duplicates table marks more

    def __post_init__(self) -> None:
        if self.duplicates_from and not self.drop_eval_duplicates:
            raise ValueError("--duplicates-from goes with --drop-eval-duplicates")
        if self.source not in ("machine", "human", "any"):
            raise ValueError(f"--source {self.source!r}: machine, human or any")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError("--min-confidence must be within [0, 1]")
        if self.sample is not None and not 0.0 < self.sample <= 1.0:
            raise ValueError("--sample must be a fraction in (0, 1]")
        for name in ("max_per_label", "limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")

    def at_most(self, images: int) -> int:
        """How many of `images` images this selection can pick (--sample
        taken as its expected share)."""
        if self.sample is not None:
            images = round(images * self.sample)
        if self.max_per_label is not None and self.labels:
            images = min(images, self.max_per_label * len(self.labels))
        return images if self.limit is None else min(images, self.limit)

    def expected(self, images: int) -> int | None:
        """How many of `images` images this selection picks, as far as can be
        told before it runs (an upper bound); None when labels decide and
        nothing but the catalogue bounds them (--trainable-only, --label
        without --max-per-label...)."""
        bound = self.at_most(images)
        capped = self.limit is not None or (self.max_per_label and self.labels)
        return bound if not self.by_label or capped else None

    @property
    def by_label(self) -> bool:
        """Whether images qualify through their labels at all."""
        return bool(
            self.labels
            or self.min_confidence > 0
            or self.source != "any"
            or self.trainable_only
            or self.max_per_label
        )
