"""Element types, coders and Arrow schemas stay in step."""

import apache_beam as beam
import pyarrow as pa
import pytest

import oibeam.transforms  # noqa: F401 (importing the stages registers the coders)
from oibeam.schemas import tables
from oibeam.schemas.coders import ArrowTableCoder
from oibeam.schemas.elements import (
    BucketPiece,
    CsvRange,
    FileCount,
    RangeLines,
    WrittenFile,
)
from oibeam.schemas.releases import IMAGE_COLUMNS


@pytest.mark.parametrize(
    "value",
    [
        CsvRange(3, 1, 0, 1 << 40, True),
        RangeLines(3, 12345678901, "0f" * 16),
        FileCount(2, "rejected", 7, "bad_md5"),
        WrittenFile("images", "gs://b/x/part-00000.parquet", 10, 2048, "ab" * 16),
        BucketPiece("labels", "/tmp/x/labels/b00001/00002-000000000001.arrow", 9),
    ],
)
def test_element_types_round_trip_through_their_row_coders(value):
    coder = beam.coders.registry.get_coder(type(value))
    assert isinstance(coder, beam.coders.RowCoder)
    assert coder.decode(coder.encode(value)) == value


def test_table_coder_round_trip_and_registration():
    coder = beam.coders.registry.get_coder(pa.Table)
    assert isinstance(coder, ArrowTableCoder)
    table = pa.table({"a": pa.array([1, None, 3]), "b": ["x", "y", None]})
    assert coder.decode(coder.encode(table)).equals(table)
    assert coder.estimate_size(table) == table.nbytes


def test_internal_schemas_carry_every_output_column():
    extras = ("Camera",)
    internal = tables.images_internal_schema(extras)
    output = tables.images_schema(extras)
    assert [f.name for f in output][: len(IMAGE_COLUMNS)] == list(IMAGE_COLUMNS)
    for field in output:
        if field.name == "ImageID":
            assert internal.field(tables.KEY).type == pa.uint64()
        elif field.name not in ("labels", "boxes"):
            assert internal.field(field.name).type == field.type, field.name
    labels_internal = tables.labels_internal_schema(extras)
    for field in tables.labels_schema(extras):
        if field.name not in ("ImageID", "DisplayName", "Subset", "InferredFrom"):
            assert labels_internal.field(field.name).type == field.type, field.name


def test_error_schemas_agree():
    internal = {f.name for f in tables.ERRORS_INTERNAL}
    output = {f.name for f in tables.ERRORS}
    assert {"code", "reason", "raw"} <= internal & output
    assert {"file", "line", "kind"} == output - internal


def test_label_stats_columns_cover_every_subset_and_kind():
    names = set(tables.LABEL_STATS.names)
    for subset in ("train", "validation", "test"):
        for kind in ("machine", "human", "any"):
            assert f"{subset}_{kind}_positive_images" in names
            assert f"{subset}_{kind}_negative_images" in names
