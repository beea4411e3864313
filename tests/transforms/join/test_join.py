"""JoinLabelsToImages: the pure bucket join, and the composite on a TestPipeline."""

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.testing.util import assert_that, equal_to

from oibeam.schemas.elements import CsvFile, CsvRange
from oibeam.schemas.releases import images_layout, labels_layout
from oibeam.schemas.tables import images_internal_schema, labels_internal_schema
from oibeam.transforms.join.bucket_join import JoinSpec, join_bucket
from oibeam.transforms.join.labels_to_images import JoinLabelsToImages
from oibeam.transforms.read.csv_inputs import InputPlan

from support.headers import LABELS_HEADER, V1_IMAGES_HEADER

IMAGE_COLUMNS = V1_IMAGES_HEADER.split(",")
LABEL_COLUMNS = LABELS_HEADER.split(",")
A, B, C = 0x0A, 0x0B, 0x0C
CLASSES = pa.table({"LabelName": ["/m/x", "/m/y"], "DisplayName": ["Ex", "Why"]})


def _plan() -> InputPlan:
    files = (
        CsvFile(
            0,
            "images.csv",
            "images",
            100,
            False,
            images_layout("images.csv", IMAGE_COLUMNS),
            10,
            None,
        ),
        CsvFile(
            1,
            "labels.csv",
            "labels",
            100,
            False,
            labels_layout("labels.csv", LABEL_COLUMNS),
            10,
            None,
        ),
    )
    ranges = (
        CsvRange(0, 0, 0, 100, True),
        CsvRange(1, 1, 0, 50, False),
        CsvRange(2, 1, 50, 100, False),
    )
    return InputPlan(files, ranges, (), ())


def _images(rows) -> pa.Table:
    """rows: (key, subset, title, src, line)"""
    schema = images_internal_schema(())
    columns = {f.name: pa.nulls(len(rows), f.type) for f in schema}
    columns["key"] = pa.array([r[0] for r in rows], pa.uint64())
    columns["Subset"] = pa.array([r[1] for r in rows])
    columns["Title"] = pa.array([r[2] for r in rows])
    columns["OriginalSize"] = pa.array([1000] * len(rows), pa.int64())
    columns["_src"] = pa.array([r[3] for r in rows], pa.int32())
    columns["_line"] = pa.array([r[4] for r in rows], pa.int64())
    return pa.table(columns, schema=schema)


def _labels(rows) -> pa.Table:
    """rows: (key, source, label, confidence, src, line)"""
    return pa.table(
        {
            "key": pa.array([r[0] for r in rows], pa.uint64()),
            "Source": [r[1] for r in rows],
            "LabelName": [r[2] for r in rows],
            "Confidence": pa.array([r[3] for r in rows], pa.float64()),
            "_src": pa.array([r[4] for r in rows], pa.int32()),
            "_line": pa.array([r[5] for r in rows], pa.int64()),
        },
        schema=labels_internal_schema(()),
    )


IMAGES = [
    _images([(B, "train", "bee", 0, 3), (A, "validation", "ay", 0, 2)]),
    _images([(B, "train", "bee again", 0, 9)]),  # duplicate of line 3
]
LABELS = [
    _labels([(B, "machine", "/m/y", 0.7, 2, 4), (A, "human", "/m/x", 0.0, 1, 2)]),
    _labels(
        [
            (A, "machine", "/m/x", 0.9, 1, 3),
            (B, "machine", "/m/y", 0.8, 2, 1),  # first (range 2, line 1) wins
            (C, "machine", "/m/x", 0.5, 1, 7),  # no such image
            (B, "human", "/m/z", 1.0, 1, 5),
        ]
    ),
]


SPEC = JoinSpec(range_columns={0: IMAGE_COLUMNS, 1: LABEL_COLUMNS, 2: LABEL_COLUMNS})


