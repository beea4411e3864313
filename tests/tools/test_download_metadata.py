"""oibeam download-metadata against a loopback mirror of the official layout
(a synthetic V1 release packed as the official tarballs; V4-V7's plain CSVs
with their real header lines): the files land whole at their official paths,
`oibeam tables` takes the printed flags as they are, --split picks (and for
V4+ fetches) one split's files, a rerun fetches nothing, a truncated, hostile
or wrong-sized file stops with a clear error and leaves nothing under a final
name, and an unknown release is refused."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shlex
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from oibeam.tools.metadata.download import (
    RECORD,
    DownloadError,
    download_metadata,
)
from oibeam.tools.metadata.official_files import (
    BOXES,
    CLASSES,
    HIERARCHY,
    IMAGES,
    LABELS,
    RELEASES,
    SPLITS,
    OfficialFile,
)
from oibeam.tools.sample import write_sample_release

from support.paths import REAL
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


def test_an_unknown_release_is_refused_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        run_cli("download-metadata", "--release", "v8", "--output", tmp_path)
    assert stopped.value.code == 2
    assert "invalid choice: 'v8'" in capsys.readouterr().err
    with pytest.raises(DownloadError, match="not an Open Images release") as e:
        download_metadata("v8", ("train",), str(tmp_path))
    assert "--images" in str(e.value)


# V4-V7: plain CSVs at their official paths, each with its release's real header
# line (images: a curl of 2018_04/*-with-rotation.csv quoted in the issue-18
# research; boxes: the 13 columns TFDS reads, and the 21 of V6's train file as
# `head` prints it in third-party notes; classes: no header up to V5,
# LabelName,DisplayName from V6), rows synthetic, and the real class list and
# hierarchy from tests/fixtures/realdata.
CSV_RELEASES = ("v4", "v5", "v6", "v7")
IMAGES_HEADER = (
    "ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,"
    "Author,Title,OriginalSize,OriginalMD5,Thumbnail300KURL,Rotation"
)
LABELS_HEADER = "ImageID,Source,LabelName,Confidence"
BOXES_HEADER = (
    "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,"
    "IsTruncated,IsGroupOf,IsDepiction,IsInside"
)
XCLICKS = ",XClick1X,XClick2X,XClick3X,XClick4X,XClick1Y,XClick2Y,XClick3Y,XClick4Y"
PER_SPLIT = {"train": 6, "validation": 4, "test": 3}  # images
MIDS = [
    line.split(",")[0]
    for line in (REAL / "class-descriptions-boxable.csv").read_text().splitlines()
][:12]


def _image_ids(split: str) -> list[str]:
    return [f"{SPLITS.index(split) + 10:x}{i:015x}" for i in range(PER_SPLIT[split])]


def _synthetic(official: OfficialFile) -> bytes:
    """The file a mirror serves at `official.url`: its release's header, then
    rows of `official.split`'s images."""
    url = official.url
    if official.kind == HIERARCHY:
        return (REAL / "bbox_labels_600_hierarchy.json").read_bytes()
    if official.kind == CLASSES:
        header = "LabelName,DisplayName\n" if "/v6/" in url or "/v7/" in url else ""
        return (header + (REAL / "class-descriptions-boxable.csv").read_text()).encode()
    ids = _image_ids(official.split)
    if official.kind == IMAGES:
        lines = [IMAGES_HEADER]
        for n, image in enumerate(ids):
            md5 = base64.b64encode(hashlib.md5(image.encode()).digest()).decode()
            lines.append(
                f"{image},{official.split},https://farm1.staticflickr.com/1/"
                f"{image}_o.jpg,https://www.flickr.com/photos/a/{n}/,"
                "https://creativecommons.org/licenses/by/2.0/,"
                f'https://www.flickr.com/people/a/,"Author {n}","A title, {n}",'
                f"{1000 + n},{md5},https://c1.staticflickr.com/1/{image}_z.jpg,"
                f"{('0.0', '90.0', '', '270.0')[n % 4]}"
            )
    elif official.kind == LABELS:
        lines = [LABELS_HEADER]
        for n, image in enumerate(ids):
            if "machine" in url:
                lines.append(f"{image},machine,{MIDS[n % 12]},0.{n % 9 + 1}")
            else:
                lines.append(f"{image},verification,{MIDS[n % 12]},1")
                lines.append(f"{image},crowdsource-verification,{MIDS[-1]},0")
    else:
        xclicks = "oidv6-train-annotations-bbox" in url
        lines = [BOXES_HEADER + (XCLICKS if xclicks else "")]
        for n, image in enumerate(ids):
            box = f"{image},xclick,{MIDS[n % 12]},1,0.1,0.5,0.2,0.6,0,1,0,0,0"
            lines.append(box + (",0.1,0.5,0.3,0.2,0.2,0.4,0.6,0.3" if xclicks else ""))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def csv_mirror(tmp_path):
    """Every V4-V7 file at its official path (a file two releases share is
    the same file)."""
    root = tmp_path / "mirror"
    for release in CSV_RELEASES:
        for official in RELEASES[release]:
            target = root / urlsplit(official.url).path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_synthetic(official))
    served = _Mirror(root)
    yield served
    served.close()


