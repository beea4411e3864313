"""`oibeam export --format files` over a real fetch run of real photos: files
read back with Pillow come out upright at the expected size, symlinks resolve,
COCO and JSONL point at files that exist, reruns are no-ops, an interrupted
export is completed, and nothing is written outside the output directory.

The release (served by the FaultServer from tests/fixtures/images) has the
EXIF-rotated photo twice, once without a Rotation (EXIF turns it) and once
with Rotation 270 (only the Rotation turns it), its upright twin, a small
JPEG with Rotation 90, an RGBA PNG, and a truncated JPEG that fetches ok (its
MD5 is its own) but cannot be decoded.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from oibeam.schemas.boxes import BOX_FLAGS, BOX_REQUIRED
from oibeam.tools.export.files import FilesExport, FilesOptions, label_folder
from oibeam.tools.export.files_image import Resize, boxes_in_file, turn
from oibeam.transforms.fetch.pixel_boxes import upright_boxes

from support.headers import LABELS_HEADER, V1_IMAGES_HEADER
from support.paths import IMAGES
from support.runs import run_cli
from support.snapshot_release import jpeg

EXIF6 = "exif_orientation_recurser_Landscape_6.jpg"  # stored 1200x1800, EXIF 6
UPRIGHT = "exif_orientation_recurser_Landscape_1.jpg"  # the same, 1800x1200
RGBA = "pillow_tests_pil123rgba.png"  # 162x150
TRUNCATED = "pillow_tests_truncated_jpeg.jpg"
SMALL = "files-small.jpg"  # 40x30, served by the test
# A label that names a path: `tables` refuses it (bad_label), so the test
# writes it into a copy of the run's images table.
HOSTILE = "../../../escape/x"
CAT, DOG = "/m/cat", "/m/dog"
# ImageID: (file, Rotation ("" = none), Subset, labels)
ROWS = {
    "00000000000000a1": (EXIF6, "", "train", [CAT, DOG]),
    "00000000000000b2": (EXIF6, "270", "train", [CAT]),
    "00000000000000c3": (UPRIGHT, "0", "train", [DOG]),
    "00000000000000d4": (SMALL, "90", "validation", [CAT]),
    "00000000000000e5": (RGBA, "0", "validation", []),
    "00000000000000f6": (TRUNCATED, "90", "validation", [CAT]),
}
EXIF_ID, ROTATED_ID, PLAIN_ID, SMALL_ID, PNG_ID, BROKEN_ID = ROWS
# A box on the EXIF photo and on the small one: fractions of the stored image.
BOXES = {EXIF_ID: (0.1, 0.3, 0.2, 0.7), SMALL_ID: (0.25, 1.0, 0.1, 0.6)}


def _bytes(name: str) -> bytes:
    return jpeg(7) if name == SMALL else (IMAGES / name).read_bytes()


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


@pytest.fixture(scope="module")
def run(fault_server, tmp_path_factory) -> Path:
    """A fetch run of ROWS, with boxes (read only: export with --output)."""
    base = tmp_path_factory.mktemp("files")
    fault_server.add(SMALL, jpeg(7))
    with (base / "images.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*V1_IMAGES_HEADER.split(","), "Rotation"])
        for image_id, (name, rotation, subset, _) in ROWS.items():
            data = _bytes(name)
            url = fault_server.url(f"/img/{name}") + f"?t=files-{image_id}"
            writer.writerow(
                [image_id, subset, url, "https://flickr.com/p"]
                + ["https://creativecommons.org/licenses/by/2.0/", "https://f/u"]
                + ["Au, thor", f"T {image_id}", len(data), _md5(data), rotation]
            )
    with (base / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LABELS_HEADER.split(","))
        for image_id, (*_, labels) in ROWS.items():
            writer.writerows((image_id, "machine", m, 0.9) for m in labels)
    (base / "dict.csv").write_text('"/m/cat","Cat"\n"/m/dog","Dog"\n')
    with (base / "boxes.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*BOX_REQUIRED, *BOX_FLAGS])
        for image_id, box in BOXES.items():
            writer.writerow([image_id, "xclick", CAT, 1, *box, 0, 0, 0, 0, 0])
    out = base / "run"
    code = run_cli(
        "fetch",
        *("--images", base / "images.csv", "--labels", base / "labels.csv"),
        *("--classes", base / "dict.csv", "--boxes", base / "boxes.csv"),
        *("--allow-private-hosts", "--timeout", "5", "--retries", "1"),
        *("--shard-bytes", "400000", "--direct_running_mode", "in_memory"),
        *("--min-train-images", "1", "--min-validation-images", "0"),
        "--output",
        out,
    )
    assert code == 0
    statuses = pq.read_table(out / "tables" / "images", columns=["status"])
    assert statuses["status"].to_pylist() == ["ok"] * len(ROWS)
    return out


def export(run: Path, out: Path, *flags) -> int:
    return run_cli("export", run, "--output", out, *flags)


def tree(directory: Path) -> dict[str, object]:
    """Every entry below `directory`: a file's bytes, a symlink's target."""
    found = {}
    for path in sorted(directory.rglob("*")):
        name = str(path.relative_to(directory))
        if path.is_symlink():
            found[name] = ("link", os.readlink(path))
        elif path.is_file():
            found[name] = path.read_bytes()
    return found


def _picture(data: bytes, size=(90, 60)) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB").resize(size), dtype=np.float64)


def _upright_reference(size) -> np.ndarray:
    return _picture((IMAGES / UPRIGHT).read_bytes(), size)


def test_flat_files_are_upright_and_every_image_is_accounted_for(run, tmp_path, capsys):
    assert export(run, tmp_path, "--format", "files") == 0
    printed = capsys.readouterr().out
    assert "files: 5 written, 0 already there, 1 failed (decode_error 1)" in printed
    files = tmp_path / "files"
    names = sorted(str(p.relative_to(files)) for p in files.rglob("*"))
    assert names == [
        "failed.tsv",
        "settings.json",
        "train",
        f"train/{EXIF_ID}.jpg",
        f"train/{ROTATED_ID}.jpg",
        f"train/{PLAIN_ID}.jpg",
        "validation",
        f"validation/{SMALL_ID}.jpg",
        f"validation/{PNG_ID}.png",
    ]
    # Needing no turn: the fetched bytes, unchanged.
    assert (files / "train" / f"{PLAIN_ID}.jpg").read_bytes() == _bytes(UPRIGHT)
    assert (files / "validation" / f"{PNG_ID}.png").read_bytes() == _bytes(RGBA)
    # EXIF turns the first, Rotation 270 alone the second: both upright,
    # 1800x1200, the picture of their upright twin (re-encoded, so close).
    reference = _upright_reference((90, 60))
    for image_id in (EXIF_ID, ROTATED_ID):
        data = (files / "train" / f"{image_id}.jpg").read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            assert (image.format, image.size) == ("JPEG", (1800, 1200))
            assert image.getexif().get(0x0112) is None  # no orientation left
        assert np.abs(_picture(data) - reference).mean() < 4
    # Rotation 90: 40x30 turned counterclockwise.
    data = (files / "validation" / f"{SMALL_ID}.jpg").read_bytes()
    turned = Image.open(io.BytesIO(jpeg(7))).transpose(Image.Transpose.ROTATE_90)
    assert Image.open(io.BytesIO(data)).size == (30, 40)
    assert (
        np.abs(_picture(data, (30, 40)) - _picture(_png(turned), (30, 40))).max() < 40
    )
    # The truncated JPEG must be turned, cannot be decoded: failed, with why.
    failed = (files / "failed.tsv").read_text().splitlines()
    assert failed[0] == "ImageID\treason"
    assert len(failed) == 2 and failed[1].startswith(f"{BROKEN_ID}\tdecode_error: ")
    assert "truncated" in failed[1]


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_resized_files_and_coco_and_jsonl_that_point_at_them(run, tmp_path):
    flags = ["--format", "files", "coco", "jsonl", "--image-paths", "files"]
    assert export(run, tmp_path, *flags, "--resize-longest", "600") == 0
    sizes = {}
    for path in (tmp_path / "files").rglob("*.*"):
        if path.suffix in (".jpg", ".png"):
            with Image.open(path) as image:
                sizes[path.stem] = (image.format, image.size)
    assert sizes == {
        EXIF_ID: ("JPEG", (600, 400)),
        ROTATED_ID: ("JPEG", (600, 400)),
        PLAIN_ID: ("JPEG", (600, 400)),
        SMALL_ID: ("JPEG", (30, 40)),
        PNG_ID: ("PNG", (162, 150)),  # smaller than 600: its own bytes
    }
    data = (tmp_path / "files" / "train" / f"{EXIF_ID}.jpg").read_bytes()
    assert np.abs(_picture(data) - _upright_reference((90, 60))).mean() < 4

    coco = {}
    for subset in ("train", "validation"):
        coco[subset] = json.loads((tmp_path / "coco" / f"{subset}.json").read_text())
    images = {i["id"]: i for c in coco.values() for i in c["images"]}
    by_id = {i["open_images_id"]: i for i in images.values()}
    assert sorted(by_id) == sorted(set(ROWS) - {BROKEN_ID})  # no file, no entry
    for image in images.values():
        path = tmp_path / image["file_name"]
        with Image.open(path) as opened:
            assert opened.size == (image["width"], image["height"])
        assert image["rotation"] == 0  # the file is upright already
    boxes = {
        images[a["image_id"]]["open_images_id"]: a["bbox"]
        for c in coco.values()
        for a in c["annotations"]
    }
    # EXIF 6: the stored image turned clockwise, x <- 1 - y, y <- x.
    x0, x1, y0, y1 = BOXES[EXIF_ID]
    expected = [(1 - y1) * 600, x0 * 400, (y1 - y0) * 600, (x1 - x0) * 400]
    assert boxes[EXIF_ID] == pytest.approx(expected)
    # Rotation 90, not resized: the run's own pixel box of the upright image.
    row = pq.read_table(run / "tables" / "images").to_pylist()
    box = next(r for r in row if r["ImageID"] == SMALL_ID)["boxes"][0]
    assert boxes[SMALL_ID] == pytest.approx(
        [
            box["x_min_px"],
            box["y_min_px"],
            box["x_max_px"] - box["x_min_px"],
            box["y_max_px"] - box["y_min_px"],
        ]
    )

    lines = (tmp_path / "jsonl" / "images.jsonl").read_text().splitlines()
    objects = {o["ImageID"]: o for o in map(json.loads, lines)}
    assert sorted(objects) == sorted(ROWS)  # every ok image, a file or not
    assert "path" not in objects[BROKEN_ID] and "file_width" not in objects[BROKEN_ID]
    for image_id, image in by_id.items():
        o = objects[image_id]
        assert o["path"] == image["file_name"]
        assert (o["file_width"], o["file_height"]) == (image["width"], image["height"])
        assert o["member"].startswith(image_id)  # the source is still named
    assert objects[EXIF_ID]["boxes"][0]["x_min_px"] == pytest.approx(expected[0])


def _with_label(run: Path, copy: Path, image_id: str, label: str) -> Path:
    """A copy of `run` whose images table gives `image_id` one more label."""
    shutil.copytree(run, copy)
    for part in (copy / "tables" / "images").glob("*.parquet"):
        data = pq.read_table(part)
        rows = data["labels"].to_pylist()
        for i, row_id in enumerate(data["ImageID"].to_pylist()):
            if row_id == image_id:
                extra = dict(rows[i][0], label=label, display_name=None)
                rows[i] = [*rows[i], extra]
        at = data.schema.get_field_index("labels")
        field = data.schema.field(at)
        data = data.set_column(at, field, pa.array(rows, field.type))
        pq.write_table(data, part)
    return copy


def test_label_folders_link_to_the_flat_file_and_stay_inside(run, tmp_path, capsys):
    run = _with_label(run, tmp_path / "run", PLAIN_ID, HOSTILE)
    tmp_path = tmp_path / "out"
    assert export(run, tmp_path, "--format", "files", "--layout", "labels") == 0
    assert "label links 6 written" in capsys.readouterr().out
    files = tmp_path / "files"
    links = sorted(p for p in files.rglob("*") if p.is_symlink())
    hostile = label_folder(HOSTILE)
    assert "/" not in hostile and hostile not in (".", "..")
    assert sorted(str(p.relative_to(files)) for p in links) == sorted(
        [
            f"train/m_cat/{EXIF_ID}.jpg",
            f"train/m_dog/{EXIF_ID}.jpg",
            f"train/m_cat/{ROTATED_ID}.jpg",
            f"train/m_dog/{PLAIN_ID}.jpg",
            f"train/{hostile}/{PLAIN_ID}.jpg",
            f"validation/m_cat/{SMALL_ID}.jpg",
        ]
    )
    root = os.path.realpath(tmp_path)
    for link in links:
        assert os.readlink(link) == f"../{link.name}"  # relative: the tree moves
        target = os.path.realpath(link)
        assert target.startswith(root + os.sep)
        assert link.read_bytes() == (link.parent.parent / link.name).read_bytes()
    assert not (tmp_path.parent / "escape").exists()
    labels = (files / "labels.tsv").read_text().splitlines()
    assert labels == [
        f"{hostile}\t{HOSTILE}\t",
        f"m_cat\t{CAT}\tCat",
        f"m_dog\t{DOG}\tDog",
    ]
    # The PNG has no positive label: a flat file, no label folder.
    assert (files / "validation" / f"{PNG_ID}.png").is_file()

    # Copies instead: real files in each label folder, none for the PNG.
    other = tmp_path / "copies"
    flags = ["--format", "files", "--layout", "labels", "--label-files", "copy"]
    flags += ["--format", "jsonl", "--image-paths", "files"]
    assert export(run, other, *flags) == 0
    assert "1 with no positive label (no file)" in capsys.readouterr().out
    copied = tree(other / "files")
    for link in links:
        assert copied[str(link.relative_to(files))] == link.read_bytes()
    assert not any(isinstance(v, tuple) for v in copied.values())
    assert not (other / "files" / "validation" / f"{PNG_ID}.png").exists()
    # JSONL names the first label folder's copy; the PNG has none.
    lines = (other / "jsonl" / "images.jsonl").read_text().splitlines()
    paths = {o["ImageID"]: o.get("path") for o in map(json.loads, lines)}
    assert paths[EXIF_ID] == f"files/train/m_cat/{EXIF_ID}.jpg"
    assert paths[PLAIN_ID] == f"files/train/{hostile}/{PLAIN_ID}.jpg"
    assert paths[PNG_ID] is None and paths[BROKEN_ID] is None
    for path in filter(None, paths.values()):
        assert (other / path).is_file()

    # gs:// holds no symlinks: refused before anything is written.
    code = export(
        run, "gs://no-such-bucket/out", "--format", "files", "--layout", "labels"
    )
    assert code == 2
    assert "--label-files copy" in capsys.readouterr().err


def test_reruns_keep_what_is_there_and_complete_an_interrupted_export(
    run, tmp_path, capsys
):
    out = tmp_path / "out"
    flags = ["--format", "files", "--layout", "labels", "--resize-longest", "900"]
    assert export(run, out, *flags) == 0
    first = tree(out)
    capsys.readouterr()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "files").rglob("*.jpg")}

    assert export(run, out, *flags) == 0
    assert "files: 0 written, 5 already there" in capsys.readouterr().out
    assert tree(out) == first
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # not rewritten

    # Killed mid-way: one file never written, one half written under a
    # temporary name, a label link missing; a stale file of an older export.
    files = out / "files"
    (files / "train" / f"{EXIF_ID}.jpg").unlink()
    (files / "train" / f".tmp-0123-{EXIF_ID}.jpg").write_bytes(b"half")
    (files / "train" / "m_dog" / f"{PLAIN_ID}.jpg").unlink()
    (files / "test").mkdir()
    (files / "test" / "old.jpg").write_bytes(b"old")
    assert export(run, out, *flags) == 0
    printed = capsys.readouterr().out
    assert "files: 1 written, 4 already there" in printed
    assert "label links 1 written, 4 already there" in printed
    assert "removed 2 stale file(s)" in printed
    assert tree(out) == first

    # The same elsewhere: the same bytes.
    assert export(run, tmp_path / "elsewhere", *flags) == 0
    assert tree(tmp_path / "elsewhere") == first

    # Other settings: every file made again, none of the old ones kept.
    capsys.readouterr()
    assert export(run, out, "--format", "files", "--resize-longest", "300") == 0
    assert "files: 5 written, 0 already there" in capsys.readouterr().out
    with Image.open(files / "train" / f"{PLAIN_ID}.jpg") as image:
        assert image.size == (300, 200)
    assert not any(p.is_symlink() for p in files.rglob("*"))
    assert not (files / "train" / "m_cat").exists()  # emptied folders go too


def test_files_on_gcs_are_the_local_bytes(run, gcs_emulator, tmp_path, capsys):
    """gs:// out: copies (no symlinks there), the same objects as a local
    export's files, a rerun keeps them, a stale object is swept."""
    bucket = gcs_emulator.create_bucket("oibeam-files")
    bucket.blob("out/files/test/old.jpg").upload_from_string(b"old")
    flags = ["--format", "files", "--layout", "labels", "--label-files", "copy"]
    flags += ["--resize-longest", "500"]
    out = f"gs://{bucket.name}/out"
    assert export(run, out, *flags) == 0
    assert export(run, tmp_path, *flags) == 0
    capsys.readouterr()
    assert export(run, out, *flags) == 0
    assert "files: 0 written, 4 already there" in capsys.readouterr().out
    stored = {
        b.name.removeprefix("out/"): b.download_as_bytes()
        for b in bucket.list_blobs(prefix="out/")
    }
    assert stored == tree(tmp_path)


