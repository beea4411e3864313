"""Boxes and hierarchy expansion through `oibeam tables` and `oibeam snapshot`.

Real files: the V3 train images, human labels and boxes (8 columns as
published; the 13-column form is the same rows with flags added, as the other
splits ship them) and the 600-class hierarchy. Pixel boxes are checked against
Pillow: the test draws each box into an image, rotates the image with Pillow and
finds the drawn box again.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw

from oibeam.transforms.fetch.pixel_boxes import upright_boxes

from support.headers import BOXES_HEADER, LABELS_HEADER, V4_IMAGES_HEADER
from support.hierarchy_walk import bbox_edges, transitive
from support.paths import REAL
from support.runs import run_cli
from support.snapshot_release import md5_b64, shard_paths

V3 = REAL / "v3_2017_11" / "train"
FLAGS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")


def _real_boxes() -> list[dict]:
    with (V3 / "annotations-human-bbox.csv").open() as f:
        return list(csv.DictReader(f))


def _write_csv(path, header, rows) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture(scope="module")
def box_run(tmp_path_factory):
    """One tables run over the real V3 sample: half the boxes in the 8-column
    form, half in the 13-column form (plus four bad rows), expanded labels."""
    tmp = tmp_path_factory.mktemp("boxes")
    boxes = _real_boxes()
    half = len(boxes) // 2
    head = BOXES_HEADER.split(",")
    _write_csv(tmp / "boxes-8.csv", head, [[b[c] for c in head] for b in boxes[:half]])
    flagged = []
    for n, b in enumerate(boxes[half:]):
        flagged.append([b[c] for c in head] + [str(n % 3 - 1), "0", "1", "0", "-1"])
    image = boxes[0]["ImageID"]
    bad = [
        [image, "xclick", "/m/0k4j", "1", "0.5", "1.2", "0.1", "0.2", *"00000"],
        [image, "xclick", "/m/0k4j", "1", "0.6", "0.5", "0.1", "0.2", *"00000"],
        [image, "xclick", "/m/0k4j", "1", "wide", "0.5", "0.1", "0.2", *"00000"],
        [image, "xclick", "/m/0k4j", "1", "0.1", "0.5", "0.1", "0.2", *"00200"],
    ]
    _write_csv(tmp / "boxes-13.csv", head + list(FLAGS), flagged + bad)
    out = tmp / "run"
    code = run_cli(
        "tables",
        "--images",
        V3 / "images.csv",
        "--labels",
        V3 / "annotations-human.csv",
        "--classes",
        REAL / "class-descriptions-boxable.csv",
        "--boxes",
        tmp / "boxes-8.csv",
        tmp / "boxes-13.csv",
        "--hierarchy",
        REAL / "bbox_labels_600_hierarchy.json",
        "--expand-ancestors",
        "--output",
        out,
    )
    assert code == 0
    return out, boxes, half


def test_boxes_are_nested_per_image_in_both_column_forms(box_run):
    out, boxes, half = box_run
    images = {
        r["ImageID"]: r for r in pq.read_table(out / "tables" / "images").to_pylist()
    }
    per_image = collections.Counter(b["ImageID"] for b in boxes)
    assert {i: len(r["boxes"]) for i, r in images.items() if r["boxes"]} == per_image
    assert sum(1 for r in images.values() if r["boxes"] == []) == len(images) - len(
        per_image
    )
    # One box of each form, field by field.
    for n in (0, half):
        source = boxes[n]
        nested = images[source["ImageID"]]["boxes"]
        match = [
            b
            for b in nested
            if b["label"] == source["LabelName"]
            and b["x_min"] == pytest.approx(float(source["XMin"]))
            and b["y_max"] == pytest.approx(float(source["YMax"]))
        ]
        assert len(match) >= 1
        box = match[0]
        assert box["source"] == source["Source"] and box["display_name"]
        assert box["x_min_px"] is None  # not fetched: no pixels yet
        if n < half:
            assert box["is_occluded"] is None and box["is_group_of"] is None
        else:
            assert box["is_occluded"] is None  # flag -1: not annotated
            assert box["is_group_of"] is True and box["is_truncated"] is False
            assert box["is_inside"] is None  # -1: not annotated
    # Sorted within an image: label, source, then position.
    for row in images.values():
        keys = [
            (b["label"], b["source"], b["y_min"], b["x_min"])
            for b in row["boxes"] or []
        ]
        assert keys == sorted(keys)


def test_bad_boxes_go_to_errors_and_every_row_is_counted(box_run):
    out, boxes, half = box_run
    errors = pq.read_table(out / "tables" / "errors").to_pylist()
    box_errors = [e for e in errors if e["file"].endswith("boxes-13.csv")]
    assert sorted(e["code"] for e in box_errors) == [
        "bad_coordinate",
        "bad_flag",
        "box_inverted",
        "box_outside_image",
    ]
    outside = next(e for e in box_errors if e["code"] == "box_outside_image")
    assert "1.2" in outside["reason"] and outside["line"] == len(boxes) - half + 2
    manifest = json.loads((out / "manifest.json").read_text())
    inputs = {i["path"].rsplit("/", 1)[-1]: i for i in manifest["inputs"]}
    assert inputs["boxes-8.csv"]["release"] == "boxes-8"
    assert inputs["boxes-13.csv"]["release"] == "boxes-13"
    assert inputs["boxes-8.csv"]["rows_kept"] == half
    assert inputs["boxes-13.csv"]["rows_read"] == len(boxes) - half + 4
    assert inputs["boxes-13.csv"]["rows_rejected"] == 4
    hierarchy = inputs["bbox_labels_600_hierarchy.json"]
    assert hierarchy["kind"] == "hierarchy" and len(hierarchy["md5"]) == 32
    assert hierarchy["labels"] == 601


def test_box_statistics_join_the_label_statistics(box_run):
    out, boxes, _ = box_run
    stats = {
        r["label"]: r for r in pq.read_table(out / "tables" / "label_stats").to_pylist()
    }
    per_label = collections.Counter(b["LabelName"] for b in boxes)
    images_per_label = collections.Counter(
        {
            label: len({b["ImageID"] for b in boxes if b["LabelName"] == label})
            for label in per_label
        }
    )
    with_boxes = {k: r["boxes"] for k, r in stats.items() if r["boxes"]}
    assert with_boxes == dict(per_label)
    assert {k: r["images_with_boxes"] for k, r in stats.items() if r["boxes"]} == dict(
        images_per_label
    )
    assert all(r["boxes"] == 0 for k, r in stats.items() if k not in per_label)


def test_expanded_labels_match_an_independent_walk(box_run):
    out, _, _ = box_run
    up, _, _ = bbox_edges()
    with (V3 / "annotations-human.csv").open() as f:
        rows = [
            (r["ImageID"], r["Source"], r["LabelName"], float(r["Confidence"]))
            for r in csv.DictReader(f)
        ]
    explicit = {(i, s, label) for i, s, label, _ in rows}
    expected = {
        (i, s, a)
        for i, s, label, c in rows
        if c > 0 and label in up
        for a in transitive(up, label)
        if (i, s, a) not in explicit
    }
    labels = pq.read_table(out / "tables" / "labels").to_pylist()
    inferred = {
        (r["ImageID"], r["Source"], r["LabelName"]): r
        for r in labels
        if r["InferredFrom"]
    }
    assert set(inferred) == expected and expected
    for (image, source, ancestor), row in inferred.items():
        assert ancestor in transitive(up, row["InferredFrom"])
        assert (image, source, row["InferredFrom"]) in explicit
        assert row["Subset"] == "train" and row["Confidence"] > 0
    assert len(labels) == len(rows) + len(expected)
    stats = pq.read_table(out / "tables" / "label_stats")
    assert sum(stats["inferred_labels"].to_pylist()) == len(expected)
    # The nested labels carry the same rows.
    images = pq.read_table(out / "tables" / "images", columns=["ImageID", "labels"])
    nested = {
        (row["ImageID"], item["source"], item["label"])
        for row in images.to_pylist()
        for item in row["labels"]
        if item["inferred_from"]
    }
    assert nested == expected


def _pil_upright_box(size, box, rotation) -> tuple[int, int, int, int]:
    """Draws the box (fractions of the stored image) in red, rotates the image
    counterclockwise with Pillow, returns where the red is: (x0, x1, y0, y1)."""
    w, h = size
    image = Image.new("RGB", size, "white")
    x0, x1, y0, y1 = box[0] * w, box[1] * w, box[2] * h, box[3] * h
    ImageDraw.Draw(image).rectangle([x0, y0, x1 - 1, y1 - 1], fill="red")
    turned = np.asarray(image.rotate(rotation, expand=True))
    red = np.argwhere((turned[..., 0] > 200) & (turned[..., 1] < 60))
    (ry0, rx0), (ry1, rx1) = red.min(axis=0), red.max(axis=0)
    return rx0, rx1 + 1, ry0, ry1 + 1


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_pixel_boxes_agree_with_pillow_rotating_the_image(rotation):
    size = (64, 40)
    boxes = [(0.25, 0.5, 0.1, 0.6), (0.0, 1.0, 0.0, 0.25), (0.75, 1.0, 0.5, 1.0)]
    for box in boxes:
        got = upright_boxes(
            *(np.array([v]) for v in box),
            np.array([size[0]]),
            np.array([size[1]]),
            np.array([rotation]),
        )
        assert tuple(float(v[0]) for v in got) == pytest.approx(
            _pil_upright_box(size, box, rotation)
        )


def _drawn_jpeg(size, box) -> bytes:
    image = Image.new("RGB", size, "white")
    w, h = size
    ImageDraw.Draw(image).rectangle(
        [box[0] * w, box[2] * h, box[1] * w - 1, box[3] * h - 1], fill="red"
    )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def test_snapshot_converts_boxes_to_pixels_with_rotation(fault_server, tmp_path):
    """V4-style images with Rotation, a 13-column box file, a real fetch: the
    pixel boxes mark the drawn box in the upright (rotated) image."""
    box = (0.25, 0.5, 0.1, 0.6)
    rows, box_rows = [], []
    for n, rotation in enumerate(["0", "90", "180", "270", ""]):
        image_id = f"{0xB0 + n:016x}"
        data = _drawn_jpeg((64 + 8 * n, 40), box)
        name = f"boxes-{image_id}.jpg"
        fault_server.add(name, data)
        rows.append(
            [
                image_id,
                "validation",
                fault_server.url(f"/img/{name}"),
                "",
                "",
                "",
                "a",
                "t",
            ]
            + [len(data), md5_b64(data), "", rotation]
        )
        box_rows.append([image_id, "xclick", "/m/cat", "1", *map(str, box), *"01000"])
    gone = f"{0xBF:016x}"  # never served: 404, so its boxes get no pixels
    rows.append([gone, "validation", fault_server.url("/img/nothing.jpg"), "", "", ""])
    rows[-1] += ["a", "t", 10, md5_b64(b"x" * 10), "", "90"]
    box_rows.append([gone, "xclick", "/m/cat", "1", *map(str, box), *"01000"])
    _write_csv(tmp_path / "images.csv", V4_IMAGES_HEADER.split(","), rows)
    _write_csv(
        tmp_path / "labels.csv",
        LABELS_HEADER.split(","),
        [[r[0], "verification", "/m/cat", "1"] for r in rows],
    )
    _write_csv(
        tmp_path / "boxes.csv",
        BOXES_HEADER.split(",") + list(FLAGS),
        box_rows,
    )
    root = tmp_path / "snapshots"
    code = run_cli(
        "snapshot",
        "--images",
        tmp_path / "images.csv",
        "--labels",
        tmp_path / "labels.csv",
        "--boxes",
        tmp_path / "boxes.csv",
        "--output",
        root,
        "--snapshot-id",
        "s1",
        "--allow-private-hosts",
        "--retries",
        "0",
        "--direct_running_mode",
        "in_memory",
    )
    assert code == 0
    snap = root / "s1"
    images = {
        r["ImageID"]: r for r in pq.read_table(snap / "tables" / "images").to_pylist()
    }
    members = {}
    for path in shard_paths(snap):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                members[member.name] = tar.extractfile(member).read()
    checked = 0
    for image_id, row in images.items():
        (got,) = row["boxes"]
        if image_id == gone:
            assert row["status"] == "gone" and row["upright_width"] is None
            assert got["x_min_px"] is None and got["x_min"] == 0.25
            continue
        assert row["status"] == "ok"
        decoded = Image.open(io.BytesIO(members[f"{image_id}.jpg"]))
        rotation = row["Rotation"] or 0
        upright = decoded.rotate(rotation, expand=True)
        assert (row["upright_width"], row["upright_height"]) == upright.size
        pixels = np.asarray(upright.convert("RGB")).astype(int)
        red = np.argwhere((pixels[..., 0] > 180) & (pixels[..., 1] < 90))
        (y0, x0), (y1, x1) = red.min(axis=0), red.max(axis=0)
        px = (got["x_min_px"], got["x_max_px"], got["y_min_px"], got["y_max_px"])
        assert px == pytest.approx((x0, x1 + 1, y0, y1 + 1), abs=1.01)
        assert got["is_truncated"] is True and got["is_occluded"] is False
        checked += 1
    assert checked == 5
    stats = pq.read_table(snap / "tables" / "label_stats").to_pylist()
    assert [(r["label"], r["boxes"], r["images_with_boxes"]) for r in stats] == [
        ("/m/cat", 6, 6)
    ]
