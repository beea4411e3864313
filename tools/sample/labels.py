"""Label sampling: which labels each image gets, and their labels.csv lines.

Machine labels: Poisson(8.8) distinct Zipf-distributed labels per image with
the published V1 confidence histogram. Human labels (validation images only):
Poisson(10.4), ~80% of them the image's own machine labels, 31.5% negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oibeam.tools.sample.fields import concat, pool

_MACHINE_MEAN = 8.8  # machine labels per image (Poisson mean)
_HUMAN_MEAN = 10.4  # human labels per validation image (Poisson mean)
_HUMAN_NEGATIVE = 0.315  # share of human labels with Confidence 0
_HUMAN_FROM_MACHINE = 0.8  # share of human labels taken from the machine labels
_MAX_LABELS = 40  # cap on labels per image and source
_ZIPF_EXPONENT = 1.1
CONFIDENCES = ("0.5", "0.6", "0.7", "0.8", "0.9", "1.0")
_CONFIDENCE_WEIGHTS = (12.3, 22.0, 21.3, 20.5, 19.8, 4.0)
# confidence index of a uniform 16-bit draw (probabilities exact to 2**-16)
_CONFIDENCE_TABLE = np.searchsorted(
    np.cumsum(_CONFIDENCE_WEIGHTS) / sum(_CONFIDENCE_WEIGHTS),
    (np.arange(1 << 16) + 0.5) / (1 << 16),
    side="right",
).astype(np.int64)


def _poisson(rng: np.random.Generator, mean: float, cap: int, n: int) -> np.ndarray:
    """``n`` Poisson(mean) counts capped at ``cap`` (inverse-CDF table)."""
    k = np.arange(cap + 1)
    log_pmf = k * np.log(mean) - mean - np.cumsum(np.log(np.maximum(k, 1)))
    cdf = np.cumsum(np.exp(log_pmf))[:-1]
    return np.searchsorted(cdf, rng.random(n), side="right")


@dataclass(frozen=True)
class AliasTable:
    """Walker/Vose alias table: O(1) weighted draws of label indices."""

    threshold: np.ndarray  # uint64: keep the column if a 32-bit draw is below
    alias: np.ndarray  # int64: the index drawn otherwise

    @classmethod
    def of(cls, weights: np.ndarray) -> AliasTable:
        """The table drawing ``i`` with probability ``weights[i] / sum``."""
        n = len(weights)
        prob = (weights * (n / weights.sum())).tolist()
        alias = list(range(n))
        small = [i for i, p in enumerate(prob) if p < 1.0]
        large = [i for i, p in enumerate(prob) if p >= 1.0]
        while small and large:
            s, g = small.pop(), large.pop()
            alias[s] = g
            prob[g] -= 1.0 - prob[s]
            (small if prob[g] < 1.0 else large).append(g)
        for i in small + large:  # numerical leftovers are certain picks
            prob[i] = 1.0
        thresh = np.minimum(np.round(np.array(prob) * 2.0**32), 2.0**32)
        return cls(thresh.astype(np.uint64), np.array(alias, np.int64))

    def __len__(self) -> int:
        return len(self.alias)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` indices (one 64-bit random each: column, then threshold)."""
        raw = rng.bit_generator.random_raw(n)
        col = ((raw >> np.uint64(32)) * np.uint64(len(self))) >> np.uint64(32)
        col = col.astype(np.int64)
        keep = raw & np.uint64(0xFFFFFFFF) < self.threshold[col]
        return np.where(keep, col, self.alias[col])


