"""Verify downloaded bytes: the release's size and MD5, then what Pillow sees.

Validation in tiers (see DESIGN): size + MD5 is the integrity proof (it caught
every truncated or altered file); a header parse gives format, mode,
dimensions, EXIF orientation and the pixel-count guard against bombs, for
0.035 ms, and decodes no pixels whatever the image declares; a full decode
(7 ms) is done only where there is no checksum to compare (thumbnails, mirrors
without one) or when asked for, and only if the memory it would hold, estimated
from the header, is within `max_decode_memory`. A JPEG decodes at 1/8 scale:
libjpeg still reads every coefficient of every block, so a truncated or corrupt
file fails as it would at full scale, but it holds 1/64 of the pixels.
"""

from __future__ import annotations

import base64
import io
import math
import struct
import warnings
from dataclasses import dataclass

from PIL import (
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    UnidentifiedImageError,
)

from oibeam.schemas.fetch import CHECKED_DECODE, CHECKED_MD5
from oibeam.transforms.fetch.fetch_config import (
    DEFAULT_MAX_DECODE_MEMORY,
    DEFAULT_MAX_PIXELS,
)

# We check pixel counts ourselves (`max_pixels`); Pillow's own warning below its
# hard limit would only repeat it on stderr.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

_EXIF_ORIENTATION = 0x0112

# Pillow decodes an ICO's largest icon, which may be a PNG of any size, inside
# Image.open, before any size check could refuse it: ICOs are not opened.
_ICO_SIGNATURE = b"\0\0\1\0"  # what IcoImagePlugin accepts

# Bytes a pixel a decoder holds beside Pillow's own image, measured with Pillow
# 12 (tests/transforms/fetch/test_image_check_memory.py) and rounded up: libwebp
# keeps two RGBA canvases and returns a third copy, libavif YUV(A) planes (of 2
# bytes a sample past 8 bits) and an RGB buffer, OpenJPEG a 32-bit sample per
# component and more. Other formats (QOI, DDS, SGI, TGA... measured at 0 to
# 4.3) are given 8.
_DECODER_BYTES = {
    "BMP": 0,
    "PNG": 0,
    "JPEG": 0,  # its coefficient buffer is counted apart
    "MPO": 0,
    "GIF": 1,
    "TIFF": 4,
    "WEBP": 12,
    "AVIF": 16,
    "JPEG2000": 24,
}
_UNMEASURED_DECODER_BYTES = 8
# JPEG frame (SOFn) markers, and those libjpeg decodes at a reduced scale: the
# DCT ones (it ignores the scale of a lossless one, SOF3).
_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # DHT, JPG, DAC
_SCALABLE_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC9, 0xCA})
# The PNG chunks Pillow's getexif() takes EXIF orientation from, and the text
# keywords among them that can carry it.
_PNG_EXIF_CHUNK = b"eXIf"
_PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
_PNG_EXIF_TEXTS = (b"Raw profile type exif", b"XML:com.adobe.xmp")


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
    max_decode_memory: int = DEFAULT_MAX_DECODE_MEMORY,
    full_decode: bool = False,
) -> Verdict:
    """Checks one image's bytes against the release and opens it with Pillow.

    `expected_md5` is base64 (as OriginalMD5); None means there is nothing to
    compare (thumbnails): the image is then decoded fully instead, if that
    holds no more than `max_decode_memory` bytes (else it is too_large).
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
    if data.startswith(_ICO_SIGNATURE):
        error = "an ICO, not opened: Pillow decodes an icon to open one"
        return _failed(verdict, "not_an_image", error)
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
        verdict.exif_orientation = _orientation(image, data)
        if full_decode:
            failure = _decode(image, data, max_decode_memory)
            if failure is not None:
                return _failed(verdict, *failure)
    verdict.display_width, verdict.display_height = display_size(
        verdict.width, verdict.height, verdict.exif_orientation, rotation
    )
    return verdict


def upright_by(
    orientation: int | None, rotation: int | None
) -> tuple[int | None, int | None]:
    """The (EXIF orientation, Rotation) that turn an image upright, never
    both: the EXIF orientation of the bytes when it turns them (2-8), else the
    release's Rotation. Open Images recovered Rotation from the orientation of
    the Flickr original ("Rotated images in Open Images", 2018-05-17), so for a
    verified original the two say the same thing and both would turn it
    twice; the bytes' own tag is the one about these bytes, and Rotation is
    all there is for bytes without one (thumbnails, re-encoded mirrors)."""
    if orientation is not None and 2 <= orientation <= 8:
        return orientation, None
    return None, rotation


def display_size(
    width: int, height: int, orientation: int | None, rotation: int | None
) -> tuple[int, int]:
    """Size once upright (upright_by: EXIF orientations 5-8 and Rotations of
    90 and 270 turn by a quarter)."""
    orientation, rotation = upright_by(orientation, rotation)
    quarter = orientation in (5, 6, 7, 8) or rotation in (90, 270)
    return (height, width) if quarter else (width, height)


def plan_decode(
    image: ImageFile.ImageFile,
    data: bytes,
    mode: str | None = None,
    least: tuple[int, int] | None = None,
) -> int:
    """Sets an opened image up for its cheapest full decode (a JPEG at 1/8
    scale, or at the smallest scale of at least `least` pixels, in `mode` if
    libjpeg can give it) and returns the bytes that decode will hold,
    estimated from the header: Pillow's image, the decoder's buffers and, for
    a JPEG in several scans, libjpeg's whole-image buffer (held at any
    scale)."""
    held = 0
    if isinstance(image, JpegImagePlugin.JpegImageFile):
        frames, scan_components = _jpeg_layout(data)
        scalable = bool(frames) and frames <= _SCALABLE_FRAMES
        if image.info.get("progressive") or scan_components < len(image.layer):
            held = _jpeg_whole_image_buffer(image, dct=scalable)
        # Only a DCT one: libjpeg ignores the scale of a lossless JPEG, and
        # Pillow 12 then writes full-size rows into a buffer sized for the
        # reduced image, corrupting the heap.
        if scalable:
            width, height = image.size
            eighth = (max(1, width // 8), max(1, height // 8))
            image.draft(mode or image.mode, least or eighth)
    width, height = image.size  # the reduced size, if draft() reduced it
    decoder = _DECODER_BYTES.get(image.format, _UNMEASURED_DECODER_BYTES)
    return held + width * height * (_pixel_bytes(image.mode) + decoder)


def _decode(
    image: ImageFile.ImageFile, data: bytes, max_memory: int
) -> tuple[str, str] | None:
    """(status, error) if the image cannot be decoded within `max_memory`
    bytes, or not at all (truncated, corrupt); None if it decodes."""
    width, height = image.size
    held = plan_decode(image, data)
    if held > max_memory:
        return "too_large", (
            f"a full decode of {width}x{height} would hold {held / (1 << 20):.0f} "
            f"MiB > --max-decode-memory {max_memory}"
        )
    try:
        image.load()
    except Exception as e:  # truncated or corrupt image data
        return "decode_error", f"{type(e).__name__}: {e}"
    return None


def _pixel_bytes(mode: str) -> int:
    """Bytes a pixel of a Pillow image in `mode` (RGB is stored in 4)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _jpeg_whole_image_buffer(image: JpegImagePlugin.JpegImageFile, dct: bool) -> int:
    """Bytes of the buffer libjpeg keeps for a whole JPEG that comes in several
    scans: 64 coefficients of 2 bytes for every 8x8 block of every component
    (`dct`), else (lossless) up to 4 bytes for every sample."""
    width, height = image.size
    # Pillow's layer: (id, horizontal, vertical sampling, quantisation table)
    h_max = max((h for _, h, _, _ in image.layer), default=1) or 1
    v_max = max((v for _, _, v, _ in image.layer), default=1) or 1
    blocks = sum(
        math.ceil(width * h / h_max / 8) * math.ceil(height * v / v_max / 8)
        for _, h, v, _ in image.layer
    )
    return blocks * 64 * (2 if dct else 4)


