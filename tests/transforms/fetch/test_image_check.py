"""check_image on real image files with every quirk (tests/fixtures/images)."""

import hashlib
import io

import pytest
from PIL import Image, PngImagePlugin

from oibeam.transforms.fetch.image_check import (
    check_image,
    display_size,
    md5_base64,
    plan_decode,
)

from support.paths import IMAGES
from support.png_chunks import build, chunks, move_after_image_data


def _check(name, *, with_md5=True, **options):
    data = (IMAGES / name).read_bytes()
    digest = hashlib.md5(data).digest()
    if not with_md5:
        return check_image(data, digest, None, None, **options)
    return check_image(data, digest, len(data), md5_base64(digest), **options)


@pytest.mark.parametrize(
    ("name", "fmt", "mode", "size", "orientation", "display"),
    [
        (
            "exif_orientation_recurser_Landscape_1.jpg",
            "JPEG",
            "RGB",
            (1800, 1200),
            1,
            (1800, 1200),
        ),
        (
            "exif_orientation_recurser_Landscape_6.jpg",
            "JPEG",
            "RGB",
            (1200, 1800),
            6,
            (1800, 1200),
        ),
        ("pillow_tests_pil_sample_cmyk.jpg", "JPEG", "CMYK", (100, 100), 1, (100, 100)),
        ("pillow_tests_hopper_gray.jpg", "JPEG", "L", (128, 128), None, (128, 128)),
        ("pillow_tests_pil123rgba.png", "PNG", "RGBA", (162, 150), None, (162, 150)),
        ("pillow_tests_hopper.gif", "GIF", "P", (128, 128), None, (128, 128)),
        ("tencent_ml_images_im_0.jpg", "JPEG", "RGB", (3648, 2736), 1, (3648, 2736)),
    ],
)
def test_good_images_are_described(name, fmt, mode, size, orientation, display):
    verdict = _check(name)
    assert verdict.status is None
    assert (verdict.md5_ok, verdict.checked) == (True, "size+md5")
    assert (verdict.format, verdict.mode) == (fmt, mode)
    assert (verdict.width, verdict.height) == size
    assert verdict.exif_orientation == orientation
    assert (verdict.display_width, verdict.display_height) == display


def test_bad_bytes_get_the_right_status():
    assert _check("pillow_tests_broken.png").status == "not_an_image"
    assert _check("pillow_tests_decompression_bomb.gif").status == "too_large"
    assert _check("pillow_tests_hopper.png", max_pixels=100).status == "too_large"
    # A truncated JPEG parses: only its MD5 (or a full decode) can tell.
    assert _check("pillow_tests_truncated_jpeg.jpg").status is None
    no_md5 = _check("pillow_tests_truncated_jpeg.jpg", with_md5=False)
    assert (no_md5.status, no_md5.checked) == ("decode_error", "decode")
    full = _check("pillow_tests_truncated_jpeg.jpg", full_decode=True)
    assert full.status == "decode_error"


def test_changed_bytes_fail_size_or_md5():
    data = (IMAGES / "pillow_tests_hopper.png").read_bytes()
    digest = hashlib.md5(data).digest()
    other = md5_base64(hashlib.md5(b"x").digest())
    assert check_image(data, digest, len(data) + 1, other).status == "changed"
    verdict = check_image(data, digest, len(data), other)
    assert (verdict.status, verdict.md5_ok) == ("changed", False)
    assert "MD5" in verdict.error


def test_display_size_turns_by_exif_else_rotation():
    assert display_size(4, 3, None, None) == (4, 3)
    assert display_size(4, 3, 6, None) == (3, 4)
    assert display_size(4, 3, None, 270) == (3, 4)
    assert display_size(4, 3, 1, 270) == (3, 4)  # EXIF 1 does not turn
    # an original's Rotation restates its EXIF orientation: one quarter turn
    assert display_size(4, 3, 6, 270) == (3, 4)
    assert display_size(4, 3, 6, 0) == (3, 4)  # the bytes' own tag
    assert display_size(4, 3, 3, 180) == (4, 3)


