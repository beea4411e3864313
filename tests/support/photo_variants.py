"""Near-duplicate variants of a real photo, made in the test: re-encoded,
resized, cropped, or stored turned with an EXIF orientation that turns it
back."""

from __future__ import annotations

import io

from PIL import Image

from support.paths import IMAGES

# Real photos (tests/fixtures/images), unlike one another.
LANDSCAPE = "exif_orientation_recurser_Landscape_1.jpg"  # 1800x1200, 347 KB
LANDSCAPE_EXIF6 = "exif_orientation_recurser_Landscape_6.jpg"  # the same, EXIF 6
STREET = "openimages_v1_davidgengenbach_0143a0cf29afbf75.jpg"  # 420x420
PORTRAIT = "openimages_v1_davidgengenbach_036c241293666110.jpg"  # 420x560
LARGE = "tencent_ml_images_im_0.jpg"  # 3648x2736, 1.9 MB
HOPPER = "pillow_tests_hopper.png"  # 128x128
DIFFERENT = (LANDSCAPE, STREET, PORTRAIT, LARGE, HOPPER)

_ORIENTATION = 0x0112


def photo(name: str) -> bytes:
    return (IMAGES / name).read_bytes()


def _rgb(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def _jpeg(image: Image.Image, quality: int = 90, exif: bytes | None = None) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return out.getvalue()


def reencoded(data: bytes, quality: int = 60) -> bytes:
    return _jpeg(_rgb(data), quality)


def resized(data: bytes, factor: float = 0.5) -> bytes:
    image = _rgb(data)
    size = (round(image.width * factor), round(image.height * factor))
    return _jpeg(image.resize(size, Image.Resampling.LANCZOS))


def cropped(data: bytes, share: float = 0.02) -> bytes:
    """`share` of the width cut off the right edge."""
    image = _rgb(data)
    return _jpeg(
        image.crop((0, 0, image.width - round(image.width * share), image.height))
    )


def exif_rotated(data: bytes) -> bytes:
    """The pixels stored turned a quarter counterclockwise, with EXIF
    orientation 6 (turn clockwise to display): upright, the same photo."""
    exif = Image.Exif()
    exif[_ORIENTATION] = 6
    return _jpeg(_rgb(data).transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())


def variants(data: bytes) -> dict[str, bytes]:
    """Every kind of near duplicate of one photo, by name."""
    return {
        "reencoded": reencoded(data),
        "resized": resized(data),
        "cropped": cropped(data),
        "exif_rotated": exif_rotated(data),
    }