def test_join_bucket_keeps_first_rows_and_rejects_the_rest():
    joined = join_bucket(IMAGES, LABELS, CLASSES, SPEC)
    images = joined.images.to_pylist()
    assert [i["ImageID"] for i in images] == ["000000000000000a", "000000000000000b"]
    assert images[1]["Title"] == "bee"
    given = {"inferred_from": None}
    assert images[0]["labels"] == [
        {"label": "/m/x", "display_name": "Ex", "source": "human", "confidence": 0.0}
        | given,
        {"label": "/m/x", "display_name": "Ex", "source": "machine", "confidence": 0.9}
        | given,
    ]
    assert images[1]["labels"] == [
        {"label": "/m/y", "display_name": "Why", "source": "machine", "confidence": 0.8}
        | given,
        {"label": "/m/z", "display_name": None, "source": "human", "confidence": 1.0}
        | given,
    ]
    assert [i["boxes"] for i in images] == [None, None]  # no box files read
    labels = joined.labels.to_pylist()
    assert [
        (r["ImageID"][-1], r["LabelName"], r["Source"], r["Subset"]) for r in labels
    ] == [
        ("a", "/m/x", "human", "validation"),
        ("a", "/m/x", "machine", "validation"),
        ("b", "/m/y", "machine", "train"),
        ("b", "/m/z", "human", "train"),
    ]
    errors = {(e["_src"], e["_line"]): e for e in joined.errors.to_pylist()}
    assert set(errors) == {(0, 9), (2, 4), (1, 7)}
    assert errors[(0, 9)]["code"] == "duplicate_image"
    assert (errors[(0, 9)]["_ref_src"], errors[(0, 9)]["_ref_line"]) == (0, 3)
    assert errors[(0, 9)]["raw"] == "000000000000000b,train,,,,,,bee again,1000,"
    assert errors[(2, 4)]["code"] == "duplicate_label"
    assert (errors[(2, 4)]["_ref_src"], errors[(2, 4)]["_ref_line"]) == (2, 1)
    assert errors[(2, 4)]["raw"] == "000000000000000b,machine,/m/y,0.7"
    assert errors[(1, 7)]["code"] == "unknown_image"
    assert joined.rows_per_range == {0: 2, 1: 3, 2: 1}


def test_join_bucket_without_images_rejects_every_label():
    joined = join_bucket([], LABELS, CLASSES, SPEC)
    assert joined.images.num_rows == 0
    assert joined.labels.num_rows == 0
    assert joined.errors.column("code").to_pylist() == ["unknown_image"] * 6


def test_composite_outputs_on_a_test_pipeline(pipeline, tmp_path):
    with pipeline as p:
        classes = p | "Classes" >> beam.Create([CLASSES])
        images = p | "Images" >> beam.Create(IMAGES)
        labels = p | "Labels" >> beam.Create(LABELS)
        out = {"images": images, "labels": labels} | JoinLabelsToImages(
            _plan(), 3, classes, str(tmp_path / "exchange")
        )
        image_ids = out["images"] | "ImageIds" >> beam.FlatMap(
            lambda kv: kv[1].column("ImageID").to_pylist()
        )
        label_rows = out["labels"] | "LabelRows" >> beam.FlatMap(
            lambda kv: [
                (r["ImageID"][-1], r["LabelName"], r["Source"])
                for r in kv[1].to_pylist()
            ]
        )
        codes = out["errors"] | "Codes" >> beam.FlatMap(
            lambda t: t.column("code").to_pylist()
        )
        counts = (
            out["counts"]
            | "SumCounts" >> beam.Map(lambda c: ((c.file_id, c.counter), c.n))
            | beam.CombinePerKey(sum)
        )
        assert_that(
            image_ids,
            equal_to(["000000000000000a", "000000000000000b"]),
            label="images",
        )
        assert_that(
            label_rows,
            equal_to(
                [
                    ("a", "/m/x", "human"),
                    ("a", "/m/x", "machine"),
                    ("b", "/m/y", "machine"),
                    ("b", "/m/z", "human"),
                ]
            ),
            label="labels",
        )
        assert_that(
            codes,
            equal_to(["duplicate_image", "duplicate_label", "unknown_image"]),
            label="errors",
        )
        assert_that(
            counts, equal_to([((0, "rows"), 2), ((1, "rows"), 4)]), label="counts"
        )


def test_bucket_count_does_not_change_the_rows():
    results = []
    for buckets in (1, 2, 7):
        from oibeam.transforms.common.image_keys import bucket_of

        keys = np.array([A, B, C], dtype=np.uint64)
        per_bucket = bucket_of(keys, buckets)
        tables = []
        for bucket in range(buckets):
            wanted = pa.array(keys[per_bucket == bucket], pa.uint64())
            tables.append(
                join_bucket(
                    [t.filter(pa.compute.is_in(t["key"], wanted)) for t in IMAGES],
                    [t.filter(pa.compute.is_in(t["key"], wanted)) for t in LABELS],
                    CLASSES,
                    SPEC,
                ).labels
            )
        results.append(sorted(map(str, pa.concat_tables(tables).to_pylist())))
    assert results[0] == results[1] == results[2]
