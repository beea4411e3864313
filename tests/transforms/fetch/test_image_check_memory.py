"""check_image keeps its memory bounded on small files that declare huge images.

Each file is made here with Pillow: 13000x13000 pixels of one colour compress to
0.5 MB (PNG) or 2.6 MB (JPEG), and one decoded copy of them is 645 MiB (Pillow
keeps RGB in 4 bytes a pixel). The check runs in a fresh process and the test
reads how far its peak RSS grew (support/peak_memory.py).
"""

import io
import struct

import pytest
from PIL import Image

from oibeam.transforms.fetch.image_check import (
    DEFAULT_MAX_DECODE_MEMORY,
    DEFAULT_MAX_PIXELS,
)

from support.peak_memory import check_in_fresh_process, decode_in_fresh_process
from support.png_chunks import move_after_image_data

MiB = 1 << 20
SIDE = 13000
COLOUR = (200, 30, 90)
# Reading the headers grows the peak by under 1 MiB and a 1/8-scale decode of
# SIDE^2 by 10.5 MiB (measured), while one full-size decoded copy is 645 MiB (a
# single byte a pixel would still be 161 MiB): 32 MiB leaves room for allocator
# noise and fails any full-size decode.
BOUNDED = 32 * MiB


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    """Writes SIDE x SIDE images of one colour; returns path(name)."""
    folder = tmp_path_factory.mktemp("huge")
    made = {}

    def path(name: str):
        if name not in made:
            made[name] = folder / name
            _WRITERS[name](made[name])
        return made[name]

    return path


def _rgb():
    return Image.new("RGB", (SIDE, SIDE), COLOUR)


def _png_with_exif_after_the_pixels(path):
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    _rgb().save(buffer, "PNG", exif=exif)
    path.write_bytes(move_after_image_data(buffer.getvalue(), b"eXIf"))


def _icon_holding(png_path, path):
    """An ICO whose one icon is the PNG: Pillow decodes it inside Image.open."""
    png = png_path.read_bytes()
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 22)
    path.write_bytes(struct.pack("<HHH", 0, 1, 1) + entry + png)


_WRITERS = {
    "huge.png": lambda p: _rgb().save(p),
    "huge.jpg": lambda p: _rgb().save(p, quality=90),
    "huge_progressive.jpg": lambda p: _rgb().save(p, quality=90, progressive=True),
    "huge_exif_last.png": _png_with_exif_after_the_pixels,
}


def test_the_md5_path_reads_only_the_header_of_a_huge_png(huge):
    checked = check_in_fresh_process(huge("huge.png"))
    verdict = checked.verdict
    assert (verdict.status, verdict.checked) == (None, "size+md5")
    assert (verdict.format, verdict.mode) == ("PNG", "RGB")
    assert (verdict.width, verdict.height, verdict.exif_orientation) == (
        SIDE,
        SIDE,
        None,
    )
    assert checked.growth < BOUNDED, f"{checked.growth / MiB:.0f} MiB"


def test_a_png_orientation_after_its_pixels_is_read_without_decoding_them(huge):
    checked = check_in_fresh_process(huge("huge_exif_last.png"))
    assert checked.verdict.status is None
    assert checked.verdict.exif_orientation == 6
    assert checked.growth < BOUNDED, f"{checked.growth / MiB:.0f} MiB"


def test_a_full_decode_of_a_huge_jpeg_runs_at_one_eighth_scale(huge):
    checked = check_in_fresh_process(huge("huge.jpg"), with_md5=False)
    verdict = checked.verdict
    assert (verdict.status, verdict.checked) == (None, "decode")
    assert (verdict.width, verdict.height) == (SIDE, SIDE)  # not the reduced size
    assert checked.growth < BOUNDED, f"{checked.growth / MiB:.0f} MiB"


