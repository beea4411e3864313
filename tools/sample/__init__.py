"""Deterministic synthetic Open Images V1 (2016_08) release, at any size.

``write_sample_release`` writes a seeded, byte-reproducible release in the real
V1 tarball layout (``dict.csv``, ``images_2016_08/``, ``machine_ann_2016_08/``,
``human_ann_2016_08/``) with the shape of the real data: ~8.8 Zipf-distributed
machine labels per image with the published confidence histogram, ~10.4 human
labels per validation image (31.5% negatives, ~80% of them the image's own
machine labels) and Flickr-like metadata full of CSV traps (commas, doubled
quotes, UTF-8, undecoded HTML entities, rare newlines inside quoted titles).

How it stays fast and bounded: images are generated in chunks of 100k, each
from its own seeded random streams, by a small thread pool; chunks are written
in order, so the output does not depend on scheduling. A chunk builds every
CSV line as one row of a NUL-padded ``uint8`` matrix (vectorized numpy, no
Python per row) and squeezes the matrix into CSV text by dropping the NULs.
ImageIDs of chunk k come from the k-th slice of the 64-bit id space, so every
file is sorted by ImageID without a global sort.

Modules: ``fields`` (the byte matrices and random streams), ``vocabulary``
(mids, display names, dict.csv), ``labels`` (label sampling), ``images``
(image metadata), ``chunk`` (one chunk's CSV text), ``release`` (the thread
pool, the files and the public API re-exported here) and ``served`` (real images
for a sample release and a loopback server that serves them, faults included).
"""

from oibeam.tools.sample.release import (
    IMAGES_HEADER,
    LABELS_HEADER,
    THUMBNAIL_COLUMN,
    SampleRelease,
    write_sample_release,
)
from oibeam.tools.sample.served import SampleServer, served_dir

__all__ = [
    "IMAGES_HEADER",
    "LABELS_HEADER",
    "THUMBNAIL_COLUMN",
    "SampleRelease",
    "SampleServer",
    "served_dir",
    "write_sample_release",
]
