"""oibeam download-metadata against a loopback mirror of the official layout
(a synthetic V1 release packed as the official tarballs): the files land
whole, `oibeam tables` takes the printed flags as they are, a rerun fetches
nothing, and a truncated, hostile or wrong-sized file stops with a clear error
and leaves nothing under a final name."""

from __future__ import annotations

import io
import json
import shlex
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from oibeam.tools.metadata.download import (
    RECORD,
    DownloadError,
    download_metadata,
)
from oibeam.tools.metadata.official_files import CLASSES, IMAGES, OfficialFile
from oibeam.tools.sample import write_sample_release

from support.runs import run_cli

V1 = "openimages/2016_08"
TARBALLS = {  # official name -> the sample's folder it packs
    "images_2016_08_v5.tar.gz": "images_2016_08",
    "machine_ann_2016_08_v3.tar.gz": "machine_ann_2016_08",
    "human_ann_2016_08_v3.tar.gz": "human_ann_2016_08",
}


class _Mirror:
    """A static server of `root`, counting GET requests."""

    def __init__(self, root: Path) -> None:
        self.gets = 0
        mirror = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):
                mirror.gets += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(Handler, directory=str(root))
        )
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def mirror(tmp_path):
    release = tmp_path / "release"
    write_sample_release(str(release), 60, seed=3, num_labels=50)
    root = tmp_path / "mirror"
    (root / V1).mkdir(parents=True)
    for name, folder in TARBALLS.items():
        with tarfile.open(root / V1 / name, "w:gz") as tar:
            tar.add(release / folder, arcname=folder)
    classes = root / "openimages/dataset/master/dict.csv"
    classes.parent.mkdir(parents=True)
    classes.write_bytes((release / "dict.csv").read_bytes())
    served = _Mirror(root)
    yield served, root
    served.close()


def _flags(out: str) -> list[str]:
    return shlex.split(out.strip().splitlines()[-1])


def test_v1_lands_whole_and_tables_take_the_flags(mirror, tmp_path, capsys):
    served, _ = mirror
    output = tmp_path / "metadata"
    args = ["download-metadata", "--release", "v1", "--output", output]
    assert run_cli(*args, "--base-url", served.url) == 0
    flags = _flags(capsys.readouterr().out)
    assert served.gets == 4
    images = flags[flags.index("--images") + 1 : flags.index("--labels")]
    assert [Path(p).parent.name for p in images] == ["train", "validation"]
    assert all(Path(p).is_relative_to(output / V1) for p in images)
    assert flags[-2:] == [
        "--classes",
        str(output / "openimages/dataset/master/dict.csv"),
    ]
    assert run_cli("tables", *flags, "--output", tmp_path / "tables") == 0
    rows = json.loads((tmp_path / "tables" / "manifest.json").read_text())["rows"]
    assert rows["images"] == 60
    # A rerun fetches nothing and names the same files.
    assert run_cli(*args, "--base-url", served.url) == 0
    out = capsys.readouterr().out
    assert served.gets == 4 and "0 file(s) downloaded, 4 already there" in out
    assert _flags(out) == flags


def test_a_split_names_only_its_csvs(mirror, tmp_path, capsys):
    served, _ = mirror
    args = ["download-metadata", "--release", "v1", "--split", "validation"]
    assert run_cli(*args, "--output", tmp_path / "m", "--base-url", served.url) == 0
    flags = _flags(capsys.readouterr().out)
    csvs = [f for f in flags if f.endswith(".csv") and "dict.csv" not in f]
    assert csvs and all(Path(f).parent.name == "validation" for f in csvs)


def test_a_truncated_archive_stops_and_leaves_nothing(mirror, tmp_path, capsys):
    served, root = mirror
    archive = root / V1 / "machine_ann_2016_08_v3.tar.gz"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    output = tmp_path / "metadata"
    args = ["download-metadata", "--release", "v1", "--output", output]
    assert run_cli(*args, "--base-url", served.url) == 1
    assert "not a whole .tar.gz" in capsys.readouterr().err
    left = {p.name for p in (output / V1).iterdir()}
    assert left == {"images_2016_08_v5.tar.gz", "images_2016_08_v5"}  # before it
    recorded = json.loads((output / RECORD).read_text())
    assert [url.rsplit("/", 1)[1] for url in recorded] == ["images_2016_08_v5.tar.gz"]


def test_a_member_outside_the_archive_is_refused(tmp_path):
    hostile = tmp_path / "mirror" / "x" / "evil.tar.gz"
    hostile.parent.mkdir(parents=True)
    with tarfile.open(hostile, "w:gz") as tar:
        member = tarfile.TarInfo("../../escaped.csv")
        member.size = 3
        tar.addfile(member, io.BytesIO(b"a,b"))
    served = _Mirror(tmp_path / "mirror")
    try:
        official = OfficialFile(IMAGES, "https://example.org/x/evil.tar.gz", "t", True)
        with pytest.raises(DownloadError, match="outside the archive"):
            download_metadata(
                "v1", ("train",), str(tmp_path / "out"), served.url, (official,)
            )
    finally:
        served.close()
    assert not list(tmp_path.rglob("escaped.csv"))
    assert not (tmp_path / "out" / "x" / "evil.tar.gz").exists()


def test_a_file_of_another_size_than_published_is_refused(mirror, tmp_path):
    served, _ = mirror
    official = OfficialFile(
        CLASSES,
        "https://raw.githubusercontent.com/openimages/dataset/master/dict.csv",
        "t",
        size=5,
    )
    with pytest.raises(DownloadError, match="the release says 5"):
        download_metadata(
            "v1", ("train",), str(tmp_path / "o"), served.url, (official,)
        )
    assert not list((tmp_path / "o").rglob("dict.csv"))


def test_releases_not_listed_say_what_to_do(tmp_path, capsys):
    args = ["download-metadata", "--release", "v6", "--output", tmp_path]
    assert run_cli(*args) == 1
    err = capsys.readouterr().err
    assert "not in oibeam yet" in err and "--images" in err
