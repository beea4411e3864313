"""Row checks: each bad value gets its own code, reason and row; good rows are typed."""

import pyarrow as pa
import pytest

from oibeam.schemas.releases import images_layout
from oibeam.transforms.read.csv_parse import parse_line_block
from oibeam.transforms.read.validate_rows import (
    LABEL_FAST_TYPES,
    check_images,
    check_labels,
)

from support.headers import LABELS_HEADER, V4_IMAGES_HEADER

IMAGE_COLUMNS = V4_IMAGES_HEADER.split(",")
GOOD_IMAGE = {
    "ImageID": "000002b66c9c498e",
    "Subset": "train",
    "OriginalURL": "https://c7.staticflickr.com/6/5499/10245691204_98dce75b5a_o.jpg",
    "OriginalLandingURL": "https://www.flickr.com/photos/43584526@N06/10245691204",
    "License": "https://creativecommons.org/licenses/by/2.0/",
    "AuthorProfileURL": "https://www.flickr.com/people/43584526@N06/",
    "Author": "Mae Catherine Melchor",
    "Title": "#latepost, sa #Coron",
    "OriginalSize": "141489",
    "OriginalMD5": "XKWUMkcNib71Ge6Yq1/0/g==",
    "Thumbnail300KURL": "",
    "Rotation": "",
}


def _images(*changes: dict) -> pa.Table:
    rows = [{**GOOD_IMAGE, **c} for c in changes]
    return pa.table({c: [r[c] for r in rows] for c in IMAGE_COLUMNS})


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"ImageID": "000002b66c9c498"}, "bad_image_id"),
        ({"ImageID": "000002b66c9c498g"}, "bad_image_id"),
        ({"Subset": "training"}, "bad_subset"),
        ({"OriginalURL": "ftp://x/y.jpg"}, "bad_url"),
        ({"OriginalURL": ""}, "bad_url"),
        ({"OriginalSize": "12.5"}, "bad_size"),
        ({"OriginalSize": "-3"}, "bad_size"),
        ({"OriginalSize": "99999999999999999999999"}, "bad_size"),  # > int64
        (
            {"OriginalMD5": "5c9594324b0d89bef519ee9aab5ff4fe"},
            "bad_md5",
        ),  # hex, not base64
        ({"OriginalMD5": "XKWUMkcNib71Ge6Yq1/0/g="}, "bad_md5"),
        ({"OriginalMD5": "XKWUMkcNib71Ge6Yq1/0/h=="}, "bad_md5"),  # 130 bits
        ({"Thumbnail300KURL": "not a url"}, "bad_url"),
        ({"Rotation": "45"}, "bad_rotation"),
        ({key: "" for key in IMAGE_COLUMNS}, "empty_line"),
    ],
)
def test_each_image_problem_has_its_code(change, code):
    layout = images_layout("i.csv", IMAGE_COLUMNS)
    good, problems, kept = check_images(_images({}, change, {}), layout, (), None)
    assert kept.tolist() == [0, 2]
    assert problems.rows.tolist() == [1]
    assert problems.codes.to_pylist() == [code]
    assert good.num_rows == 2


def test_reason_quotes_the_value():
    layout = images_layout("i.csv", IMAGE_COLUMNS)
    _, problems, _ = check_images(_images({"OriginalMD5": "abc"}), layout, (), None)
    assert problems.reasons.to_pylist() == [
        "OriginalMD5 is not the base64 of a 16-byte MD5: 'abc'"
    ]


def test_good_images_are_typed():
    layout = images_layout("i.csv", IMAGE_COLUMNS)
    good, problems, _ = check_images(
        _images({"Rotation": "90.0", "Thumbnail300KURL": "https://a/b_z.jpg"}, {}),
        layout,
        (),
        None,
    )
    assert len(problems.rows) == 0
    assert good.column("key").to_pylist() == [0x000002B66C9C498E] * 2
    assert good.column("OriginalSize").to_pylist() == [141489] * 2
    assert good.column("Rotation").to_pylist() == [90, None]
    assert good.column("Thumbnail300KURL").to_pylist() == ["https://a/b_z.jpg", None]


def test_subset_from_path_when_the_file_has_none():
    columns = [
        c for c in IMAGE_COLUMNS if c not in ("Subset", "Thumbnail300KURL", "Rotation")
    ]
    layout = images_layout("validation/images.csv", columns)
    table = _images({}).select(columns)
    good, _, _ = check_images(table, layout, (), "validation")
    assert good.column("Subset").to_pylist() == ["validation"]
    assert good.column("Rotation").to_pylist() == [None]


LABELS = (
    b"000002b66c9c498e,machine,/m/05_4_,0.7\n"
    b"000002b66c9c498e,verification,/m/014l8n,0\n"
    b"000002b66c9c498e,crowdsource-verification,/m/01kcnl,1\n"
    b"000002b66c9c498e,robot,/m/05_4_,0.7\n"
    b"000002b66c9c498e,machine,m/05_4_,0.7\n"
    b"000002b66c9c498e,machine,/m/05_4_,1.5\n"
    b"000002b66c9c498e,human,/m/05_4_,0.5\n"
    b"000002b66c9c498e,machine,/m/05_4_,\n"
    b"000002b66c9c498x,machine,/m/05_4_,0.7\n"
)


@pytest.mark.parametrize("as_strings", [False, True])
def test_label_checks_on_typed_and_string_columns(as_strings):
    columns = tuple(LABELS_HEADER.split(","))
    types = {} if as_strings else LABEL_FAST_TYPES
    table = parse_line_block(LABELS, columns, types).table
    good, problems, kept = check_labels(table, ())
    assert kept.tolist() == [0, 1, 2]
    assert good.column("Confidence").to_pylist() == [0.7, 0.0, 1.0]
    assert good.column("Source").type == pa.string()
    assert dict(
        zip(problems.rows.tolist(), problems.codes.to_pylist(), strict=True)
    ) == {
        3: "bad_source",
        4: "bad_label",
        5: "bad_confidence",
        6: "bad_confidence",
        7: "bad_confidence",
        8: "bad_image_id",
    }
