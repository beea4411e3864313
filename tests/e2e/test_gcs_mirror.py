"""Fetching from a gs:// mirror with --url-template, against a GCS emulator."""

import base64
import csv
import hashlib

import pytest

from oibeam.transforms.fetch.fetch_config import FetchPolicy
from oibeam.transforms.fetch.gcs_fetch import GcsFetcher

from support.headers import V1_IMAGES_HEADER
from support.paths import IMAGES
from support.runs import TablesRun, run_cli

PHOTO = "openimages_v1_davidgengenbach_0143a0cf29afbf75.jpg"


def test_gcs_fetcher_outcomes(gcs_emulator):
    data = (IMAGES / PHOTO).read_bytes()
    gcs_emulator.bucket("mirror").blob("train/a.jpg").upload_from_string(data)
    fetcher = GcsFetcher(FetchPolicy(timeout=5))
    got = fetcher.fetch("gs://mirror/train/a.jpg")
    assert got.ok and got.data == data and got.md5 == hashlib.md5(data).digest()
    assert fetcher.fetch("gs://mirror/train/missing.jpg").status == "gone"
    assert fetcher.fetch("gs://mirror").status == "refused"
    capped = GcsFetcher(FetchPolicy(timeout=5, max_bytes=100))
    assert capped.fetch("gs://mirror/train/a.jpg").status == "too_large"


def test_fetch_from_a_mirror_bucket_with_a_url_template(gcs_emulator, tmp_path):
    bucket = gcs_emulator.bucket("mirror")
    names = ["pillow_tests_hopper.png", PHOTO, "pillow_tests_hopper_gray.jpg"]
    rows = []
    for i, name in enumerate(names):
        image_id = f"{0xABC0 + i:016x}"
        data = (IMAGES / name).read_bytes()
        if i < 2:  # the third image is missing from the mirror
            bucket.blob(f"train/{image_id}.jpg").upload_from_string(data)
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        rows.append(
            [
                image_id,
                "train",
                "https://unused.example/x.jpg",
                "l",
                "c",
                "p",
                "a",
                "t",
                len(data),
                md5,
            ]
        )
    with (tmp_path / "images.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(V1_IMAGES_HEADER.split(","))
        w.writerows(rows)
    out = tmp_path / "out"
    code = run_cli(
        "fetch",
        "--images",
        tmp_path / "images.csv",
        "--url-template",
        "gs://mirror/{Subset}/{ImageID}.jpg",
        "--output",
        out,
    )
    assert code == 0
    statuses = {r["ImageID"]: r["status"] for r in TablesRun(out, code).rows("images")}
    assert list(statuses.values()).count("ok") == 2
    assert statuses[rows[2][0]] == "gone"


def test_an_unknown_template_column_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "images.csv").write_text(
        "ImageID,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,"
        "OriginalSize,OriginalMD5\n"
    )
    (tmp_path / "train").mkdir()
    (tmp_path / "images.csv").rename(tmp_path / "train" / "images.csv")
    code = run_cli(
        "fetch",
        "--images",
        tmp_path / "train" / "images.csv",
        "--url-template",
        "gs://m/{Bucket}/{ImageID}.jpg",
        "--output",
        tmp_path / "o",
    )
    assert code == 2
    assert "--url-template names unknown column(s) Bucket" in capsys.readouterr().err


@pytest.mark.parametrize(
    "template, said",
    [
        ("http://h/{}", "{} is not a {Column} field"),
        ("http://h/{0}.jpg", "{0} is not a {Column} field"),
        ("http://h/{ImageID.x}", "{ImageID.x} is not a {Column} field"),
        ("http://h/{ImageID[0]}", "{ImageID[0]} is not a {Column} field"),
        ("http://h/{ImageID!r}", "{ImageID!r} is not a {Column} field"),
        ("http://h/{ImageID:>20}", "{ImageID:>20} is not a {Column} field"),
        ("http://h/{ImageID", "expected '}' before end of string"),
    ],
)
def test_a_template_that_is_not_column_fields_is_a_clear_error(
    tmp_path, capsys, template, said
):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "images.csv").write_text(V1_IMAGES_HEADER + "\n")
    code = run_cli(
        "fetch",
        "--images",
        tmp_path / "train" / "images.csv",
        "--url-template",
        template,
        "--output",
        tmp_path / "o",
    )
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert said in err and "Traceback" not in err