def _named(flags: list[str], flag: str) -> list[str]:
    start = flags.index(flag) + 1
    end = next((i for i, f in enumerate(flags[start:], start) if f[:2] == "--"), None)
    return flags[start:end]


@pytest.mark.parametrize("release", CSV_RELEASES)
def test_a_csv_release_lands_at_its_paths_and_tables_take_it(
    release, csv_mirror, tmp_path, capsys
):
    output = tmp_path / "metadata"
    args = ["download-metadata", "--release", release, "--output", output]
    assert run_cli(*args, "--base-url", csv_mirror.url) == 0
    flags = _flags(capsys.readouterr().out)
    files = RELEASES[release]
    assert csv_mirror.gets == len(files)
    for official in files:
        assert (output / urlsplit(official.url).path.lstrip("/")).is_file()
    images, labels = _named(flags, "--images"), _named(flags, "--labels")
    assert [Path(p).name for p in images][1:] == [
        "validation-images-with-rotation.csv",
        "test-images-with-rotation.csv",
    ]
    assert len(labels) == 6 and len(_named(flags, "--boxes")) == 3
    assert _named(flags, "--hierarchy") == [
        str(output / "openimages/2018_04/bbox_labels_600_hierarchy.json")
    ]
    classes = _named(flags, "--classes")
    assert len(classes) == 1
    assert run_cli("tables", *flags, "--output", tmp_path / "tables") == 0
    manifest = json.loads((tmp_path / "tables" / "manifest.json").read_text())
    assert manifest["rows"]["images"] == sum(PER_SPLIT.values())
    assert manifest["rows"]["labels"] == 3 * sum(PER_SPLIT.values())
    read = {entry["path"]: entry for entry in manifest["inputs"]}
    assert set(read) == {f for f in flags if not f.startswith("--")}
    # Every row read (the real class list has one mid without a name).
    assert [p for p, e in read.items() if e.get("rows_rejected")] == classes
    # A rerun fetches nothing and names the same files.
    assert run_cli(*args, "--base-url", csv_mirror.url) == 0
    assert csv_mirror.gets == len(files) and _flags(capsys.readouterr().out) == flags


def test_a_split_fetches_only_its_files(csv_mirror, tmp_path, capsys):
    args = ["download-metadata", "--release", "v7", "--split", "validation"]
    output = tmp_path / "m"
    assert run_cli(*args, "--output", output, "--base-url", csv_mirror.url) == 0
    flags = _flags(capsys.readouterr().out)
    assert csv_mirror.gets == 6  # images, human and machine labels, boxes, + 2
    assert [Path(p).name for p in _named(flags, "--labels")] == [
        "oidv7-val-annotations-human-imagelabels.csv",
        "oidv7-val-annotations-machine-imagelabels.csv",
    ]
    assert not list(output.rglob("*train*")) and not list(output.rglob("*test*"))
    assert run_cli("tables", *flags, "--output", tmp_path / "tables") == 0
    manifest = json.loads((tmp_path / "tables" / "manifest.json").read_text())
    assert manifest["rows"]["images"] == PER_SPLIT["validation"]


def test_every_csv_release_file_names_two_sources_and_a_split():
    for release in CSV_RELEASES:
        kinds = {official.kind for official in RELEASES[release]}
        assert kinds == {IMAGES, LABELS, CLASSES, BOXES, HIERARCHY}
        for official in RELEASES[release]:
            assert official.url.startswith("https://storage.googleapis.com/openimages/")
            sources = official.source.split("; ")
            named = [s for s in sources if not s.startswith("for this release")]
            assert len(named) >= 2, official.url
            assert not official.archive and official.md5 is None
            assert (official.split is None) == (official.kind in (CLASSES, HIERARCHY))
