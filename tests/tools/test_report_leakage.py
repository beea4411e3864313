"""The report's leakage section on real fetch runs: counts per evaluation
subset and kind from the duplicates table, example pairs whose thumbnails are
read from the shards, and what a run without a table or without a leak says."""

from __future__ import annotations

import base64
import io
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from oibeam.tools.report.leakage_facts import THUMB_SIDE, thumbnail
from oibeam.tools.report.write_report import write_report

from support.duplicates import replace_duplicates
from support.report_page import Page, number
from support.runs import run_cli
from support.snapshot_release import FLAGS, Photo, Release, jpeg

IDS = [f"{i:016x}" for i in range(1, 9)]
SUBSETS = ["train"] * 4 + ["validation", "test", "validation", "test"]
# 1 is an exact copy of validation 5; test 6 and 8 are copies of each other,
# near train image 2; 3 and 4 are near each other, both train.
SEEDS = [11, 12, 13, 14, 11, 16, 17, 16]
ROWS = [
    (IDS[0], IDS[0], "train", "exact", "csv_md5", 0, IDS[4]),
    (IDS[0], IDS[4], "validation", "exact", "csv_md5", 0, IDS[0]),
    (IDS[1], IDS[1], "train", "near", "phash", 3, IDS[5]),
    (IDS[1], IDS[5], "test", "exact", "csv_md5", 0, IDS[7]),
    (IDS[1], IDS[7], "test", "exact", "csv_md5", 0, IDS[5]),
    (IDS[2], IDS[2], "train", "near", "phash", 5, IDS[3]),
    (IDS[2], IDS[3], "train", "near", "phash", 5, IDS[2]),
]


