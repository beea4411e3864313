"""Input files as stored: inflated a bounded piece at a time, hashed, and
refused when a compressed stream ends early, fails its check or has trailing
bytes."""

import bz2
import gzip
import hashlib
import lzma
import tracemalloc
import zlib

import pytest
import zstandard

from oibeam.transforms.read.csv_inputs import InputError, plan_inputs
from oibeam.transforms.read.input_files import DamagedInput, open_hashed, read_head

from support.bombs import write_images_bomb
from support.paths import V3_IMAGES

MiB = 1 << 20
COMPRESS = {
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
    ".zst": zstandard.ZstdCompressor().compress,
    ".deflate": zlib.compress,
}


def _content() -> bytes:
    """~3 MB of CSV text that does not compress to nothing."""
    return b"".join(
        b"%016x,machine,/m/0%d,0.%d\n" % (n * 7919, n % 613, n % 10)
        for n in range(90_000)
    )


def _read_all(path) -> tuple[bytes, str]:
    stream, raw = open_hashed(str(path), True)
    with stream:
        pieces = []
        while piece := stream.read(MiB):
            assert len(piece) <= MiB
            pieces.append(piece)
        return b"".join(pieces), raw.finish()


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
def test_compressed_files_read_whole_with_the_md5_of_their_bytes(tmp_path, suffix):
    data = _content()
    path = tmp_path / f"labels.csv{suffix}"
    path.write_bytes(COMPRESS[suffix](data))
    content, md5 = _read_all(path)
    assert content == data
    assert md5 == hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zst"])
def test_concatenated_members_are_one_stream(tmp_path, suffix):
    data = _content()
    path = tmp_path / f"labels.csv{suffix}"
    path.write_bytes(COMPRESS[suffix](data[:1000]) + COMPRESS[suffix](data[1000:]))
    assert _read_all(path)[0] == data


def _damage(packed: bytes, how: str, suffix: str) -> bytes:
    if how == "cut":
        return packed[: len(packed) // 2]
    if how == "cut at the end":
        return packed[:-3]
    if how == "corrupt":  # flip bytes in the middle of the compressed data
        middle = len(packed) // 2
        return (
            packed[:middle]
            + bytes(b ^ 0x55 for b in packed[middle:][:64])
            + (packed[middle + 64 :])
        )
    if how == "trailing garbage":
        return packed + b"garbage, not a compressed stream\n"
    if how == "trailing zeros":
        return packed + bytes(512)
    if how == "cut second member":
        return packed + COMPRESS[suffix](b"x,y\n" * 1000)[:20]
    raise ValueError(how)


@pytest.mark.parametrize("suffix", sorted(COMPRESS))
@pytest.mark.parametrize(
    "how",
    [
        "cut",
        "cut at the end",
        "corrupt",
        "trailing garbage",
        "trailing zeros",
        "cut second member",
    ],
)
def test_a_damaged_compressed_file_raises_naming_it(tmp_path, suffix, how):
    path = tmp_path / f"labels.csv{suffix}"
    path.write_bytes(_damage(COMPRESS[suffix](_content()), how, suffix))
    with pytest.raises(DamagedInput) as raised:
        _read_all(path)
    assert str(path) in str(raised.value)
    assert isinstance(raised.value, InputError)  # a user error: exit 2


def test_a_gzip_bomb_inflates_a_bounded_piece_at_a_time(tmp_path):
    bomb = tmp_path / "images.csv.gz"
    write_images_bomb(bomb, 200 * MiB)
    assert bomb.stat().st_size < 4 * MiB
    tracemalloc.start()
    try:
        stream, _ = open_hashed(str(bomb), True)
        with stream:
            total = 0
            while piece := stream.read(MiB):
                total += len(piece)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total >= 200 * MiB
    assert peak < 8 * MiB, f"{peak / MiB:.0f} MiB held at once"


def test_the_plan_sizes_compressed_files_by_their_text(tmp_path):
    bomb = tmp_path / "train" / "images.csv.gz"
    bomb.parent.mkdir()
    rows = write_images_bomb(bomb, 100 * MiB)
    with gzip.open(bomb, "rb") as f:
        text = sum(len(chunk) for chunk in iter(lambda: f.read(MiB), b""))
    plan = plan_inputs([str(bomb)], [])
    # The join's buckets are sized by it: ~1 per 256 MiB of text.
    assert abs(plan.total_bytes - text) < 0.05 * text
    assert abs(plan.image_rows - rows) < 0.05 * rows  # fetch's workers by it


def test_read_head_is_exact_for_small_files(tmp_path):
    data = _content()[:5000]
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(data))
    assert read_head(str(path), True, MiB, path.stat().st_size) == (data, len(data))
    plain = tmp_path / "a.csv"
    plain.write_bytes(data)
    assert read_head(str(plain), False, 100, len(data)) == (data[:100], len(data))


def test_a_small_damaged_file_fails_the_plan(tmp_path):
    path = tmp_path / "train" / "images.csv.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(V3_IMAGES.read_bytes())[:-3])
    with pytest.raises(DamagedInput, match="ends early"):
        plan_inputs([str(path)], [])
