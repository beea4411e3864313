"""The 64-bit perceptual hash of an image, as imagehash.phash defines it (no
Beam here): grayscale, 32x32 (Lanczos), 2-D DCT-II, the top-left 8x8
coefficients, bit = coefficient > their median, first coefficient the most
significant bit.

The hash is of the upright image: the EXIF orientation, else the release's
Rotation (image_check.upright_by), is applied to the 32x32 pixels (a quarter
turn of a square commutes with the resize). A JPEG is decoded through
libjpeg's DCT scaling (`draft`) straight to grayscale at the smallest size of
at least 64x64 pixels, which costs a fraction of a full decode and moves the
hash by a bit or two (benchmarks/README.md, "Duplicates"). Only the 8 rows of
the DCT that are kept are computed: two small matrix products.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, JpegImagePlugin

from oibeam.transforms.fetch.image_check import plan_decode, upright_by

HASH_SIZE = 8
_SIDE = 32  # pixels a side of the image the DCT is taken of
_DRAFT = (64, 64)  # a JPEG decodes at the smallest scale at least this big

# DCT-II rows 0..7 of a 32-point signal (scipy.fftpack.dct's, unnormalised:
# the factor 2 changes no comparison with the median, so it is left out).
_K = np.arange(HASH_SIZE)[:, None]
_N = np.arange(_SIDE)[None, :]
_DCT = np.cos(np.pi * _K * (2 * _N + 1) / (2 * _SIDE))  # (8, 32)
_WEIGHTS = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def upright(pixels: np.ndarray, orientation: int | None, rotation: int | None):
    """A 2-D array as displayed: EXIF `orientation` (1-8) applied as Pillow's
    ImageOps.exif_transpose does, then turned counterclockwise by the release's
    `rotation` degrees (0, 90, 180, 270)."""
    if orientation == 2:
        pixels = pixels[:, ::-1]
    elif orientation == 3:
        pixels = pixels[::-1, ::-1]
    elif orientation == 4:
        pixels = pixels[::-1]
    elif orientation == 5:
        pixels = pixels.T
    elif orientation == 6:
        pixels = np.rot90(pixels, -1)
    elif orientation == 7:
        pixels = pixels[::-1, ::-1].T
    elif orientation == 8:
        pixels = np.rot90(pixels, 1)
    if rotation in (90, 180, 270):
        pixels = np.rot90(pixels, rotation // 90)
    return pixels


def hash_pixels(pixels: np.ndarray) -> int:
    """The hash (a signed 64-bit int, as stored) of 32x32 grayscale pixels."""
    coefficients = _DCT @ pixels.astype(np.float64) @ _DCT.T  # (8, 8)
    bits = coefficients.ravel() > np.median(coefficients)
    return int(
        np.bitwise_or.reduce(_WEIGHTS[bits], initial=np.uint64(0)).view(np.int64)
    )


def phash_image(
    image: Image.Image,
    orientation: int | None = None,
    rotation: int | None = None,
    draft: bool = True,
) -> int:
    """The hash of an opened (not yet loaded) image; `draft`: a JPEG decodes
    at reduced scale, straight to grayscale."""
    if draft and isinstance(image, JpegImagePlugin.JpegImageFile):
        image.draft("L", _DRAFT)
    small = image.convert("L").resize((_SIDE, _SIDE), Image.Resampling.LANCZOS)
    turn = upright_by(orientation, rotation)
    return hash_pixels(upright(np.asarray(small), *turn))


def phash_bytes(
    data: bytes,
    orientation: int | None = None,
    rotation: int | None = None,
    max_memory: int | None = None,
) -> int | None:
    """The hash of an image's bytes, None if decoding them would hold more
    than `max_memory` bytes (estimated from the header as a full decode's are:
    a JPEG at reduced scale holds little). Raises what Pillow raises on
    bytes it cannot decode."""
    with Image.open(io.BytesIO(data)) as image:
        held = plan_decode(image, data, "L", _DRAFT)  # a JPEG: draft mode
        if max_memory is not None and held > max_memory:
            return None
        return phash_image(image, orientation, rotation, draft=False)


def distance(a: int, b: int) -> int:
    """Hamming distance of two hashes."""
    return ((a ^ b) & 0xFFFF_FFFF_FFFF_FFFF).bit_count()
