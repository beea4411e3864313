"""The pixels of `--format files`: which way an image is turned upright, its
size once resized, its boxes in pixels of the written file, and the
re-encode itself. No Beam here, no files: bytes in, bytes out.

Upright: the image's EXIF orientation, else the release's `Rotation`
(counterclockwise degrees), as everywhere in a run (image_check.upright_by).
Turned by Rotation, the written frame is the run's upright frame
(schemas/boxes.py), so the run's `upright_*` and box `*_px` only scale; turned
by EXIF, it is the EXIF-oriented stored image (the same frame when the two
agree, as they do for originals).

An image keeps its bytes, unchanged, when it needs neither turning nor
resizing; otherwise it is decoded (a JPEG at the smallest scale libjpeg can
give that is not below the target), turned, resized with Lanczos and written
as a JPEG without EXIF (an alpha channel laid on white, as img2dataset does).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, JpegImagePlugin

# Private to fetch, shared on purpose: which JPEGs libjpeg may decode scaled
# (a lossless one corrupts Pillow's heap when drafted).
from oibeam.transforms.fetch.image_check import (
    _SCALABLE_FRAMES,
    _jpeg_layout,
    upright_by,
)

T = Image.Transpose
# EXIF orientation -> the transposition that makes the stored image upright.
_EXIF: dict[int, T] = {
    2: T.FLIP_LEFT_RIGHT,
    3: T.ROTATE_180,
    4: T.FLIP_TOP_BOTTOM,
    5: T.TRANSPOSE,
    6: T.ROTATE_270,
    7: T.TRANSVERSE,
    8: T.ROTATE_90,
}
# Rotation (counterclockwise degrees) -> the same; Pillow's ROTATE_n is ccw.
_ROTATION: dict[int, T] = {90: T.ROTATE_90, 180: T.ROTATE_180, 270: T.ROTATE_270}
_SWAPS = frozenset({T.ROTATE_90, T.ROTATE_270, T.TRANSPOSE, T.TRANSVERSE})
RESIZE_MODES = ("longest", "shortest")
DEFAULT_QUALITY = 95


@dataclass(frozen=True)
class Resize:
    """How written images are sized: the `mode` side at most `side` pixels
    (aspect kept; never enlarged); side None keeps every size."""

    side: int | None = None
    mode: str = "longest"
    quality: int = DEFAULT_QUALITY

    def __post_init__(self) -> None:
        if self.side is not None and self.side < 1:
            raise ValueError(f"--resize-{self.mode} must be at least 1")
        if self.mode not in RESIZE_MODES:
            raise ValueError(f"resize mode must be one of {', '.join(RESIZE_MODES)}")
        if not 1 <= self.quality <= 100:
            raise ValueError("--jpeg-quality must be within [1, 100]")

    def size(self, width: int, height: int) -> tuple[int, int]:
        """The written size of an upright width x height image."""
        if self.side is None:
            return width, height
        side = max(width, height) if self.mode == "longest" else min(width, height)
        if side <= self.side:
            return width, height
        scale = self.side / side
        return max(1, round(width * scale)), max(1, round(height * scale))


def turn(rotation: int | None, exif_orientation: int | None) -> T | None:
    """The transposition that makes the stored image upright (None: none),
    by image_check.upright_by."""
    exif_orientation, rotation = upright_by(exif_orientation, rotation)
    if rotation is not None:
        return _ROTATION.get(rotation)
    return _EXIF.get(exif_orientation) if exif_orientation else None


def turned_size(width: int, height: int, op: T | None) -> tuple[int, int]:
    return (height, width) if op in _SWAPS else (width, height)


def boxes_in_file(x_min, x_max, y_min, y_max, op: T | None, width, height):
    """Box fractions of the stored image -> pixels (x0, x1, y0, y1) of the
    written width x height file, the image turned by `op` (arrays or floats).
    For a Rotation the same arithmetic as transforms/fetch/pixel_boxes."""
    x0, x1 = np.asarray(x_min, np.float64), np.asarray(x_max, np.float64)
    y0, y1 = np.asarray(y_min, np.float64), np.asarray(y_max, np.float64)
    # Fractions of the upright image; flips run 1 - x the other way round.
    if op is None:
        f = (x0, x1, y0, y1)
    elif op == T.FLIP_LEFT_RIGHT:
        f = (1 - x1, 1 - x0, y0, y1)
    elif op == T.FLIP_TOP_BOTTOM:
        f = (x0, x1, 1 - y1, 1 - y0)
    elif op == T.ROTATE_180:
        f = (1 - x1, 1 - x0, 1 - y1, 1 - y0)
    elif op == T.ROTATE_90:
        f = (y0, y1, 1 - x1, 1 - x0)
    elif op == T.ROTATE_270:
        f = (1 - y1, 1 - y0, x0, x1)
    elif op == T.TRANSPOSE:
        f = (y0, y1, x0, x1)
    else:  # TRANSVERSE
        f = (1 - y1, 1 - y0, 1 - x1, 1 - x0)
    return f[0] * width, f[1] * width, f[2] * height, f[3] * height


def needs_render(width: int, height: int, op: T | None, resize: Resize) -> bool:
    """Whether the stored bytes cannot be written as they are."""
    upright = turned_size(width, height, op)
    return op is not None or resize.size(*upright) != upright


def _draft(image: Image.Image, data: bytes, size: tuple[int, int]) -> None:
    """Lets libjpeg decode a JPEG scaled down to no less than `size`."""
    if not isinstance(image, JpegImagePlugin.JpegImageFile):
        return
    frames, _ = _jpeg_layout(data)
    if frames and frames <= _SCALABLE_FRAMES:
        image.draft(image.mode, size)


def _flatten(image: Image.Image) -> Image.Image:
    """RGB or L, an alpha channel laid on white."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode in ("P", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA"):
        white = Image.new("RGB", image.size, (255, 255, 255))
        white.paste(image.convert("RGBA"), mask=image.getchannel("A"))
        return white
    return image.convert("RGB")


def render(data: bytes, op: T | None, target: tuple[int, int], quality: int) -> bytes:
    """The image of `data` turned by `op`, resized to `target` (its upright
    size after resizing), as JPEG bytes. Raises what Pillow raises for bytes
    it cannot decode (a truncated image: OSError)."""
    with Image.open(io.BytesIO(data)) as image:
        stored_target = turned_size(*target, op)  # the same turn undoes a swap
        _draft(image, data, stored_target)
        image.load()
        # A CMYK profile would mislead a reader of the RGB JPEG.
        icc = image.info.get("icc_profile") if image.mode in ("RGB", "L") else None
        picture = _flatten(image)
        if op is not None:
            picture = picture.transpose(op)
        if picture.size != target:
            picture = picture.resize(target, Image.Resampling.LANCZOS)
        out = io.BytesIO()
        options = {"quality": quality}
        if icc:
            options["icc_profile"] = icc
        picture.save(out, "JPEG", **options)
        return out.getvalue()
