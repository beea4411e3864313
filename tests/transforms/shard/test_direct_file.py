"""DirectFile: byte-exact files whatever the sizes of the writes, with O_DIRECT
on and when it has to be given up part way."""

import fcntl
import os
import random

import pytest

from oibeam.transforms.shard.direct_file import DirectFile, create_bulk

PAGE = 4096


def _pieces(seed: int, count: int, largest: int) -> list[bytes]:
    rng = random.Random(seed)
    sizes = [0, 1, PAGE - 1, PAGE, PAGE + 1, 3 * PAGE]
    sizes += [rng.randrange(largest) for _ in range(count)]
    return [rng.randbytes(n) for n in sizes]


def _write(path, pieces, block, stop_after=None) -> DirectFile:
    with DirectFile(str(path), block=block) as handle:
        for i, piece in enumerate(pieces):
            if i == stop_after:
                handle.stop_direct()
            assert handle.write(piece) == len(piece)
    return handle


@pytest.mark.parametrize("block", [PAGE, 4 * PAGE, 1 << 20])
def test_bytes_are_exact_across_block_edges(tmp_path, block):
    pieces = _pieces(seed=block, count=40, largest=5 * block)
    path = tmp_path / "out.bin"
    handle = _write(path, pieces, block)
    assert handle.closed
    assert path.read_bytes() == b"".join(pieces)


def _accepts_o_direct(directory) -> bool:
    """An independent probe: does this filesystem open files with O_DIRECT?"""
    if not hasattr(os, "O_DIRECT"):
        return False
    try:
        fd = os.open(directory / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT)
    except OSError:
        return False
    os.close(fd)
    return True


def test_o_direct_is_on_where_the_filesystem_accepts_it(tmp_path):
    expected = _accepts_o_direct(tmp_path)
    with DirectFile(str(tmp_path / "block.bin"), block=PAGE) as handle:
        assert handle.direct is expected
        if expected:
            assert fcntl.fcntl(handle._fd, fcntl.F_GETFL) & os.O_DIRECT
        handle.write(b"x" * PAGE)  # a whole block: straight to the device
        handle.write(b"y")  # the tail, written at close through the page cache
    assert (tmp_path / "block.bin").read_bytes() == b"x" * PAGE + b"y"


def test_giving_up_o_direct_part_way_keeps_every_byte(tmp_path):
    pieces = _pieces(seed=7, count=30, largest=3 * PAGE)
    path = tmp_path / "out.bin"
    handle = _write(path, pieces, 2 * PAGE, stop_after=len(pieces) // 2)
    assert not handle.direct
    assert path.read_bytes() == b"".join(pieces)


def test_memoryviews_of_other_formats_are_written_as_bytes(tmp_path):
    import array

    numbers = array.array("I", range(3000))
    with DirectFile(str(tmp_path / "a.bin"), block=PAGE) as handle:
        assert handle.write(numbers) == len(numbers) * numbers.itemsize
    assert (tmp_path / "a.bin").read_bytes() == numbers.tobytes()


def test_close_twice_and_parent_directories(tmp_path):
    path = tmp_path / "a" / "b" / "c.bin"
    handle = DirectFile(str(path), block=PAGE)
    handle.write(b"abc")
    handle.close()
    handle.close()
    assert path.read_bytes() == b"abc"


def test_block_must_be_whole_pages(tmp_path):
    with pytest.raises(ValueError, match="multiple of"):
        DirectFile(str(tmp_path / "x"), block=1000)


def test_create_bulk_is_direct_for_local_paths_only(tmp_path):
    local = create_bulk(str(tmp_path / "x.tar"))
    try:
        assert isinstance(local, DirectFile)
    finally:
        local.close()


def test_a_full_disk_is_said_once_and_plainly(tmp_path):
    """ENOSPC used to come back as BufferError (the buffer still exported to
    the failed write's traceback) when the writer was closed after it."""
    from support import tiny_fs

    if tiny_fs.unavailable():
        pytest.skip(tiny_fs.unavailable())
    script = (
        "from oibeam.transforms.shard.direct_file import DirectFile, NoSpaceLeft\n"
        f"f = DirectFile({str(tmp_path / 'tiny' / 'shard.tar')!r}, block=65536)\n"
        "try:\n"
        "    f.write(b'x' * 1_000_000)\n"
        "except NoSpaceLeft as e:\n"
        "    print('said:', e)\n"
        "    f.close()  # as ShardWriter.abort does\n"
        "    f.close()\n"
        "    print('closed')\n"
    )
    import sys

    done = tiny_fs.run_on_tiny_fs(
        [sys.executable, "-c", script], tmp_path / "tiny", "256k"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"said: [Errno 28] no space left on {tmp_path / 'tiny'}" in done.stdout
    assert done.stdout.endswith("closed\n")
