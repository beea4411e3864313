"""`oibeam report`: the page of a real snapshot (images failing on the
FaultServer) and of a real `oibeam tables` run, read back and checked against
the tables."""

from __future__ import annotations

import base64
import collections
import io
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from oibeam.tools.report.leakage_facts import THUMB_SIDE
from oibeam.tools.report.write_report import REPORT, write_report

from support.headers import BOXES_HEADER
from support.report_page import Page, number
from support.report_release import (
    CAT,
    DOG,
    RULE,
    build_snapshot,
    release_flags,
)
from support.runs import run_cli
from support.snapshot_release import FLAGS

FETCH_SECTIONS = {"fetch", "hosts", "files", "trainability"}
LABEL_SECTIONS = {"labels", "quality", "trainable", "top-labels"}
GENERATED = re.compile(r'<time id="generated">[^<]*</time>')


@pytest.fixture(scope="module")
def snapshot_root(fault_server, tmp_path_factory) -> Path:
    return build_snapshot(fault_server, tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def snapshot_page(snapshot_root) -> tuple[Path, str]:
    path = Path(write_report(str(snapshot_root)))  # ROOT: follows LATEST
    return path, path.read_text(encoding="utf-8")


def test_snapshot_report_has_every_section_and_the_tables_counts(
    snapshot_root, snapshot_page
):
    path, text = snapshot_page
    assert path == snapshot_root / "s1" / REPORT
    page = Page(text)
    assert {"run", "inputs"} | LABEL_SECTIONS | FETCH_SECTIONS <= set(page.sections)
    images = pq.read_table(snapshot_root / "s1" / "tables" / "images")
    statuses = collections.Counter(images["status"].to_pylist())
    assert page.keyed("status-table") == dict(statuses)
    assert dict(statuses) == {"ok": 8, "gone": 2, "changed": 1}
    assert page.keyed("status-table", 3) == dict.fromkeys(statuses, 0)  # final
    hosts = {row[0]: row for row in page.tables["host-table"]}
    assert set(hosts) == {"127.0.0.1", "localhost"}
    assert [number(c) for c in hosts["127.0.0.1"][1:4]] == [9, 7, 2]  # images/ok/fail
    assert [number(c) for c in hosts["localhost"][1:4]] == [2, 1, 1]
    assert page.keyed("format-table") == {"JPEG": 8}
    assert page.keyed("size-table") == {"40 × 30": 8}
    run = dict(page.tables["run-table"])
    assert run["snapshot"] == "s1" and run["command"] == "oibeam snapshot"
    assert page.keyed("changes-table") == {"added": 11}


def test_top_labels_and_lost_trainability(snapshot_page):
    _, text = snapshot_page
    page = Page(text)
    top = page.tables["top-labels"]
    assert [row[1] for row in top] == [CAT, DOG, "Car"]  # display names, unescaped
    assert [row[2] for row in top] == ["/m/cat", "/m/dog", "/m/car"]
    # A human verdict overrules the machine: cat is on 9 images, not 10.
    assert [number(row[3]) for row in top] == [9, 4, 1]
    assert top[0][7] == "50.0%"  # machine precision: 1 of 2 verified
    # Dog: 4 selected train images, 2 of them failed: below the rule's 3.
    lost = page.tables["lost-table"]
    assert [row[:4] for row in lost] == [[DOG, "/m/dog", "4 → 2", "0 → 0"]]
    assert number(lost[0][4]) == 2
    failed = {row[1]: row for row in page.tables["failed-labels-table"]}
    assert failed["/m/cat"][2:5] == ["8 → 5", "1 → 1", "3"]
    assert "/m/car" not in failed
    presets = page.keyed("presets-table", 2)
    assert presets["v1+custom"] == 2 and presets["v1"] == 0


def test_text_from_the_data_is_escaped(snapshot_page):
    _, text = snapshot_page
    assert "&lt;b&gt;Cat&lt;/b&gt; &amp; &quot;Kitty&quot;" in text
    assert "&lt;script&gt;alert(&#x27;dog&#x27;)&lt;/script&gt;Dog" in text
    assert "<script" not in text and "<b>Cat" not in text


def test_the_page_is_self_contained(snapshot_page):
    _, text = snapshot_page
    page = Page(text)
    # PNG charts; small JPEG thumbnails of images with a duplicate (leakage)
    png, jpeg = "data:image/png;base64,", "data:image/jpeg;base64,"
    assert page.srcs and all(s.startswith((png, jpeg)) for s in page.srcs)
    assert all(h.startswith("#") for h in page.hrefs)
    assert set(page.hrefs) == {f"#{s}" for s in page.sections}
    for tag in ("script", "link", "iframe", "object", "embed"):
        assert page.tags[tag] == 0, tag
    assert "url(" not in text and "@import" not in text
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", text)
    for src in page.srcs:
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        image.load()
        if src.startswith(jpeg):
            assert image.format == "JPEG" and max(image.size) <= THUMB_SIDE
            continue
        assert image.format == "PNG" and image.width > 300 and image.height > 100


def test_rerun_replaces_the_page(snapshot_root, snapshot_page):
    path, first = snapshot_page
    assert write_report(str(snapshot_root / "s1")) == str(path)
    again = path.read_text(encoding="utf-8")
    assert GENERATED.sub("", again) == GENERATED.sub("", first)
    assert sorted(p.name for p in path.parent.iterdir() if "report" in p.name) == [
        REPORT
    ]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp")]


def test_cli(snapshot_root, tmp_path, capsys):
    assert run_cli("report", snapshot_root / "s1") == 0
    assert capsys.readouterr().out.strip() == f"report: {snapshot_root / 's1' / REPORT}"
    assert run_cli("report", tmp_path) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_tables_run_without_fetch_with_boxes_and_inferred_labels(
    fault_server, tmp_path, run_tables
):
    """An `oibeam tables` run (no fetch) that read boxes and expanded labels to
    their ancestors: label sections plus boxes and inferred rows, no fetch."""
    flags = release_flags(fault_server, tmp_path / "release")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(
        f"{BOXES_HEADER}\n"
        + "".join(
            f"{i:016x},human,{label},1,0.1,0.5,0.2,0.6\n"
            for i, label in [(1, "/m/cat"), (1, "/m/cat"), (2, "/m/cat"), (1, "/m/dog")]
        )
    )
    hierarchy = tmp_path / "hierarchy.json"
    animal = {
        "LabelName": "/m/animal",
        "Subcategory": [{"LabelName": "/m/cat"}, {"LabelName": "/m/dog"}],
    }
    hierarchy.write_text(json.dumps({"LabelName": "/m/0bl9f", "Subcategory": [animal]}))
    tables = run_tables(
        *flags, *RULE, "--boxes", boxes, "--hierarchy", hierarchy, "--expand-ancestors"
    )
    assert tables.exit_code == 0
    page = Page(Path(write_report(str(tables.root))).read_text(encoding="utf-8"))
    assert not FETCH_SECTIONS & set(page.sections)
    assert "status-table" not in page.tables and "host-table" not in page.tables
    assert LABEL_SECTIONS | {"run", "inputs", "boxes", "inferred"} <= set(page.sections)
    assert dict(page.tables["run-table"])["command"] == "oibeam tables"
    inputs = {row[0].rsplit("/", 1)[-1]: row for row in page.tables["inputs-table"]}
    assert number(inputs["images.csv"][4]) == 11  # rows read
    assert inputs["hierarchy.json"][1] == "hierarchy"
    top = {row[2]: row for row in page.tables["top-labels"]}
    assert number(top["/m/cat"][-1]) == 3 and number(top["/m/dog"][-1]) == 1  # boxes
    # Each positive (image, source) of cat or dog implies Animal once: 10
    # machine rows and the human cat of image 5 (a human 0 implies nothing).
    assert page.tables["inferred-table"] == [["–", "/m/animal", "11"]]


def test_fetch_run_counts_labels_from_its_images(fault_server, tmp_path):
    """`oibeam fetch` writes no label_stats: the label sections come from the
    nested labels of the images it selected."""
    flags = release_flags(fault_server, tmp_path / "release")
    out = tmp_path / "fetch"
    assert run_cli("fetch", *flags, *RULE, *FLAGS, "--output", out) == 0
    page = Page(Path(write_report(str(out))).read_text(encoding="utf-8"))
    assert LABEL_SECTIONS | FETCH_SECTIONS <= set(page.sections)
    assert [row[1] for row in page.tables["top-labels"]] == [CAT, DOG, "Car"]
    assert page.keyed("status-table") == {"ok": 8, "gone": 2, "changed": 1}
    assert [row[1] for row in page.tables["lost-table"]] == ["/m/dog"]
    assert "a fetch run writes no label_stats" in page.texts["labels"]


def test_no_boxes_or_inferred_sections_without_them(snapshot_page):
    _, text = snapshot_page
    assert not {"boxes", "inferred"} & set(Page(text).sections)


def test_report_of_a_snapshot_on_gcs(gcs_emulator, snapshot_root, snapshot_page):
    """The same snapshot copied to gs://: ROOT follows LATEST there, the tables
    are read through Beam's GCS filesystem and the page is written back."""
    bucket = gcs_emulator.create_bucket("oibeam-report")
    for path in sorted(snapshot_root.rglob("*")):
        if path.is_file() and path.name != REPORT:
            name = f"root/{path.relative_to(snapshot_root)}"
            bucket.blob(name).upload_from_filename(str(path))
    written = write_report(f"gs://{bucket.name}/root")
    assert written == f"gs://{bucket.name}/root/s1/{REPORT}"
    text = bucket.blob(f"root/s1/{REPORT}").download_as_bytes().decode()
    _, local = snapshot_page
    assert Page(text).tables["status-table"] == Page(local).tables["status-table"]
    assert Page(text).srcs == Page(local).srcs  # the same plots, byte for byte
    assert [
        b.name for b in bucket.list_blobs(prefix="root/s1/") if "report" in b.name
    ] == [f"root/s1/{REPORT}"]
