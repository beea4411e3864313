"""Atomic writes: a temporary dot-name beside the final path, renamed last, so a
reader never sees a half-written file; Parquet parts read back with pyarrow."""

from __future__ import annotations

import hashlib
import os

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import BeamAssertException, assert_that

from oibeam.schemas.elements import WrittenFile
from oibeam.transforms.common.write_files import (
    temporary_name,
    write_atomically,
    write_csv_output,
    write_parquet,
    write_text,
)
from oibeam.transforms.common.write_tables import WriteParquetTable

SCHEMA = pa.schema(
    [
        pa.field("ImageID", pa.string(), nullable=False),
        pa.field("n", pa.int64()),
        pa.field("tags", pa.list_(pa.string())),
    ]
)


def _table(start: int, rows: int) -> pa.Table:
    return pa.table(
        {
            "ImageID": [f"{i:016x}" for i in range(start, start + rows)],
            "n": [i * 10 if i % 3 else None for i in range(start, start + rows)],
            "tags": [[f"t{i}"] * (i % 3) for i in range(start, start + rows)],
        },
        schema=SCHEMA,
    )


def _md5(path) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def test_temporary_name_is_a_unique_dot_name_beside_the_path():
    first = temporary_name("/out/tables/images/part-00001.parquet")
    second = temporary_name("/out/tables/images/part-00001.parquet")
    assert first != second
    for temp in (first, second):
        directory, name = temp.rsplit("/", 1)
        assert directory == "/out/tables/images"
        assert name.startswith(".tmp-") and name.endswith("-part-00001.parquet")
    gcs = temporary_name("gs://bucket/run/manifest.json")
    assert gcs.startswith("gs://bucket/run/.tmp-")
    assert gcs.endswith("-manifest.json")
    bare = temporary_name("manifest.json")
    assert "/" not in bare and bare.startswith(".tmp-")


def test_the_final_name_appears_only_when_the_file_is_complete(tmp_path):
    final = tmp_path / "part-00000.parquet"
    write_parquet(str(tmp_path / "part-00009.parquet"), _table(90, 2))
    seen = {}

    def write(stream) -> None:
        stream.write(b"PAR1 half of a file")
        # Mid-write, as another process would see the directory.
        seen["names"] = sorted(os.listdir(tmp_path))
        seen["final exists"] = final.exists()
        seen["dataset rows"] = pq.read_table(tmp_path).num_rows
        pq.write_table(_table(0, 5), stream)

    write_atomically(str(final), write)

    assert seen["final exists"] is False
    temps = [n for n in seen["names"] if n != "part-00009.parquet"]
    assert len(temps) == 1 and temps[0].startswith(".tmp-")
    assert seen["dataset rows"] == 2  # the temporary file is skipped by readers
    assert sorted(os.listdir(tmp_path)) == ["part-00000.parquet", "part-00009.parquet"]


def test_write_atomically_reports_size_and_md5_of_the_bytes(tmp_path):
    path = tmp_path / "deep" / "dir" / "blob.bin"
    payload = [b"abc", bytearray(b"\x00" * 1000), memoryview(b"xyz")]

    def write(stream) -> None:
        for chunk in payload:
            stream.write(chunk)

    size, md5 = write_atomically(str(path), write)
    data = path.read_bytes()
    assert data == b"".join(bytes(c) for c in payload)
    assert size == len(data) == 1006
    assert md5 == hashlib.md5(data).hexdigest()

    size, md5 = write_atomically(str(path), write, digest=False)
    assert (size, md5) == (len(data), "")
    assert path.read_bytes() == data


def test_a_rewrite_keeps_the_old_file_visible_until_the_new_one_is_done(tmp_path):
    path = tmp_path / "manifest.json"
    write_text(str(path), "old\n")
    seen = []

    def write(stream) -> None:
        stream.write(b"new, ")
        seen.append(path.read_text())
        stream.write(b"complete\n")

    write_atomically(str(path), write)
    assert seen == ["old\n"]
    assert path.read_text() == "new, complete\n"
    assert os.listdir(tmp_path) == ["manifest.json"]


def test_a_failure_mid_write_leaves_the_final_name_untouched(tmp_path):
    fresh = tmp_path / "fresh.parquet"
    kept = tmp_path / "kept.parquet"
    write_parquet(str(kept), _table(0, 3))
    before = kept.read_bytes()

    def fail_half_way(stream) -> None:
        stream.write(b"PAR1" + b"\x01" * 4096)
        raise OSError("disk full")

    for path in (fresh, kept):
        with pytest.raises(OSError, match="disk full"):
            write_atomically(str(path), fail_half_way)
    assert not fresh.exists()
    assert kept.read_bytes() == before
    # Whatever the failed attempts left is a dot-file that readers skip.
    leftovers = [n for n in os.listdir(tmp_path) if n != "kept.parquet"]
    assert all(n.startswith(".") for n in leftovers)
    assert pq.read_table(tmp_path).equals(_table(0, 3))