GOOD = [
    "exif_orientation_recurser_Landscape_1.jpg",
    "exif_orientation_recurser_Landscape_6.jpg",
    "openimages_v1_davidgengenbach_0143a0cf29afbf75.jpg",
    "pillow_tests_pil_sample_cmyk.jpg",
    "pillow_tests_hopper_gray.jpg",
    "pillow_tests_hopper.png",
    "pillow_tests_pil123rgba.png",
    "pillow_tests_hopper.gif",
    "tencent_ml_images_im_0.jpg",
]


@pytest.mark.parametrize("name", GOOD)
def test_good_images_pass_a_full_decode_too(name):
    # JPEGs decode at 1/8 scale: it must not fail what decodes at full scale.
    assert _check(name, full_decode=True).status is None
    assert _check(name, with_md5=False).status is None


def _png(**save) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 20, 30)).save(buffer, "PNG", **save)
    return buffer.getvalue()


def _check_bytes(data, **options):
    digest = hashlib.md5(data).digest()
    return check_image(data, digest, len(data), md5_base64(digest), **options)


def _xmp(orientation: int) -> str:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
        '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
        f'tiff:Orientation="{orientation}"/></rdf:RDF></x:xmpmeta>'
    )


def _exif_6() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif


def _order(data: bytes, kind: bytes) -> str:
    kinds = [k for k, _ in chunks(data)]
    return "before" if kinds.index(kind) < kinds.index(b"IDAT") else "after"


def test_png_orientation_is_found_before_or_after_the_pixels():
    before = _png(exif=_exif_6())
    after = move_after_image_data(before, b"eXIf")
    assert (_order(before, b"eXIf"), _order(after, b"eXIf")) == ("before", "after")
    for data in (before, after):
        verdict = _check_bytes(data)
        assert (verdict.status, verdict.exif_orientation) == (None, 6)
        assert (verdict.display_width, verdict.display_height) == (30, 40)
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", _xmp(8))
    xmp_after = move_after_image_data(_png(pnginfo=info), b"iTXt")
    assert _check_bytes(xmp_after).exif_orientation == 8
    assert _check_bytes(_png()).exif_orientation is None


def test_a_broken_png_tail_keeps_what_came_before_it():
    parts = chunks(move_after_image_data(_png(exif=_exif_6()), b"eXIf"))
    not_a_chunk = build(parts[:-1]) + b"\x00\x00\x00\x05Bad!"  # in place of IEND
    verdict = _check_bytes(not_a_chunk)
    assert (verdict.status, verdict.exif_orientation) == (None, 6)
    cut = build(parts)[:-20]  # inside the eXIf chunk
    verdict = _check_bytes(cut)
    assert (verdict.status, verdict.exif_orientation) == (None, None)
    assert _check_bytes(cut, full_decode=True).status == "decode_error"


def test_a_jpeg_in_several_scans_is_planned_with_its_coefficients():
    buffer = io.BytesIO()
    Image.new("RGB", (800, 600), (10, 20, 30)).save(buffer, "JPEG")
    interleaved = buffer.getvalue()
    sos = interleaved.index(b"\xff\xda")
    assert interleaved[sos + 4] == 3  # one scan carries the three components
    one_component = interleaved[: sos + 4] + b"\x01" + interleaved[sos + 5 :]
    pixels_at_one_eighth = 100 * 75 * 4
    coefficients = (100 * 75 + 2 * 50 * 38) * 128  # Y full, Cb Cr halved (4:2:0)
    for data, held in (
        (interleaved, pixels_at_one_eighth),
        (one_component, pixels_at_one_eighth + coefficients),
    ):
        with Image.open(io.BytesIO(data)) as image:
            assert plan_decode(image, data) == held
            assert image.size == (100, 75)
