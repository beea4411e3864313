"""Headers of every Open Images release map onto our columns."""

import pytest

from oibeam.schemas import releases

from support.headers import LABELS_HEADER
from support.headers import V1_IMAGES_HEADER as V1


@pytest.mark.parametrize(
    ("header", "release", "extras"),
    [
        (V1.replace("Subset,", ""), "v1-early", ()),
        (V1, "v1", ()),
        (V1 + ",Thumbnail300KURL", "v2/v3", ()),
        (V1 + ",Thumbnail300KURL,Rotation", "v4+", ()),
        (V1 + ",Thumbnail300KURL,Rotation,Camera", "v4+", ("Camera",)),
        ("\ufeff" + V1 + ", Thumbnail300KURL ", "v2/v3", ()),
    ],
)
def test_images_layouts_by_header(header, release, extras):
    layout = releases.images_layout("x.csv", header.split(","))
    assert layout.release == release
    assert layout.extras == extras
    assert layout.columns[0] == "ImageID"


def test_missing_image_column_names_file_and_columns():
    with pytest.raises(releases.HeaderError) as e:
        releases.images_layout("gs://b/images.csv", ["ImageID", "Subset", "Title"])
    message = str(e.value)
    assert "gs://b/images.csv" in message
    assert "OriginalURL" in message and "OriginalMD5" in message
    assert "it has ImageID, Subset, Title" in message


@pytest.mark.parametrize("label_column", ["LabelName", "Label"])
def test_labels_layout_accepts_label_alias(label_column):
    layout = releases.labels_layout(
        "l.csv", ["ImageID", "Source", label_column, "Confidence"]
    )
    assert layout.columns == tuple(LABELS_HEADER.split(","))
    assert layout.extras == ()


def test_labels_missing_confidence():
    with pytest.raises(releases.HeaderError, match="missing column.*Confidence"):
        releases.labels_layout("l.csv", ["ImageID", "Source", "LabelName"])


def test_repeated_column_is_an_error():
    with pytest.raises(releases.HeaderError, match="appears twice"):
        releases.labels_layout(
            "l.csv", ["ImageID", "Source", "LabelName", "Label", "Confidence"]
        )


@pytest.mark.parametrize(
    ("path", "subset"),
    [
        ("images_2016_08/train/images.csv", "train"),
        ("gs://b/2018_04/validation/validation-images.csv", "validation"),
        ("test-images-with-rotation.csv", "test"),
        ("images.csv", None),
        ("/tmp/test-runs/train/images.csv", "train"),  # the nearest part wins
        ("train/validation.csv", "validation"),
        ("train-validation/images.csv", None),  # one part names two: ambiguous
    ],
)
def test_subset_from_path(path, subset):
    assert releases.subset_from_path(path) == subset


@pytest.mark.parametrize(
    ("layout", "columns", "clash"),
    [
        (releases.images_layout, V1.split(",") + ["labels"], "labels"),
        (releases.images_layout, V1.split(",") + ["key"], "key"),
        (releases.images_layout, V1.split(",") + ["status"], "status"),
        (
            releases.labels_layout,
            ["ImageID", "Source", "LabelName", "Confidence", "Subset"],
            "Subset",
        ),
        (
            releases.labels_layout,
            ["ImageID", "Source", "LabelName", "Confidence", "DisplayName"],
            "DisplayName",
        ),
    ],
)
def test_columns_we_add_cannot_come_from_a_file(layout, columns, clash):
    with pytest.raises(releases.HeaderError, match=f"column\\(s\\) {clash} clash"):
        layout("f.csv", columns)