def test_a_table_parquet_cannot_hold_is_never_committed(tmp_path):
    union = pa.UnionArray.from_sparse(
        pa.array([0, 1], pa.int8()), [pa.array([1, 2]), pa.array(["a", "b"])]
    )
    path = tmp_path / "part-00000.parquet"
    with pytest.raises(pa.ArrowNotImplementedError):
        write_parquet(str(path), pa.table({"u": union}))
    assert not path.exists()
    assert [n for n in os.listdir(tmp_path) if not n.startswith(".")] == []


@pytest.mark.parametrize("compression", ["zstd", "snappy", "none"])
def test_write_parquet_reads_back_identical(tmp_path, compression):
    table = _table(0, 50)
    path = tmp_path / "t.parquet"
    size, md5 = write_parquet(str(path), table, compression)
    assert pq.read_table(path).equals(table)
    assert pq.read_schema(path).equals(SCHEMA)
    assert size == path.stat().st_size
    assert md5 == _md5(path)
    codecs = {
        pq.ParquetFile(path).metadata.row_group(0).column(i).compression
        for i in range(len(SCHEMA))
    }
    assert codecs == {"UNCOMPRESSED" if compression == "none" else compression.upper()}


def test_write_text_is_utf8(tmp_path):
    path = tmp_path / "labels.csv"
    text = "LabelName,DisplayName\n/m/0k4j,Café ☕\n"
    size, md5 = write_text(str(path), text)
    assert path.read_bytes() == text.encode("utf-8")
    assert size == len(text.encode("utf-8")) > len(text)
    assert md5 == _md5(path)


def test_write_csv_output_counts_the_rows_below_the_header(tmp_path):
    path = tmp_path / "tables" / "trainable_labels.csv"
    written = write_csv_output("A,B\n1,x\n2,y\n", str(path), "trainable_labels")
    assert written == WrittenFile(
        "trainable_labels", str(path), 2, path.stat().st_size, _md5(path)
    )
    assert path.read_text() == "A,B\n1,x\n2,y\n"
    header_only = write_csv_output("A,B\n", str(path), "trainable_labels")
    assert header_only.rows == 0
    assert path.read_text() == "A,B\n"


def _check_against_disk(written: list[WrittenFile]) -> None:
    """Each WrittenFile describes the file under its name, byte for byte."""
    for w in written:
        if w.table != "images":
            raise BeamAssertException(f"table {w.table}")
        data = open(w.path, "rb").read()
        if (w.bytes, w.md5) != (len(data), hashlib.md5(data).hexdigest()):
            raise BeamAssertException(f"{w.path}: {w} does not describe its bytes")
        if pq.read_metadata(w.path).num_rows != w.rows:
            raise BeamAssertException(f"{w.path}: rows {w.rows}")
        if not pq.read_schema(w.path).equals(SCHEMA):
            raise BeamAssertException(f"{w.path}: {pq.read_schema(w.path)}")
    if sorted(os.path.basename(w.path) for w in written) != [
        "b00000.parquet",
        "b00001.parquet",
        "b00002.parquet",
    ]:
        raise BeamAssertException(f"paths {sorted(w.path for w in written)}")


def test_write_parquet_table_on_a_test_pipeline(pipeline, tmp_path):
    directory = tmp_path / "tables" / "images"
    # The second part comes with narrower types: it is cast to the schema.
    narrow = pa.table(
        {
            "ImageID": pa.array(["00000000000000aa"], pa.string()),
            "n": pa.array([7], pa.int32()),
            "tags": pa.array([["x"]], pa.list_(pa.string())),
        }
    )
    parts = [("b00000", _table(0, 4)), ("b00001", narrow), ("b00002", _table(4, 0))]
    with pipeline as p:
        written = (
            p
            | beam.Create(parts)
            | WriteParquetTable(f"{directory}/", "images", SCHEMA, "snappy")
        )
        assert_that(written, _check_against_disk)

    assert sorted(os.listdir(directory)) == [
        "b00000.parquet",
        "b00001.parquet",
        "b00002.parquet",
    ]
    back = pq.read_table(directory)
    assert back.schema.equals(SCHEMA)
    expected = pa.concat_tables([_table(0, 4), narrow.cast(SCHEMA)])
    assert back.sort_by("ImageID").equals(expected.sort_by("ImageID"))