def test_paths_to_files_need_the_files_in_the_same_command(run, tmp_path, capsys):
    assert export(run, tmp_path, "--format", "coco", "--image-paths", "files") == 2
    assert "needs --format files" in capsys.readouterr().err
    assert not tmp_path.joinpath("coco").exists()


def test_an_output_that_would_hold_the_run_is_refused(run, tmp_path, capsys):
    shutil.copytree(run, tmp_path / "files" / "run")
    before = tree(tmp_path / "files" / "run")
    assert export(tmp_path / "files" / "run", tmp_path, "--format", "files") == 2
    assert "would hold" in capsys.readouterr().err
    assert tree(tmp_path / "files" / "run") == before


def test_an_image_id_that_would_leave_the_folder_is_refused(run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    evil = "../../../../evil"
    for table in ("tables/images", "shards/index"):
        for part in (copy / table).glob("*.parquet"):
            data = pq.read_table(part)
            ids = [evil if i == PLAIN_ID else i for i in data["ImageID"].to_pylist()]
            at = data.schema.get_field_index("ImageID")
            field = data.schema.field(at)
            data = data.set_column(at, field, pa.array(ids, field.type))
            pq.write_table(data, part)
    out = tmp_path / "deep" / "a" / "b" / "out"
    assert export(copy, out, "--format", "files") == 2
    assert "is not 16 hex digits" in capsys.readouterr().err
    assert (
        not (tmp_path / "evil").exists() and not (tmp_path / "deep" / "evil").exists()
    )
    assert not list(tmp_path.rglob("evil*"))


def test_the_writer_itself_refuses_an_image_id_that_names_a_path(run, tmp_path):
    """Behind the reader's check, FilesExport checks each ImageID again."""
    exporter = FilesExport(FilesOptions(), str(run), "digest")
    exporter.start(str(tmp_path / "out" / "files"))
    row = {"shard": "images-00000-of-00001.tar", "offset": 0, "size": 1}
    row |= {"Subset": "train", "width": 4, "height": 3}
    for image_id in ("../../../../evil", "0123456789abcdef/../../x"):
        exporter.write(
            pa.table(
                {k: [v] for k, v in row.items()}
                | {"ImageID": [image_id], "member": [f"{image_id}.jpg"]}
            )
        )
        assert exporter.placed.paths == [None]
    exporter.finish()
    failed = (tmp_path / "out" / "files" / "failed.tsv").read_text().splitlines()
    assert [line.split("\t")[1] for line in failed[1:]] == [
        "unsafe ImageID: not 16 hex digits"
    ] * 2
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "failed.tsv",
        "settings.json",
    ]


