"""check_image on real image files with every quirk (tests/fixtures/images)."""

import hashlib

import pytest

from oibeam.transforms.fetch.image_check import check_image, display_size, md5_base64

from support.paths import IMAGES


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


def test_display_size_combines_exif_and_rotation():
    assert display_size(4, 3, None, None) == (4, 3)
    assert display_size(4, 3, 6, None) == (3, 4)
    assert display_size(4, 3, None, 270) == (3, 4)
    assert display_size(4, 3, 8, 90) == (4, 3)  # two quarter turns
    assert display_size(4, 3, 3, 180) == (4, 3)
