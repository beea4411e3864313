"""Verify downloaded bytes: the release's size and MD5, then what Pillow sees.

Validation in tiers (see DESIGN): size + MD5 is the integrity proof (it caught
every truncated or altered file); a header parse gives format, mode,
dimensions, EXIF orientation and the pixel-count guard against bombs, for
0.035 ms; a full decode (7 ms) is done only where there is no checksum to
compare (thumbnails, mirrors without one) or when asked for.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from oibeam.schemas.fetch import CHECKED_DECODE, CHECKED_MD5

# We check pixel counts ourselves (`max_pixels`); Pillow's own warning below its
# hard limit would only repeat it on stderr.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

_EXIF_ORIENTATION = 0x0112
DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's hard limit (2 x MAX_IMAGE_PIXELS)


@dataclass
class Verdict:
    """What the bytes turned out to be (status None: a good image)."""

    status: str | None = None
    error: str | None = None
    md5_ok: bool | None = None
    checked: str | None = None
    format: str | None = None
    mode: str | None = None
    width: int | None = None
    height: int | None = None
    exif_orientation: int | None = None
    display_width: int | None = None
    display_height: int | None = None


def md5_base64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def check_image(
    data: bytes,
    digest: bytes,
    expected_size: int | None,
    expected_md5: str | None,
    *,
    rotation: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    full_decode: bool = False,
) -> Verdict:
    """Checks one image's bytes against the release and opens it with Pillow.

    `expected_md5` is base64 (as OriginalMD5); None means there is nothing to
    compare (thumbnails): the image is then decoded fully instead.
    """
    verdict = Verdict()
    if expected_md5 is not None:
        if expected_size is not None and len(data) != expected_size:
            return Verdict(
                "changed", f"size {len(data)} != OriginalSize {expected_size}", False
            )
        got = md5_base64(digest)
        if got != expected_md5:
            return Verdict("changed", f"MD5 {got} != OriginalMD5 {expected_md5}", False)
        verdict.md5_ok = True
        verdict.checked = CHECKED_MD5
    else:
        verdict.checked = CHECKED_DECODE
        full_decode = True
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        return _failed(verdict, "too_large", f"decompression bomb: {e}")
    except UnidentifiedImageError:
        return _failed(verdict, "not_an_image", "Pillow cannot identify the bytes")
    except Exception as e:  # a corrupt header can raise almost anything
        return _failed(verdict, "decode_error", f"{type(e).__name__}: {e}")
    with image:
        verdict.format, verdict.mode = image.format, image.mode
        verdict.width, verdict.height = image.size
        if verdict.width * verdict.height > max_pixels:
            return _failed(
                verdict,
                "too_large",
                f"{verdict.width}x{verdict.height} pixels > --max-pixels {max_pixels}",
            )
        verdict.exif_orientation = _orientation(image)
        if full_decode:
            try:
                image.load()
            except Exception as e:  # truncated or corrupt image data
                return _failed(verdict, "decode_error", f"{type(e).__name__}: {e}")
    verdict.display_width, verdict.display_height = display_size(
        verdict.width, verdict.height, verdict.exif_orientation, rotation
    )
    return verdict


def display_size(
    width: int, height: int, orientation: int | None, rotation: int | None
) -> tuple[int, int]:
    """Size once EXIF orientation (5-8 turn by 90 degrees) and Rotation apply."""
    quarter_turns = (1 if orientation in (5, 6, 7, 8) else 0) + (
        1 if rotation in (90, 270) else 0
    )
    return (height, width) if quarter_turns % 2 else (width, height)


def _orientation(image: Image.Image) -> int | None:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # broken EXIF must not fail a good image
        return None
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else None


def _failed(verdict: Verdict, status: str, error: str) -> Verdict:
    verdict.status, verdict.error = status, error
    return verdict