def _distinct_labels(
    rng: np.random.Generator,
    zipf: AliasTable,
    want: np.ndarray,
    first_group: np.ndarray | None = None,
    first_label: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``want[g]`` distinct labels for every group (image) ``g``.

    The optional ``first_*`` labels (distinct per group, at most ``want[g]``)
    come first; then Zipf draws, a draw that repeats a label of its group being
    redrawn, i.e. weighted sampling without replacement. Returns (group,
    label) in acceptance order, not grouped. A group ends up short only when
    ``want`` is close to the number of labels (tiny ``num_labels``).
    """
    n, labels = len(want), len(zipf)
    if first_group is None or first_label is None:
        first_group = first_label = np.zeros(0, np.int64)
    groups, chosen = [first_group], [first_label]
    seen = [np.sort(first_group * labels + first_label)]  # accepted keys, sorted
    need = want - np.bincount(first_group, minlength=n)
    for _ in range(200):  # ~12 rounds at the default sizes
        short = np.flatnonzero(need > 0)
        if not len(short):
            break
        group = np.repeat(short, need[short])
        label = zipf.draw(rng, len(group))
        key = group * labels + label
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        fresh = np.ones(len(key), bool)
        fresh[order[1:][sorted_key[1:] == sorted_key[:-1]]] = False  # repeats
        for old in seen:
            if len(old):
                at = np.minimum(np.searchsorted(old, key), len(old) - 1)
                fresh &= old[at] != key
        groups.append(group[fresh])
        chosen.append(label[fresh])
        seen.append(sorted_key[fresh[order]])
        need -= np.bincount(groups[-1], minlength=n)
    return np.concatenate(groups), np.concatenate(chosen)


@dataclass(frozen=True)
class Labels:
    """Label rows of one chunk (sorted by image): chunk image index, label
    index, confidence (machine: index into CONFIDENCES; human: 0 or 1)."""

    image: np.ndarray
    label: np.ndarray
    confidence: np.ndarray


@dataclass(frozen=True)
class LabelPools:
    """What every chunk shares: the Zipf table over the used labels and the
    labels.csv line tails, indexed by label * levels + confidence."""

    zipf: AliasTable
    machine_tails: np.ndarray  # ",machine,{mid},{conf}\n", 6 levels
    human_tails: np.ndarray  # ",human,{mid},{0|1}\n", 2 levels

    @classmethod
    def of(cls, used_mids: list[str], ranks: np.ndarray) -> LabelPools:
        """Pools for the used mids, ``ranks`` giving each one's Zipf rank."""
        weights = 1.0 / (ranks.astype(np.float64) + 1.0) ** _ZIPF_EXPONENT
        return cls(
            zipf=AliasTable.of(weights),
            machine_tails=pool(
                [f",machine,{mid},{c}\n" for mid in used_mids for c in CONFIDENCES]
            ),
            human_tails=pool(
                [f",human,{mid},{v}\n" for mid in used_mids for v in "01"]
            ),
        )


def machine_labels(rng: np.random.Generator, zipf: AliasTable, n: int) -> Labels:
    """Machine labels of ``n`` images, highest confidence first per image."""
    want = _poisson(rng, _MACHINE_MEAN, min(_MAX_LABELS, len(zipf)), n)
    image, label = _distinct_labels(rng, zipf, want)
    conf = _CONFIDENCE_TABLE[rng.integers(0, 1 << 16, len(label), dtype=np.uint16)]
    order = np.argsort(image * 8 + (len(CONFIDENCES) - 1 - conf), kind="stable")
    return Labels(image[order], label[order], conf[order])


def human_labels(
    rng: np.random.Generator,
    zipf: AliasTable,
    machine: Labels,
    images: np.ndarray,
    chunk_size: int,
) -> Labels:
    """Human labels of the chunk images ``images`` (sorted chunk indices).

    Raters verify each machine label of the image with probability
    ``_HUMAN_FROM_MACHINE * _HUMAN_MEAN / _MACHINE_MEAN`` and add
    Poisson((1 - _HUMAN_FROM_MACHINE) * _HUMAN_MEAN) Zipf labels, so the count
    is Poisson(_HUMAN_MEAN) (thinning) and ~80% are the image's own machine
    labels; 31.5% of all are negatives.
    """
    n = len(images)
    cap = min(_MAX_LABELS, len(zipf))
    local = np.full(chunk_size, -1, np.int64)
    local[images] = np.arange(n)
    group = local[machine.image]
    mine = group >= 0
    group, label = group[mine], machine.label[mine]
    verify = _HUMAN_FROM_MACHINE * _HUMAN_MEAN / _MACHINE_MEAN
    pick = rng.random(len(group)) < verify
    extra = _poisson(rng, (1 - _HUMAN_FROM_MACHINE) * _HUMAN_MEAN, cap, n)
    want = np.minimum(np.bincount(group[pick], minlength=n) + extra, cap)
    group, label = _distinct_labels(rng, zipf, want, group[pick], label[pick])
    order = np.argsort(group, kind="stable")
    positive = rng.random(len(group)) >= _HUMAN_NEGATIVE
    return Labels(images[group[order]], label[order], positive.astype(np.int64))


def label_lines(
    hexid: np.ndarray, tails: np.ndarray, levels: int, labels: Labels
) -> np.ndarray:
    """labels.csv row matrix (in the "rows" scratch buffer): the ImageID, then
    the ",source,mid,conf" tail."""
    tail = labels.label * levels + labels.confidence
    parts = [(hexid, labels.image), (tails, tail)]
    return concat(parts, len(labels.image), scratch="rows")
