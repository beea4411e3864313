"""A file of the wrong kind, or one that rejects most of its rows, stops the
run with a message that says what the file looks like; nothing is published."""

from __future__ import annotations

import json
import shutil

import pytest

from support.headers import LABELS_HEADER
from support.paths import REAL, V3_CLASSES, V3_HUMAN, V3_IMAGES
from support.runs import run_cli
from support.snapshot_release import FLAGS, Photo, Release

BOXES = REAL / "v3_2017_11" / "train" / "annotations-human-bbox.csv"
HIERARCHY = REAL / "bbox_labels_600_hierarchy.json"


@pytest.mark.parametrize(
    "images, labels, classes, said",
    [
        (V3_IMAGES, BOXES, V3_CLASSES, "it looks like an Open Images boxes file"),
        (V3_IMAGES, V3_IMAGES, V3_CLASSES, "it looks like an Open Images images file"),
        (V3_HUMAN, V3_HUMAN, V3_CLASSES, "it looks like an Open Images labels file"),
        (V3_IMAGES, V3_HUMAN, HIERARCHY, "it is JSON (a label hierarchy?"),
        (
            V3_IMAGES,
            V3_HUMAN,
            V3_IMAGES,
            "--classes, but it looks like an Open Images images",
        ),
    ],
    ids=[
        "boxes-as-labels",
        "images-as-labels",
        "labels-as-images",
        "json-as-classes",
        "images-as-classes",
    ],
)
def test_a_file_of_the_wrong_kind_says_what_it_looks_like(
    tmp_path, capsys, images, labels, classes, said
):
    given = []  # copies: a file may be given only once
    for flag, path in (
        ("--images", images),
        ("--labels", labels),
        ("--classes", classes),
    ):
        copy = tmp_path / f"{flag.strip('-')}-{path.name}"
        shutil.copy(path, copy)
        given += [flag, copy]
    out = tmp_path / "out"
    code = run_cli("tables", *given, "--output", out)
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert said in err and "Traceback" not in err
    assert not out.exists()


def _mostly_bad_labels(path, good: int, bad: int) -> None:
    with open(V3_IMAGES) as f:
        image_ids = [line.split(",", 1)[0] for line in list(f)[1 : good + 1]]
    rows = [f"{image_id},machine,/m/0jbk,0.9" for image_id in image_ids]
    rows += [f"{i:016x},machine,/m/0jbk,not-a-number" for i in range(bad)]
    path.write_text(LABELS_HEADER + "\n" + "\n".join(rows) + "\n")


def test_a_file_that_rejects_most_of_its_rows_stops_before_publishing(tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    _mostly_bad_labels(labels, good=10, bad=30)  # 75% rejected
    out = tmp_path / "out"
    args = ("--images", V3_IMAGES, "--labels", labels, "--output", out)
    code = run_cli("tables", *args)
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert "too many rejected rows, nothing was published" in err
    assert "labels.csv (labels): 30 of 40 rows rejected (75%; bad_confidence 30)" in err
    assert err.count("too many rejected rows") == 1 and "Traceback" not in err
    assert not (out / "manifest.json").exists()
    assert run_cli("tables", *args, "--max-rejected", "0.8", "--overwrite") == 0
    assert (out / "manifest.json").exists()


def test_labels_for_more_images_than_given_are_fine_but_none_is_refused(
    tmp_path, capsys
):
    """A sample of the images with the whole labels file is a normal run;
    a labels file none of whose rows names one of the images is not."""
    sample = tmp_path / "images.csv"
    with open(V3_IMAGES) as f:
        lines = list(f)
    sample.write_text(lines[0] + lines[4])  # an image with 116 of the 1,000 labels
    args = ("--images", sample, "--labels", V3_HUMAN)
    assert run_cli("tables", *args, "--output", tmp_path / "sample") == 0
    manifest = json.loads((tmp_path / "sample" / "manifest.json").read_text())
    assert manifest["rejected_by_code"] == {"unknown_image": 884}
    stranger = tmp_path / "labels.csv"
    stranger.write_text(LABELS_HEADER + "\n0123456789abcdef,machine,/m/0jbk,0.9\n")
    out = tmp_path / "none"
    code = run_cli("tables", "--images", sample, "--labels", stranger, "--output", out)
    err = capsys.readouterr().err
    assert code == 2
    assert "none of its 1 rows names an image in the images files" in err
    assert not (out / "manifest.json").exists()


@pytest.mark.parametrize("command", ["fetch", "snapshot"])
def test_a_refused_input_fetches_no_image(tmp_path, capsys, fault_server, command):
    """The share of rejected rows is checked as soon as the inputs are read:
    a run about to be refused sends no request."""
    release = Release(fault_server, tmp_path / "release", f"refused-{command}")
    for i in range(8):
        release.add(Photo(f"{i + 1:016x}", seed=i))
    flags = release.write()
    labels = release.directory / "labels.csv"
    with labels.open("a") as f:  # 8 good rows, 24 bad ones: 75% rejected
        f.writelines(f"{i + 1:016x},machine,/m/cat,high\n" for i in range(24))
    out = tmp_path / "out"
    code = run_cli(command, *flags, "--output", out, *FLAGS)
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert "labels.csv (labels): 24 of 32 rows rejected (75%; bad_confidence 24)" in err
    assert sum(release.requests_for(p) for p in release.photos) == 0
    assert not list(out.rglob("manifest.json")) and not list(out.rglob("_SUCCESS"))