def _jpeg_layout(data: bytes) -> tuple[frozenset[int], int]:
    """The frame (SOFn) markers of a JPEG's headers and how many components its
    first scan (SOS) carries: a walk from marker to marker up to that scan."""
    frames: set[int] = set()
    at = 2  # past SOI
    while (at := data.find(b"\xff", at)) != -1 and at + 4 < len(data):
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
        elif marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD9:  # no length
            at += 2
        elif marker == 0xDA:  # SOS: length (2 bytes), then the component count
            return frozenset(frames), data[at + 4]
        else:
            if marker in _FRAMES:
                frames.add(marker)
            at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return frozenset(frames), 0


def _orientation(image: Image.Image, data: bytes) -> int | None:
    try:
        if isinstance(image, PngImagePlugin.PngImageFile):
            # Its getexif() decodes the whole image to look for an eXIf chunk
            # after the pixels when none came before them: read the chunks.
            found = Image.Image()
            found.info = _png_exif_chunks(data)
            exif = found.getexif()
        else:
            exif = image.getexif()  # read with the header
        value = exif.get(_EXIF_ORIENTATION)
    except Exception:  # broken EXIF must not fail a good image
        return None
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else None


def _png_exif_chunks(data: bytes) -> dict:
    """The chunks of a PNG that can carry EXIF orientation (eXIf, EXIF or XMP
    text), wherever they are, as Pillow's `info` holds them: a walk from chunk
    to chunk that steps over the image data without inflating it."""
    stream = PngImagePlugin.PngStream(io.BytesIO(data))
    assert stream.fp is not None
    stream.fp.seek(8)  # past the signature
    try:
        while True:
            kind, start, length = stream.read()
            if kind == b"IEND":
                break
            keyword = data[start : start + 80].partition(b"\0")[0]
            if kind == _PNG_EXIF_CHUNK or (
                kind in _PNG_TEXT_CHUNKS and keyword in _PNG_EXIF_TEXTS
            ):
                stream.call(kind, start, length)
            stream.fp.seek(start + length + 4)  # past the data and its CRC
    except (struct.error, SyntaxError, ValueError, OSError):
        pass  # a broken or truncated tail: the chunks before it still count
    return stream.im_info


def _failed(verdict: Verdict, status: str, error: str) -> Verdict:
    verdict.status, verdict.error = status, error
    return verdict
