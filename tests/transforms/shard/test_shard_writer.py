"""WebDataset shards: read back with tarfile and webdataset, byte for byte."""

import json
import tarfile

import google_crc32c
import webdataset as wds

from oibeam.transforms.shard.shard_writer import ShardWriter


def _write(path, samples):
    writer = ShardWriter(str(path))
    members = [writer.add_sample(k, "jpg", image, meta) for k, image, meta in samples]
    size, crc = writer.commit()
    return members, size, crc


SAMPLES = [
    ("000002b66c9c498e", b"\xff\xd8" + bytes(range(256)) * 3, b'{"a":1}'),
    ("00000c4c57b3be87", b"\xff\xd8tiny", b'{"b":2}'),
    ("0000a1b2c3d4e5f6", b"", b"{}"),
]


def test_tarfile_and_offsets(tmp_path):
    path = tmp_path / "images-00000-of-00001.tar"
    members, size, crc = _write(path, SAMPLES)
    data = path.read_bytes()
    assert len(data) == size and size % 512 == 0
    # CRC32C of the whole file, as GCS computes it (Castagnoli check value of
    # "123456789" is e3069283).
    assert crc == f"crc32c:{google_crc32c.value(data):08x}"
    assert google_crc32c.value(b"123456789") == 0xE3069283
    with tarfile.open(path) as tar:
        names = tar.getnames()
        assert names == [f"{k}.{e}" for k, *_ in SAMPLES for e in ("jpg", "json")]
        for (key, image, meta), (image_member, meta_member) in zip(
            SAMPLES, members, strict=True
        ):
            assert tar.extractfile(f"{key}.jpg").read() == image
            assert tar.extractfile(f"{key}.json").read() == meta
            assert data[image_member.offset : image_member.offset + len(image)] == image
            assert data[meta_member.offset : meta_member.offset + len(meta)] == meta
            info = tar.getmember(f"{key}.jpg")
            assert (info.mtime, info.uid, info.mode) == (0, 0, 0o644)


def test_webdataset_reads_the_samples(tmp_path):
    path = tmp_path / "shard.tar"
    _write(path, SAMPLES)
    got = {s["__key__"]: s for s in wds.WebDataset(str(path), shardshuffle=False)}
    assert set(got) == {k for k, *_ in SAMPLES}
    for key, image, meta in SAMPLES:
        assert got[key]["jpg"] == image
        assert json.loads(got[key]["json"]) == json.loads(meta)


def test_same_samples_same_bytes_and_no_partial_file(tmp_path):
    _, _, crc_a = _write(tmp_path / "a.tar", SAMPLES)
    _, _, crc_b = _write(tmp_path / "b.tar", SAMPLES)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert crc_a == crc_b
    writer = ShardWriter(str(tmp_path / "c.tar"))
    writer.add_sample("000002b66c9c498e", "jpg", b"x" * 10_000, b"{}")
    assert not (tmp_path / "c.tar").exists()  # only a hidden temporary so far
    assert [p.name.startswith(".tmp-") for p in tmp_path.iterdir()].count(True) == 1
    writer.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar", "b.tar"]


def test_an_empty_shard_is_a_valid_tar(tmp_path):
    _write(tmp_path / "empty.tar", [])
    with tarfile.open(tmp_path / "empty.tar") as tar:
        assert tar.getnames() == []
    dataset = wds.WebDataset(
        str(tmp_path / "empty.tar"), shardshuffle=False, empty_check=False
    )
    assert list(dataset) == []
    assert (tmp_path / "empty.tar").stat().st_size == 1024


def test_headers_are_those_tarfile_writes():
    from oibeam.transforms.shard.shard_writer import _header

    for name, size in [
        ("000002b66c9c498e.jpg", 123_456),
        ("a.json", 0),
        ("x" * 100, 8**11 - 1),
    ]:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, 0, 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        assert _header(name, size) == info.tobuf(format=tarfile.USTAR_FORMAT)
