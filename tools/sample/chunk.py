"""One chunk of the release: its images and labels as CSV text.

Chunk ``k`` draws from its own seeded streams (``stream(seed, 3, k, ...)``),
so chunks can be generated in any order, on any thread, with the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oibeam.tools.sample.fields import concat, hex_digits, squeeze, squeeze_ends, stream
from oibeam.tools.sample.images import ImagePools, image_parts
from oibeam.tools.sample.labels import (
    CONFIDENCES,
    LabelPools,
    human_labels,
    label_lines,
    machine_labels,
)


@dataclass(frozen=True)
class Context:
    """Everything a chunk needs besides its index: settings and pools."""

    seed: int
    validation_fraction: float
    thumbnails: bool
    images: ImagePools
    labels: LabelPools


@dataclass(frozen=True)
class ChunkText:
    """CSV text of one chunk (pieces of bytes) by output file, and its number
    of label rows."""

    files: dict[str, list]  # keys: release._FILES
    label_rows: int


def _image_ids(rng: np.random.Generator, count: int, lo: int, hi: int) -> np.ndarray:
    """``count`` distinct sorted uint64 ids in [lo, hi]."""
    ids = np.zeros(0, np.uint64)
    while len(ids) < count:
        more = rng.integers(lo, hi, count - len(ids), dtype=np.uint64, endpoint=True)
        ids = np.sort(np.concatenate([ids, more]))
        ids = ids[np.concatenate([[True], ids[1:] != ids[:-1]])]
    return ids


def chunk(
    ctx: Context, k: int, count: int, lo: int, hi: int, force_newline: bool
) -> ChunkText:
    """Generate chunk ``k``: ``count`` images with ids in [lo, hi], and labels;
    ``force_newline`` puts a newline in one title for sure."""
    rng = stream(ctx.seed, 3, k, 0)
    ids = _image_ids(rng, count, lo, hi)
    validation = rng.random(count) < ctx.validation_fraction
    hexid = hex_digits(ids, 16)
    thumbnail_rng = stream(ctx.seed, 3, k, 4) if ctx.thumbnails else None
    parts = image_parts(
        ctx.images,
        stream(ctx.seed, 3, k, 1),
        ids,
        hexid,
        validation,
        force_newline,
        thumbnail_rng,
    )
    rows = concat(parts, count, scratch="rows")
    files = {
        "images_train": squeeze(rows, validation),
        "images_validation": squeeze(rows[validation]),
    }

    zipf = ctx.labels.zipf
    machine = machine_labels(stream(ctx.seed, 3, k, 2), zipf, count)
    rows = label_lines(hexid, ctx.labels.machine_tails, len(CONFIDENCES), machine)
    in_validation = validation[machine.image]
    files["machine_train"] = squeeze_ends(rows, in_validation)
    files["machine_validation"] = squeeze_ends(rows[in_validation])

    human_rng = stream(ctx.seed, 3, k, 3)
    human = human_labels(human_rng, zipf, machine, np.flatnonzero(validation), count)
    rows = label_lines(hexid, ctx.labels.human_tails, 2, human)
    files["human_validation"] = squeeze_ends(rows)
    return ChunkText(files, len(machine.image) + len(human.image))
