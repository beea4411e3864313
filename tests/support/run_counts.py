"""A small real release and the file counts its run emits, for the tests of
the manifest and of what it reconciles."""

from __future__ import annotations

import csv
from pathlib import Path

from oibeam.schemas.elements import FileCount
from oibeam.transforms.read.csv_inputs import InputPlan, plan_inputs

from support.headers import LABELS_HEADER, V1_IMAGES_HEADER

IMAGE_COLUMNS = V1_IMAGES_HEADER.split(",")
LABEL_ROWS = 300


def write_plan(tmp_path: Path) -> InputPlan:
    """A real InputPlan: images.csv (3 rows, read whole), labels.csv (split
    into byte ranges) and a classes file."""
    release = tmp_path / "release"
    release.mkdir()
    with (release / "images.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(IMAGE_COLUMNS)
        for i in range(3):
            writer.writerow([f"{i:016x}", "train", "http://x/a.jpg"] + [""] * 7)
    with (release / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LABELS_HEADER.split(","))
        for i in range(LABEL_ROWS):
            writer.writerow([f"{i:016x}", "machine", "/m/cat", "0.9"])
    (release / "dict.csv").write_text('"/m/cat","Cat"\n"/m/dog","Dog"\n')
    made = plan_inputs(
        [str(release / "images.csv")],
        [str(release / "labels.csv")],
        [str(release / "dict.csv")],
        split_bytes=4096,
    )
    assert [f.kind for f in made.files] == ["images", "labels", "classes"]
    assert len(made.ranges_of("labels")) > 1, "the labels file must be split"
    return made


def file_counts(**changes: int) -> list[FileCount]:
    """Counts of a run that reconciles, as the readers emit them (several
    records per file); `changes` adds to a counter, e.g. labels_rows=-1."""
    counts = [
        FileCount(0, "read", 3),
        FileCount(0, "rows", 2),
        FileCount(0, "errors", 1),
        FileCount(0, "rejected", 1, "duplicate_image"),
        FileCount(1, "read", 200),
        FileCount(1, "read", LABEL_ROWS - 200),
        FileCount(1, "lines", 150),
        FileCount(1, "lines", LABEL_ROWS + 1 - 150),  # the header is a line
        FileCount(1, "rows", LABEL_ROWS - 5),
        FileCount(1, "errors", 3),
        FileCount(1, "errors", 2),
        FileCount(1, "rejected", 4, "unknown_image"),
        FileCount(1, "rejected", 1, "bad_confidence"),
        FileCount(2, "read", 2),
        FileCount(2, "rows", 2),
    ]
    names = {"images": 0, "labels": 1, "classes": 2}
    for key, n in changes.items():
        kind, counter = key.split("_", 1)
        counts.append(FileCount(names[kind], counter, n))
    return counts