def test_the_reduced_decode_still_reads_all_the_data(huge, tmp_path):
    whole = huge("huge.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole[: len(whole) // 2])
    checked = check_in_fresh_process(cut, with_md5=False)
    assert (checked.verdict.status, checked.verdict.checked) == (
        "decode_error",
        "decode",
    )
    assert "truncated" in checked.verdict.error
    assert checked.growth < BOUNDED, f"{checked.growth / MiB:.0f} MiB"
    with_md5 = check_in_fresh_process(cut, full_decode=True)
    assert with_md5.verdict.status == "decode_error"


@pytest.mark.parametrize("name", ["huge.png", "huge_progressive.jpg"])
def test_a_decode_over_the_memory_budget_is_refused_before_it_starts(huge, name):
    # A PNG holds its whole decoded image, a progressive JPEG libjpeg's
    # coefficients for every block (3 bytes a pixel here, 4:2:0) at any scale.
    for checked in (
        check_in_fresh_process(huge(name), with_md5=False),
        check_in_fresh_process(huge(name), full_decode=True),
    ):
        assert checked.verdict.status == "too_large"
        assert "--max-decode-memory" in checked.verdict.error
        assert (checked.verdict.width, checked.verdict.height) == (SIDE, SIDE)
        assert checked.growth < BOUNDED, f"{checked.growth / MiB:.0f} MiB"


def test_a_decode_within_a_raised_budget_is_done(huge):
    checked = check_in_fresh_process(
        huge("huge.png"), with_md5=False, max_decode_memory=1 << 30
    )
    assert (checked.verdict.status, checked.verdict.checked) == (None, "decode")
    assert 640 * MiB < checked.growth < 1 << 30


def _lossless_jpeg(width: int, height: int) -> bytes:
    """A grey lossless JPEG (SOF3), which Pillow cannot write: every sample is
    the predictor's first guess, 128, so each difference is the one code 0."""

    def segment(marker: int, body: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body

    frame = struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0])
    huffman = bytes([0x00, 1] + [0] * 15 + [0])  # one code, of length 1, for 0
    scan = bytes([1, 1, 0x00, 1, 0, 0])  # predictor 1
    return (
        b"\xff\xd8"
        + segment(0xC3, frame)
        + segment(0xC4, huffman)
        + segment(0xDA, scan)
        + bytes((width * height + 7) // 8)
        + b"\xff\xd9"
    )


def test_a_lossless_jpeg_is_decoded_at_full_scale(tmp_path):
    # At 1/8 scale Pillow corrupts the heap (the process aborts or segfaults).
    path = tmp_path / "lossless.jpg"
    path.write_bytes(_lossless_jpeg(4000, 3000))
    checked = check_in_fresh_process(path, with_md5=False)
    verdict = checked.verdict
    assert (verdict.status, verdict.format, verdict.mode) == (None, "JPEG", "L")
    assert (verdict.width, verdict.height) == (4000, 3000)
    assert 11 * MiB < checked.growth < BOUNDED  # all 12 M one-byte pixels


def test_an_icon_is_refused_before_pillow_decodes_it(huge, tmp_path):
    icon = tmp_path / "huge.ico"
    _icon_holding(huge("huge.png"), icon)
    checked = check_in_fresh_process(icon)
    assert checked.verdict.status == "not_an_image"
    assert "ICO" in checked.verdict.error
    assert checked.growth < BOUNDED, f"{checked.growth / MiB:.0f} MiB"


def test_the_default_budget_decodes_every_baseline_jpeg_under_max_pixels():
    # At 1/8 scale Pillow holds w*h/64 pixels of 4 bytes.
    assert DEFAULT_MAX_PIXELS / 64 * 4 < DEFAULT_MAX_DECODE_MEMORY


MEDIUM = (3000, 2000)
_FILL = {"RGB": COLOUR, "RGBA": (*COLOUR, 128), "L": 77, "CMYK": (10, 200, 30, 0)}


def _save(mode, fmt, **options):
    def write(path):
        Image.new(mode, MEDIUM, _FILL[mode]).save(path, fmt, **options)

    return write


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("rgb.png", _save("RGB", "PNG")),
        ("l.png", _save("L", "PNG")),
        ("p.gif", lambda p: Image.new("RGB", MEDIUM, COLOUR).convert("P").save(p)),
        ("baseline.jpg", _save("RGB", "JPEG")),
        ("progressive_cmyk.jpg", _save("CMYK", "JPEG", progressive=True)),
        ("progressive420.jpg", _save("RGB", "JPEG", progressive=True)),
        (
            "progressive444.jpg",
            _save("RGB", "JPEG", progressive=True, subsampling=0),
        ),
        ("lossy.webp", _save("RGB", "WEBP")),
        ("deflate.tif", _save("RGB", "TIFF", compression="tiff_adobe_deflate")),
        ("rgb.bmp", _save("RGB", "BMP")),
        ("rgba.jp2", _save("RGBA", "JPEG2000")),
        ("rgba.avif", _save("RGBA", "AVIF")),
        ("rgba.qoi", _save("RGBA", "QOI")),  # a format with no measure of its own
    ],
)
def test_the_decode_estimate_covers_what_the_decode_holds(tmp_path, name, write):
    """The estimate behind --max-decode-memory, format by format (the
    measures in image_check._DECODER_BYTES come from here)."""
    path = tmp_path / name
    write(path)
    estimate, growth = decode_in_fresh_process(path)
    # 4 MiB: what a decoder allocates once (tables, row buffers) and noise.
    assert growth <= estimate + 4 * MiB, (
        f"{name}: grew {growth / MiB:.1f} MiB, estimated {estimate / MiB:.1f}"
    )
