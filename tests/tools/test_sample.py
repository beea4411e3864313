"""Tests for tools.sample: read the release back with the csv module."""

from __future__ import annotations

import base64
import csv
import hashlib
import math
import re
from collections import Counter
from pathlib import Path

import pytest

from oibeam.tools.sample import SampleRelease, write_sample_release

from support.headers import LABELS_HEADER, V1_IMAGES_HEADER

# The sample release is V1-shaped: its headers are the release's own.
IMAGE_COLUMNS = V1_IMAGES_HEADER.split(",")
LABEL_COLUMNS = LABELS_HEADER.split(",")
MACHINE_CONFIDENCES = {"0.5", "0.6", "0.7", "0.8", "0.9", "1.0"}
HEX16 = re.compile(r"[0-9a-f]{16}")
MID = re.compile(r"/m/0[0-9a-z_]{4,6}|/g/1[0-9a-z_]{8}")
N = 3000
SEED = 7
FRACTION = 0.2  # more validation images than the default, for steadier stats


def read_csv(path: str) -> list[list[str]]:
    """All records of a CSV file (strict RFC 4180 parsing)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f, strict=True))


def digests(release: SampleRelease) -> dict[str, str]:
    """sha256 of every file of a release, by path relative to its root."""
    files = [release.classes_file, *release.images_files, *release.labels_files]
    return {
        str(Path(p).relative_to(release.root)): hashlib.sha256(
            Path(p).read_bytes()
        ).hexdigest()
        for p in files
    }


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> SampleRelease:
    out = tmp_path_factory.mktemp("release")
    return write_sample_release(str(out), N, seed=SEED, validation_fraction=FRACTION)


@pytest.fixture(scope="module")
def images(release: SampleRelease) -> dict[str, list[list[str]]]:
    """Image records (without header) by subset folder."""
    train, validation = release.images_files
    return {"train": read_csv(train)[1:], "validation": read_csv(validation)[1:]}


@pytest.fixture(scope="module")
def labels(release: SampleRelease) -> dict[str, list[list[str]]]:
    """Label records (without header) by file."""
    names = ("machine_train", "machine_validation", "human_validation")
    return {
        n: read_csv(p)[1:] for n, p in zip(names, release.labels_files, strict=True)
    }


def test_layout_and_headers(release: SampleRelease) -> None:
    root = Path(release.root)
    assert root.is_absolute()
    assert release.classes_file == str(root / "dict.csv")
    assert release.images_files == (
        str(root / "images_2016_08/train/images.csv"),
        str(root / "images_2016_08/validation/images.csv"),
    )
    assert release.labels_files == (
        str(root / "machine_ann_2016_08/train/labels.csv"),
        str(root / "machine_ann_2016_08/validation/labels.csv"),
        str(root / "human_ann_2016_08/validation/labels.csv"),
    )
    for path in release.images_files:
        assert read_csv(path)[0] == IMAGE_COLUMNS
    for path in release.labels_files:
        assert read_csv(path)[0] == LABEL_COLUMNS


def test_counts_match(
    release: SampleRelease,
    images: dict[str, list[list[str]]],
    labels: dict[str, list[list[str]]],
) -> None:
    assert release.images == N == sum(len(rows) for rows in images.values())
    assert release.label_rows == sum(len(rows) for rows in labels.values())
    assert 0.15 < len(images["validation"]) / N < 0.25


def test_image_ids_and_subsets(images: dict[str, list[list[str]]]) -> None:
    seen: set[str] = set()
    for subset, rows in images.items():
        ids = [r[0] for r in rows]
        assert all(HEX16.fullmatch(i) for i in ids)
        assert ids == sorted(ids)
        assert {r[1] for r in rows} == {subset}
        seen.update(ids)
    assert len(seen) == N  # distinct across both files


def test_image_metadata(images: dict[str, list[list[str]]]) -> None:
    rows = images["train"] + images["validation"]
    assert all(len(r) == len(IMAGE_COLUMNS) for r in rows)
    url = re.compile(r"https://c1\.staticflickr\.com/5/4129/(\d+)_[0-9a-f]{10}_o\.jpg")
    licenses = Counter(r[4] for r in rows)
    for _, _, original, landing, license_, profile, _, _, size, md5 in rows:
        photo = url.fullmatch(original)
        assert photo, original
        user = re.fullmatch(r"https://www\.flickr\.com/photos/([^/]+)/(\d+)", landing)
        assert user and user.group(2) == photo.group(1)
        assert profile == f"https://www.flickr.com/people/{user.group(1)}/"
        assert re.fullmatch(
            r"https://creativecommons\.org/licenses/by/[0-9.]+/", license_
        )
        assert 20_000 <= int(size) <= 15_000_000
        assert len(md5) == 24 and md5.endswith("==")
        assert len(base64.b64decode(md5, validate=True)) == 16
    top, count = licenses.most_common(1)[0]
    assert top == "https://creativecommons.org/licenses/by/2.0/"
    assert count > 0.8 * len(rows)
    sizes = sorted(int(r[8]) for r in rows)
    assert 700_000 < sizes[len(sizes) // 2] < 3_000_000  # median ~1-2 MB


def test_free_text_traps(
    release: SampleRelease, images: dict[str, list[list[str]]]
) -> None:
    rows = images["train"] + images["validation"]
    authors, titles = [r[6] for r in rows], [r[7] for r in rows]
    assert any("," in t for t in titles)
    assert any('"' in t for t in titles)
    assert any(not t.isascii() for t in titles)
    assert any(t == "" for t in titles)
    assert any(not a.isascii() for a in authors)
    assert any("&#x27;" in a or "&amp;" in a for a in authors)
    # a title with a newline is one record: more physical lines than records
    multiline = [t for t in titles if "\n" in t]
    assert multiline
    raw_lines = sum(Path(p).read_bytes().count(b"\n") for p in release.images_files)
    assert raw_lines == N + 2 + sum(t.count("\n") for t in multiline)


def quote(field: str) -> str:
    """RFC 4180 quoted field."""
    return '"' + field.replace('"', '""') + '"'


def rewrite(rows: list[list[str]], quoted: set[int]) -> str:
    """CSV text with the columns ``quoted`` always quoted and the others bare."""
    for row in rows:
        for i, field in enumerate(row):
            assert i in quoted or not set(field) & set(',"\r\n'), field
    lines = (
        ",".join(quote(f) if i in quoted else f for i, f in enumerate(row))
        for row in rows
    )
    return "".join(line + "\n" for line in lines)


def test_exact_quoting(release: SampleRelease) -> None:
    """Files are exactly RFC 4180 with AuthorProfileURL, Author and Title (and
    every dict.csv field) always quoted, everything else bare, LF line ends."""
    for path in release.images_files:
        rows = read_csv(path)
        text = Path(path).read_text(encoding="utf-8")
        assert text == rewrite(rows[:1], set()) + rewrite(rows[1:], {5, 6, 7})
    for path in release.labels_files:
        assert Path(path).read_text(encoding="utf-8") == rewrite(read_csv(path), set())
    path = release.classes_file
    assert Path(path).read_text(encoding="utf-8") == rewrite(read_csv(path), {0, 1})


def test_label_files(
    images: dict[str, list[list[str]]], labels: dict[str, list[list[str]]]
) -> None:
    subsets = {
        "machine_train": ("train", "machine"),
        "machine_validation": ("validation", "machine"),
        "human_validation": ("validation", "human"),
    }
    for name, rows in labels.items():
        subset, source = subsets[name]
        known = {r[0] for r in images[subset]}
        ids = [r[0] for r in rows]
        assert ids == sorted(ids), name  # sorted, so each image is contiguous
        assert set(ids) <= known, name
        assert {r[1] for r in rows} == {source}
        assert all(MID.fullmatch(r[2]) for r in rows)
        pairs = Counter((r[0], r[2]) for r in rows)
        assert max(pairs.values()) == 1, name  # no repeated label in an image
        allowed = MACHINE_CONFIDENCES if source == "machine" else {"0", "1"}
        assert {r[3] for r in rows} <= allowed


def test_label_statistics(
    images: dict[str, list[list[str]]], labels: dict[str, list[list[str]]]
) -> None:
    machine = len(labels["machine_train"]) + len(labels["machine_validation"])
    assert 8.3 < machine / N < 9.3
    human = labels["human_validation"]
    assert 9.5 < len(human) / len(images["validation"]) < 11.3
    negatives = sum(r[3] == "0" for r in human) / len(human)
    assert 0.27 < negatives < 0.36
    own = {(r[0], r[2]) for r in labels["machine_validation"]}
    from_machine = sum((r[0], r[2]) in own for r in human) / len(human)
    assert 0.7 < from_machine < 0.9
    confidences = Counter(r[3] for r in labels["machine_train"])
    assert confidences["0.6"] > confidences["0.5"] > confidences["1.0"]
    frequency = Counter(r[2] for r in labels["machine_train"]).most_common()
    assert frequency[0][1] > 20 * frequency[len(frequency) // 2][1]  # Zipf-like


def test_dictionary(release: SampleRelease, labels: dict[str, list[list[str]]]) -> None:
    rows = read_csv(release.classes_file)
    assert all(len(r) == 2 for r in rows)
    mids = [r[0] for r in rows]
    assert len(set(mids)) == len(mids)
    assert all(MID.fullmatch(m) for m in mids)
    assert any(m.startswith("/g/1") for m in mids)
    used = {r[2] for rows_ in labels.values() for r in rows_}
    assert used <= set(mids)
    assert 7844 < len(mids) < 7844 * 1.01
    names = [r[1] for r in rows]
    assert max(Counter(names).values()) > 1
    assert any("," in n for n in names)
    assert any(not n.isascii() for n in names)


def test_deterministic(tmp_path: Path, release: SampleRelease) -> None:
    again = write_sample_release(
        str(tmp_path / "again"), N, seed=SEED, validation_fraction=FRACTION
    )
    other = write_sample_release(
        str(tmp_path / "other"), N, seed=SEED + 1, validation_fraction=FRACTION
    )
    assert digests(again) == digests(release)
    assert again.label_rows == release.label_rows
    mine, theirs = digests(release), digests(other)
    assert all(mine[k] != theirs[k] for k in mine)


def test_thumbnails(tmp_path: Path, release: SampleRelease) -> None:
    thumbs = write_sample_release(
        str(tmp_path / "thumbs"),
        N,
        seed=SEED,
        validation_fraction=FRACTION,
        thumbnails=True,
    )
    url = re.compile(
        r"https://c1\.staticflickr\.com/\d+/\d+/(\d+)_([0-9a-f]{10})_z\.jpg"
    )
    empty = 0
    for with_thumbs, plain in zip(
        thumbs.images_files, release.images_files, strict=True
    ):
        rows, plain_rows = read_csv(with_thumbs), read_csv(plain)
        assert rows[0] == [*IMAGE_COLUMNS, "Thumbnail300KURL"]
        assert [r[:-1] for r in rows] == plain_rows  # other columns unchanged
        for row in rows[1:]:
            if not row[-1]:
                empty += 1
                continue
            thumb = url.fullmatch(row[-1])
            assert thumb
            assert row[2].endswith(f"/{thumb.group(1)}_{thumb.group(2)}_o.jpg")
    assert 0.01 < empty / N < 0.1
    assert digests(thumbs)["dict.csv"] == digests(release)["dict.csv"]


@pytest.mark.parametrize("n", [1, 10])
def test_tiny_releases(tmp_path: Path, n: int) -> None:
    result = write_sample_release(str(tmp_path), n, url_base="http://127.0.0.1/i/")
    rows = [r for p in result.images_files for r in read_csv(p)[1:]]
    assert len(rows) == result.images == n
    assert all(r[2].startswith("http://127.0.0.1/i/") for r in rows)
    label_rows = sum(len(read_csv(p)) - 1 for p in result.labels_files)
    assert label_rows == result.label_rows


@pytest.mark.parametrize(
    "kwargs",
    [
        {"images": 0},
        {"images": -5},
        {"images": 1.5},
        {"images": 10, "validation_fraction": 1.0},
        {"images": 10, "validation_fraction": -0.1},
        {"images": 10, "validation_fraction": math.nan},
        {"images": 10, "num_labels": 0},
        {"images": 10, "url_base": "http://a,b/"},
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        write_sample_release(str(tmp_path), **kwargs)