class Pairs(HTMLParser):
    """The example pairs: per pair, [(img src or None, caption), ...] and the
    text between the two images."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.pairs: list[dict] = []
        self._depth = 0  # divs open inside the current pair
        self._where = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and attrs.get("class") == "pair":
            self.pairs.append({"images": [], "join": ""})
            self._depth = 1
            return
        if not self._depth:
            return
        if tag == "div":
            self._depth += 1
            self._where = attrs.get("class")
        elif tag == "figure":
            self.pairs[-1]["images"].append([None, ""])
        elif tag == "img":
            self.pairs[-1]["images"][-1][0] = attrs["src"]
        elif tag == "figcaption":
            self._where = "caption"
        elif tag == "br" and self._where == "caption":
            self.pairs[-1]["images"][-1][1] += " "

    def handle_endtag(self, tag):
        if self._depth and tag == "div":
            self._depth -= 1
            self._where = None
        elif tag == "figcaption":
            self._where = None

    def handle_data(self, data):
        if not self._depth:
            return
        if self._where == "caption":
            self.pairs[-1]["images"][-1][1] += data
        elif self._where == "join":
            self.pairs[-1]["join"] += data


def _decoded(src: str) -> Image.Image:
    assert src.startswith("data:image/jpeg;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    image.load()
    return image


def _colour_of(seed: int) -> tuple[int, int, int]:
    """The colour jpeg(seed) is painted (one white pixel aside)."""
    return (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)


def _close(a, b, tolerance: int = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def fetched(fault_server, tmp_path_factory) -> Path:
    """A fetch of the 8 images, every one ok, before any table is replaced."""
    directory = tmp_path_factory.mktemp("leakage")
    release = Release(fault_server, directory / "release", "leakage")
    for image_id, subset, seed in zip(IDS, SUBSETS, SEEDS, strict=True):
        release.add(Photo(image_id, seed=seed, subset=subset))
    out = directory / "fetch"
    assert run_cli("fetch", *release.write(), *FLAGS, "--output", out) == 0
    return out


def _copy(run: Path, tmp_path: Path, rows) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    replace_duplicates(copy, rows)
    return copy


def _page(run: Path) -> str:
    return Path(write_report(str(run))).read_text(encoding="utf-8")


def test_leaks_are_counted_per_subset_and_kind(fetched, tmp_path):
    text = _page(_copy(fetched, tmp_path, ROWS))
    page = Page(text)
    assert "leakage" in page.sections
    table = {row[0]: row for row in page.tables["leakage-table"]}
    # validation: 5 and 7, 5 an exact copy of train 1
    assert [number(c) for c in table["validation"][1:3]] == [2, 1]
    assert table["validation"][3] == "50.0%"
    assert number(table["validation"][4]) == 0
    # test: 6 and 8, exact copies of each other, in train 2's group: near
    assert [number(c) for c in table["test"][1:3]] == [2, 0]
    assert number(table["test"][4]) == 2 and table["test"][5] == "100.0%"
    facts = page.texts["leakage"]
    assert "3validation and test images with a duplicate in train" in facts
    assert "2train images involved" in facts  # 1 and 2, not 3 and 4
    assert "1of them exact copies" in facts


def test_examples_show_the_right_images_side_by_side(fetched, tmp_path):
    pairs = Pairs(_page(_copy(fetched, tmp_path, ROWS))).pairs
    shown = [(p["images"][0][1], p["images"][1][1], p["join"].strip()) for p in pairs]
    assert shown == [
        (f"{IDS[4]} validation", f"{IDS[0]} train", "exact"),
        (f"{IDS[5]} test", f"{IDS[1]} train", "near, 3 bits"),
        (f"{IDS[7]} test", f"{IDS[1]} train", "near (same group)"),
    ]
    seeds = dict(zip(IDS, SEEDS, strict=True))
    for pair in pairs:
        for src, caption in pair["images"]:
            image = _decoded(src)
            assert image.format == "JPEG"
            assert max(image.size) <= THUMB_SIDE
            assert image.size == (40, 30)  # small already: not enlarged
            centre = image.convert("RGB").getpixel((5, 25))
            assert _close(centre, _colour_of(seeds[caption.split()[0]])), caption


def test_an_older_run_without_a_table_says_so(fetched, tmp_path):
    page = Page(_page(_copy(fetched, tmp_path, [])))
    assert "no duplicates table" in page.texts["leakage"]
    assert "leakage-table" not in page.tables


def test_no_leak_says_so(fetched, tmp_path):
    page = Page(_page(_copy(fetched, tmp_path, ROWS[5:])))  # train only
    table = {row[0]: row for row in page.tables["leakage-table"]}
    assert number(table["validation"][2]) == number(table["test"][4]) == 0
    assert (
        "No validation or test image has a duplicate in train"
        in (page.texts["leakage"])
    )
    assert 'class="pair"' not in _page(_copy(fetched, tmp_path / "again", ROWS[5:]))


def test_thumbnails_are_bounded_and_upright():
    big = Image.new("RGB", (1200, 600), (200, 30, 30))
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: upright it is 600 x 1200
    big.save(out, "JPEG", exif=exif)
    data, width, height = thumbnail(out.getvalue())
    assert (width, height) == (80, 160)
    assert Image.open(io.BytesIO(data)).size == (80, 160)
    assert thumbnail(b"not an image") is None
    assert thumbnail(jpeg(3)) is not None
    # a Rotation restating the EXIF orientation turns it once
    assert thumbnail(out.getvalue(), rotation=270)[1:] == (80, 160)


def test_a_thumbnail_without_exif_is_turned_by_its_rotation():
    out = io.BytesIO()
    Image.new("RGB", (1200, 600), (200, 30, 30)).save(out, "JPEG")
    assert thumbnail(out.getvalue())[1:] == (160, 80)
    assert thumbnail(out.getvalue(), rotation=90)[1:] == (80, 160)
    assert thumbnail(out.getvalue(), rotation=180)[1:] == (160, 80)
    # counterclockwise: a red left half ends at the bottom
    halves = Image.new("RGB", (200, 100), (0, 0, 255))
    halves.paste((255, 0, 0), (0, 0, 100, 100))
    out = io.BytesIO()
    halves.save(out, "JPEG")
    data, width, height = thumbnail(out.getvalue(), rotation=90)
    turned = Image.open(io.BytesIO(data)).convert("RGB")
    assert turned.getpixel((width // 2, height - 5))[0] > 200  # red, bottom
    assert turned.getpixel((width // 2, 5))[2] > 200  # blue, top
