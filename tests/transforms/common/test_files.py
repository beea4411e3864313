"""files: Beam's FileSystems calls on local paths without Beam, with the same
answers as Beam gives on the same tree."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import pytest
from apache_beam.io.filesystems import FileSystems

from oibeam.transforms.common import files

PATTERNS = [
    "{d}/a.txt",
    "{d}/*.txt",
    "{d}/*",
    "{d}/",
    "{d}/**",
    "{d}/**/*.parquet",
    "{d}/sub/part-0000?.parquet",
    "{d}/sub/part-[0-1]*.parquet",
    "{d}/sub/part-[!0]*.parquet",
    "{d}/nothing-*.csv",
    "{d}/missing.txt",
    "{d}/.hidden*",
]


@pytest.fixture
def tree(tmp_path):
    for name in (
        "a.txt",
        "b.txt",
        ".hidden-c.txt",
        "sub/part-00000.parquet",
        "sub/part-00001.parquet",
        "sub/part-00020.parquet",
        "sub/deeper/x.parquet",
        "other/y.csv",
    ):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode() * 3)
    return tmp_path


@pytest.mark.parametrize("pattern", PATTERNS)
def test_match_finds_what_beam_finds(tree, pattern):
    pattern = pattern.format(d=tree)
    ours = files.match([pattern])[0].metadata_list
    beams = FileSystems.match([pattern])[0].metadata_list
    assert sorted((m.path, m.size_in_bytes) for m in ours) == sorted(
        (m.path, m.size_in_bytes) for m in beams
    )


def test_match_limits_and_relative_patterns(tree, monkeypatch):
    assert len(files.match([f"{tree}/**"], [2])[0].metadata_list) == 2
    monkeypatch.chdir(tree)
    found = [m.path for m in files.match(["sub/*.parquet"])[0].metadata_list]
    assert found == [
        "sub/part-00000.parquet",
        "sub/part-00001.parquet",
        "sub/part-00020.parquet",
    ]


def test_create_open_rename_delete_as_beam_does(tmp_path):
    target = tmp_path / "new" / "deep" / "file.bin"
    with files.create(str(target)) as f:  # parents made, as Beam makes them
        f.write(b"payload")
    assert files.exists(str(target)) and files.size(str(target)) == 7
    moved = tmp_path / "moved.bin"
    files.rename([str(target)], [str(moved)])
    with files.open(str(moved)) as f:
        assert f.read() == b"payload"
    files.delete([str(tmp_path / "new")])  # a directory goes whole
    assert not (tmp_path / "new").exists()
    with pytest.raises(OSError):
        files.delete([str(tmp_path / "absent")])


def test_compressed_names_still_go_through_beam(tmp_path):
    """Beam inflates a .gz it is asked to open (its AUTO compression): the
    same bytes come back here."""
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n1,2\n"))
    with files.open(str(path)) as f:
        assert f.read() == b"a,b\n1,2\n"


def test_link_or_copy_shares_bytes_on_a_local_disk(tmp_path):
    source = tmp_path / "s.parquet"
    source.write_bytes(b"x" * 100)
    files.link_or_copy(str(source), str(tmp_path / "d" / "s.parquet"))
    assert os.stat(source).st_ino == os.stat(tmp_path / "d" / "s.parquet").st_ino


def test_local_files_do_not_load_beam(tmp_path):
    probe = (
        "import sys\n"
        "from oibeam.transforms.common import files\n"
        f"p = {str(tmp_path / 'f')!r}\n"
        "with files.create(p) as f: f.write(b'1')\n"
        "assert files.match([p + '*'])[0].metadata_list\n"
        "files.delete([p])\n"
        "print('apache_beam' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"