# --- pure functions -------------------------------------------------------


def test_label_folders_are_one_safe_segment_each():
    labels = ["/m/0abc", "/m/a_b", "/g/11b", "..", ".", "", "a/b", "a%2Fb", HOSTILE]
    labels += ["/" * 300, "/" * 301, "é" * 200]  # too long to write as they are
    folders = [label_folder(label) for label in labels]
    assert folders[:3] == ["m_0abc", "m_a_b", "g_11b"]
    assert len(set(folders)) == len(folders)
    for folder in folders:
        assert folder and "/" not in folder and folder not in (".", "..")
        assert len(folder.encode()) <= 200


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_boxes_follow_the_rotation_as_the_run_computes_them(rotation):
    box = (np.array([0.1]), np.array([0.4]), np.array([0.2]), np.array([0.9]))
    width, height = 40, 30
    upright = (height, width) if rotation in (90, 270) else (width, height)
    run = upright_boxes(
        *box, np.array([width]), np.array([height]), np.array([rotation])
    )
    # an original's EXIF orientation restates its Rotation: the same frame
    restated = {0: 1, 90: 8, 180: 3, 270: 6}[rotation]
    for exif in (None, restated):
        ours = boxes_in_file(*box, turn(rotation, exif), *upright)
        assert np.allclose(ours, run), exif


def test_the_bytes_own_exif_orientation_turns_them_before_a_rotation():
    assert turn(0, 6) == turn(None, 6) == Image.Transpose.ROTATE_270
    assert turn(90, 1) == turn(90, None) == Image.Transpose.ROTATE_90
    assert turn(0, None) is None and turn(None, 1) is None


def test_resize_keeps_aspect_and_never_enlarges():
    assert Resize(600).size(1800, 1200) == (600, 400)
    assert Resize(600).size(300, 200) == (300, 200)
    assert Resize(100, "shortest").size(1800, 1200) == (150, 100)
    assert Resize().size(7, 9) == (7, 9)
    with pytest.raises(ValueError):
        Resize(600, quality=101)
