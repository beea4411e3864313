"""Writing a release: argument checks, chunking, the thread pool, the files."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np

from oibeam.tools.sample.chunk import ChunkText, Context, chunk
from oibeam.tools.sample.fields import stream
from oibeam.tools.sample.images import ImagePools
from oibeam.tools.sample.labels import LabelPools
from oibeam.tools.sample.served import served_dir, write_pool
from oibeam.tools.sample.vocabulary import vocabulary, write_dictionary

IMAGES_HEADER = (
    "ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,"
    "Author,Title,OriginalSize,OriginalMD5"
)
THUMBNAIL_COLUMN = "Thumbnail300KURL"
LABELS_HEADER = "ImageID,Source,LabelName,Confidence"

_CHUNK = 100_000  # images per chunk
_WORKERS = min(4, max(2, os.cpu_count() or 2))  # generator threads, one chunk each
_NEWLINE_MIN_IMAGES = 1000  # from this size on, at least one newline title
_BAD_URL_CHARS = ',"\r\n\0'
_FILES = {  # ChunkText.files key -> path under the release root
    "images_train": "images_2016_08/train/images.csv",
    "images_validation": "images_2016_08/validation/images.csv",
    "machine_train": "machine_ann_2016_08/train/labels.csv",
    "machine_validation": "machine_ann_2016_08/validation/labels.csv",
    "human_validation": "human_ann_2016_08/validation/labels.csv",
}


@dataclass(frozen=True)
class SampleRelease:
    """Paths and row counts of a release written by ``write_sample_release``."""

    root: str  # output_dir (absolute)
    images_files: tuple[str, ...]  # absolute paths, train first
    labels_files: tuple[str, ...]  # machine train, machine validation, human val.
    classes_file: str  # dict.csv
    images: int  # total image rows written
    label_rows: int  # total label rows written (all label files)


def _check_arguments(
    images: int,
    seed: int,
    validation_fraction: float,
    num_labels: int,
    url_base: str,
) -> None:
    """Raise ValueError for arguments the generator cannot honour."""

    def whole(value: object) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not whole(images) or images < 1:
        raise ValueError(f"images must be an integer >= 1, got {images!r}")
    if not whole(seed) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if not whole(num_labels) or num_labels < 1:
        raise ValueError(f"num_labels must be an integer >= 1, got {num_labels!r}")
    if not isinstance(validation_fraction, (int, float)) or not (
        0.0 <= validation_fraction < 1.0
    ):
        raise ValueError(
            f"validation_fraction must be in [0, 1), got {validation_fraction!r}"
        )
    if not isinstance(url_base, str) or any(c in url_base for c in _BAD_URL_CHARS):
        raise ValueError(
            "url_base must be a string without commas, quotes, newlines or NUL "
            f"(OriginalURL is written unquoted), got {url_base!r}"
        )


def _chunks_in_order(ctx: Context, images: int) -> Iterator[ChunkText]:
    """Generate the chunks on ``_WORKERS`` threads, yielding them in order.

    Chunk sizes are a multinomial split of ``images`` into ~_CHUNK sized
    chunks; chunk k takes its ids from the k-th slice of the 64-bit id space,
    so every file comes out sorted by ImageID.
    """
    chunks = -(-images // _CHUNK)
    counts = stream(ctx.seed, 2).multinomial(images, [1.0 / chunks] * chunks)
    newline_chunk = -1  # the chunk that gets a newline title for sure
    if images >= _NEWLINE_MIN_IMAGES:
        newline_chunk = int(np.flatnonzero(counts)[0])
    with ThreadPoolExecutor(_WORKERS) as pool:
        pending: deque[Future[ChunkText]] = deque()
        for k, count in enumerate(counts.tolist()):
            lo, hi = (k << 64) // chunks, ((k + 1) << 64) // chunks - 1
            force = k == newline_chunk
            pending.append(pool.submit(chunk, ctx, k, count, lo, hi, force))
            if len(pending) >= _WORKERS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def write_sample_release(
    output_dir: str,
    images: int,
    *,
    seed: int = 0,
    validation_fraction: float = 0.018,
    num_labels: int = 7844,
    url_base: str = "https://c1.staticflickr.com/5/4129/",
    thumbnails: bool = False,
    serve_base: str | None = None,
) -> SampleRelease:
    """Write a synthetic Open Images V1 (2016_08) release under ``output_dir``.

    ``images`` images are written (each one a validation image with probability
    ``validation_fraction``), labelled with ``num_labels`` Zipf-distributed mids
    (dict.csv also lists ~0.5% unused ones). Same arguments give byte-identical
    files; ``thumbnails`` adds a Thumbnail300KURL column without changing the
    other columns. ``serve_base`` (e.g. http://127.0.0.1:8000/) writes a pool
    of real JPEGs under ``served/`` and points OriginalURL at
    ``{serve_base}{ImageID}.jpg`` with that image's size and MD5, for a
    SampleServer (see served.py). Existing files are overwritten.

    Raises:
        ValueError: ``images`` < 1, ``validation_fraction`` outside [0, 1),
            ``num_labels`` < 1, ``seed`` < 0, or a ``url_base`` that would
            need quoting.
    """
    if serve_base is not None:
        url_base = serve_base
    _check_arguments(images, seed, validation_fraction, num_labels, url_base)
    images, seed, num_labels = int(images), int(seed), int(num_labels)
    root = os.path.abspath(output_dir)
    paths = {key: os.path.join(root, rel) for key, rel in _FILES.items()}
    for path in paths.values():
        os.makedirs(os.path.dirname(path), exist_ok=True)
    classes_file = os.path.join(root, "dict.csv")

    mids, names, used, ranks = vocabulary(seed, num_labels)
    write_dictionary(classes_file, mids, names)
    ctx = Context(
        seed=seed,
        validation_fraction=validation_fraction,
        thumbnails=thumbnails,
        images=ImagePools.of(
            stream(seed, 1),
            images,
            url_base,
            None if serve_base is None else write_pool(served_dir(root), seed),
        ),
        labels=LabelPools.of(used, ranks),
    )
    images_header = IMAGES_HEADER + ("," + THUMBNAIL_COLUMN if thumbnails else "")
    label_rows = 0
    with ExitStack() as stack:
        files = {
            key: stack.enter_context(open(path, "wb", buffering=1 << 20))
            for key, path in paths.items()
        }
        for key, f in files.items():
            header = images_header if key.startswith("images") else LABELS_HEADER
            f.write(header.encode() + b"\n")
        for text in _chunks_in_order(ctx, images):
            for key, f in files.items():
                f.writelines(text.files[key])
            label_rows += text.label_rows
    return SampleRelease(
        root=root,
        images_files=(paths["images_train"], paths["images_validation"]),
        labels_files=(
            paths["machine_train"],
            paths["machine_validation"],
            paths["human_validation"],
        ),
        classes_file=classes_file,
        images=images,
        label_rows=label_rows,
    )
