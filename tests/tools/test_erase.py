"""Erasing dead images from a shard written by ShardWriter: the other members
keep their bytes and offsets, the size stays, tarfile, webdataset and GNU tar
read what is left, and a shard that is not a valid archive is refused."""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
import tarfile

import google_crc32c
import pytest
import webdataset as wds

from oibeam.tools.gc.erase import Untrusted, erase_shard
from oibeam.tools.gc.tar_spans import BLOCK, NotATar, replacement
from oibeam.transforms.shard.shard_writer import ShardWriter, checksum_label

KEYS = [f"{i:016x}" for i in range(1, 6)]


def write_shard(path, sizes):
    """A shard of len(sizes) samples; (label, {member name: (offset, bytes)})."""
    rng = random.Random(len(sizes))
    writer = ShardWriter(str(path))
    members = {}
    for key, size in zip(KEYS, sizes, strict=True):
        image = rng.randbytes(size)
        meta = json.dumps({"ImageID": key, "OriginalSize": size}).encode()
        image_member, json_member = writer.add_sample(key, "jpg", image, meta)
        members[image_member.name] = (image_member.offset, image)
        members[json_member.name] = (json_member.offset, meta)
    _, label = writer.commit()
    return label, members


def tar_contents(path) -> dict[str, tuple[int, bytes]]:
    with tarfile.open(path) as tar:
        return {
            m.name: (m.offset_data, tar.extractfile(m).read()) for m in tar.getmembers()
        }


def wds_keys(path) -> list[str]:
    return [s["__key__"] for s in wds.WebDataset(str(path), shardshuffle=False)]


def crc_label(path) -> str:
    return checksum_label(google_crc32c.value(path.read_bytes()))


def check_erased(path, members, dead, size_before):
    """Only the members of the other keys are left, with their bytes at
    their offsets; no byte of the dead images is in the file."""
    live = {n: v for n, v in members.items() if n.split(".")[0] not in dead}
    assert tar_contents(path) == live
    assert path.stat().st_size == size_before
    data = path.read_bytes()
    for offset, content in live.values():
        assert data[offset : offset + len(content)] == content
    for name, (_, content) in members.items():
        if name.split(".")[0] in dead and name.endswith(".jpg"):
            assert content not in data
    assert wds_keys(path) == [k for k in KEYS if k not in dead]
    if shutil.which("tar"):
        listed = subprocess.run(
            ["tar", "tf", str(path)], capture_output=True, text=True, check=True
        ).stdout.split()
        assert sorted(listed) == sorted(live)


def test_two_of_five_are_erased_and_the_rest_stays_in_place(tmp_path):
    path = tmp_path / "images-00000-of-00001.tar"
    label, members = write_shard(path, [3000, 700, 5000, 20, 1200])
    size = path.stat().st_size
    dead = {KEYS[1], KEYS[3]}

    erasure = erase_shard(str(path), dead, {label})

    assert erasure.images == tuple(sorted(dead)) and erasure.bytes == size
    check_erased(path, members, dead, size)
    record = json.loads((tmp_path / f"{path.name}.erased.json").read_text())
    assert record["was"] == label
    assert record["crc32c"] == crc_label(path) != label
    assert record["bytes"] == size
    assert record["erased"] == sorted(dead)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        path.name,
        f"{path.name}.erased.json",
    ]

    # Nothing left to erase: the shard is not rewritten.
    before = path.read_bytes()
    assert erase_shard(str(path), dead, {label}) is None
    assert path.read_bytes() == before

    # A second erasure is recorded on top of the first: `was` stays what
    # the manifests say, `erased` grows.
    erase_shard(str(path), {KEYS[0]}, {label})
    check_erased(path, members, dead | {KEYS[0]}, size)
    record = json.loads((tmp_path / f"{path.name}.erased.json").read_text())
    assert record["was"] == label and record["crc32c"] == crc_label(path)
    assert record["erased"] == sorted(dead | {KEYS[0]})


def test_the_last_member_of_the_archive_is_erased(tmp_path):
    path = tmp_path / "last.tar"
    label, members = write_shard(path, [900, 1100, 600, 2000, 333])
    size = path.stat().st_size
    erase_shard(str(path), {KEYS[4]}, {label})
    check_erased(path, members, {KEYS[4]}, size)
    # ... and then the one before it, now last too.
    erase_shard(str(path), {KEYS[3]}, {label})
    check_erased(path, members, {KEYS[3], KEYS[4]}, size)


def test_a_small_and_a_large_dead_member(tmp_path):
    path = tmp_path / "sizes.tar"
    label, members = write_shard(path, [100, 1500, (1 << 20) + 4321, 800, 64])
    size = path.stat().st_size
    erase_shard(str(path), {KEYS[0], KEYS[2]}, {label})
    check_erased(path, members, {KEYS[0], KEYS[2]}, size)
    data = path.read_bytes()
    # The first sample's span became one pax global header of its length.
    header = data[:BLOCK]
    assert header[156:157] == b"g"
    length = int(header[124:135], 8)
    record = data[BLOCK : BLOCK + length]
    assert record.startswith(b"%d comment=" % length) and record.endswith(b"\n")
    assert record[:-1].isascii() and b"\n" not in record[:-1]


@pytest.mark.parametrize("length", [512, 1024, 1536, 512 * 20, (1 << 20) + 1024])
def test_a_replacement_is_exactly_as_long_as_what_it_replaces(length, tmp_path):
    data = b"".join(replacement(length, last=False))
    assert len(data) == length
    size = length - BLOCK
    if size:
        assert data[BLOCK:].startswith(b"%d comment=" % size)
    # Followed by a member, tarfile skips it.
    after = tmp_path / "after.tar"
    writer = ShardWriter(str(after))
    writer.add("x.json", b"{}")
    writer.commit()
    with tarfile.open(fileobj=io.BytesIO(data + after.read_bytes())) as tar:
        assert [(m.name, m.offset) for m in tar.getmembers()] == [("x.json", length)]
    assert b"".join(replacement(length, last=True)) == bytes(length)


def test_a_corrupt_header_is_refused_and_nothing_is_touched(tmp_path):
    path = tmp_path / "corrupt.tar"
    label, members = write_shard(path, [700, 700, 700, 700, 700])
    data = bytearray(path.read_bytes())
    third = members[f"{KEYS[2]}.jpg"][0] - BLOCK  # its header
    data[third + 5] ^= 0x01  # a name byte: the checksum no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(NotATar, match="checksum"):
        erase_shard(str(path), {KEYS[3]}, {label})
    assert path.read_bytes() == bytes(data)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]

    path.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(NotATar):
        erase_shard(str(path), {KEYS[3]}, {label})


def test_a_shard_changed_behind_gc_is_refused(tmp_path):
    path = tmp_path / "changed.tar"
    label, members = write_shard(path, [700, 700, 700, 700, 700])
    data = bytearray(path.read_bytes())
    data[members[f"{KEYS[0]}.jpg"][0]] ^= 0xFF  # an image byte, headers intact
    path.write_bytes(bytes(data))
    with pytest.raises(Untrusted, match="neither the manifest's"):
        erase_shard(str(path), {KEYS[3]}, {label})
    assert path.read_bytes() == bytes(data)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
