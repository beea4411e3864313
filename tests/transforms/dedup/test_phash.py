"""The perceptual hash on real photos: variants of one photo are a few bits
apart, different photos many; orientation is applied as Pillow applies it."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from oibeam.schemas.duplicates import DEFAULT_NEAR_DISTANCE
from oibeam.transforms.dedup.phash import (
    distance,
    hash_pixels,
    phash_bytes,
    phash_image,
    upright,
)

from support import photo_variants as pv


def _hash(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        orientation = image.getexif().get(0x0112)
    return phash_bytes(data, orientation)


@pytest.mark.parametrize("name", [pv.LANDSCAPE, pv.STREET, pv.PORTRAIT])
def test_variants_of_a_photo_are_near(name):
    original = _hash(pv.photo(name))
    for kind, data in pv.variants(pv.photo(name)).items():
        assert distance(original, _hash(data)) <= DEFAULT_NEAR_DISTANCE, kind


def test_a_real_exif_rotated_copy_hashes_as_the_upright_photo():
    # Landscape_6 stores the photo turned, with EXIF orientation 6
    assert _hash(pv.photo(pv.LANDSCAPE_EXIF6)) == _hash(pv.photo(pv.LANDSCAPE))
    # unturned it is another picture
    stored = phash_bytes(pv.photo(pv.LANDSCAPE_EXIF6))
    assert distance(stored, _hash(pv.photo(pv.LANDSCAPE))) > DEFAULT_NEAR_DISTANCE


def test_a_rotation_restating_the_exif_turns_the_photo_once():
    """Open Images' Rotation of an original restates its EXIF orientation
    (6: a quarter turn clockwise, Rotation 270 counterclockwise)."""
    data = pv.photo(pv.LANDSCAPE_EXIF6)
    assert phash_bytes(data, 6, 270) == _hash(pv.photo(pv.LANDSCAPE))
    assert phash_bytes(data, None, 270) == _hash(pv.photo(pv.LANDSCAPE))


def test_different_photos_are_far_apart():
    hashes = [_hash(pv.photo(name)) for name in pv.DIFFERENT]
    for i, a in enumerate(hashes):
        for b in hashes[i + 1 :]:
            assert distance(a, b) > 3 * DEFAULT_NEAR_DISTANCE


def test_the_reduced_decode_moves_the_hash_by_a_bit_or_two():
    for name in (pv.LANDSCAPE, pv.LARGE, pv.STREET):
        data = pv.photo(name)
        with Image.open(io.BytesIO(data)) as image:
            full = phash_image(image, draft=False)
        assert distance(full, phash_bytes(data)) <= 2


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_turns_pixels_as_exif_transpose_does(orientation):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    assert np.array_equal(upright(pixels, orientation, None), expected)


def test_rotation_turns_counterclockwise():
    pixels = np.array([[1, 2], [3, 4]])
    assert upright(pixels, None, 90).tolist() == [[2, 4], [1, 3]]
    assert upright(pixels, None, 180).tolist() == [[4, 3], [2, 1]]
    assert upright(pixels, None, 0).tolist() == pixels.tolist()


def test_a_hash_has_as_many_bits_above_the_median_as_below():
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32))
    value = hash_pixels(pixels) & (2**64 - 1)
    assert value.bit_count() == 32
    assert -(2**63) <= hash_pixels(pixels) < 2**63  # stored as int64


def test_no_hash_when_the_decode_would_hold_too_much():
    data = pv.photo(pv.HOPPER)  # a PNG decodes whole: 128x128 pixels
    assert phash_bytes(data, max_memory=1000) is None
    assert phash_bytes(data, max_memory=1 << 20) == phash_bytes(data)


def test_a_corrupt_image_raises():
    with pytest.raises(OSError):
        phash_bytes(pv.photo("pillow_tests_truncated_jpeg.jpg"))
