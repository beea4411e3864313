"""Exchange files: join-bucket rows parked as Arrow IPC files, read back
identical, named so a retried bundle rewrites the same file, removed at the end."""

from __future__ import annotations

import os
import re

import pyarrow as pa
import pytest

from oibeam.schemas.elements import BucketPiece
from oibeam.schemas.tables import LINE, SRC
from oibeam.transforms.common.exchange import (
    EXCHANGE_DIR,
    block_name,
    read_piece,
    remove_exchange,
    write_piece,
)

LABEL = pa.struct([("LabelName", pa.string()), ("Confidence", pa.float32())])


def _block(src: int, first_line: int, rows: int) -> pa.Table:
    """Rows of a read block: nullable, nested and unsigned columns included."""
    return pa.table(
        {
            # Keys above the int64 range must survive as uint64.
            "key": pa.array([2**64 - 1 - i for i in range(rows)], pa.uint64()),
            "Title": [None if i % 4 == 1 else f"photo, ☃ {i}" for i in range(rows)],
            "labels": pa.array(
                [
                    [{"LabelName": "/m/cat", "Confidence": 0.5}] * (i % 3)
                    for i in range(rows)
                ],
                pa.list_(LABEL),
            ),
            SRC: pa.array([src] * rows, pa.int32()),
            LINE: pa.array(range(first_line, first_line + rows), pa.int64()),
        }
    ).replace_schema_metadata({"origin": "test"})


def _files(root) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, _, names in os.walk(root)
        for f in names
    )


def test_block_name_is_the_range_and_first_line():
    assert block_name(_block(3, 42, 5)) == "00003-000000000042"
    assert block_name(_block(12345, 10**11, 1)) == "12345-100000000000"


def test_a_piece_reads_back_identical(tmp_path):
    root = str(tmp_path / EXCHANGE_DIR)
    table = _block(7, 1000, 50)
    piece = write_piece(root, "labels", 12, table)
    assert piece == BucketPiece(
        "labels", f"{root}/labels/b00012/00007-000000001000.arrow", 50
    )
    back = read_piece(piece)
    assert back.equals(table, check_metadata=True)
    assert back.schema.field("key").type == pa.uint64()
    # A plain Arrow IPC file: any Arrow reader opens it.
    with pa.memory_map(piece.path) as source:
        assert pa.ipc.open_file(source).read_all().equals(table)


def test_pieces_of_one_bucket_and_side_live_apart(tmp_path):
    root = str(tmp_path / EXCHANGE_DIR)
    first, second = _block(0, 1, 3), _block(1, 1, 4)
    pieces = [
        write_piece(root, "images", 0, first),
        write_piece(root, "images", 0, second),
        write_piece(root, "labels", 0, first),
        write_piece(root, "images", 99999, second, name="from-00002"),
    ]
    assert _files(root) == [
        "images/b00000/00000-000000000001.arrow",
        "images/b00000/00001-000000000001.arrow",
        "images/b99999/from-00002.arrow",
        "labels/b00000/00000-000000000001.arrow",
    ]
    tables = [first, second, first, second]
    for piece, table in zip(pieces, tables, strict=True):
        assert read_piece(piece).equals(table)


def test_a_retried_block_rewrites_the_same_file(tmp_path):
    root = str(tmp_path / EXCHANGE_DIR)
    write_piece(root, "images", 3, _block(5, 10, 8))
    retried = _block(5, 10, 6)  # same name, other rows: the retry wins
    piece = write_piece(root, "images", 3, retried)
    assert _files(root) == ["images/b00003/00005-000000000010.arrow"]
    assert piece.rows == 6
    assert read_piece(piece).equals(retried)


def test_an_empty_piece_keeps_its_schema(tmp_path):
    empty = _block(0, 1, 0)
    piece = write_piece(str(tmp_path), "previous", 1, empty, name="part-00000-of-00001")
    assert piece.rows == 0
    back = read_piece(piece)
    assert back.num_rows == 0 and back.schema.equals(empty.schema)


def test_a_piece_with_other_rows_than_recorded_is_an_error(tmp_path):
    piece = write_piece(str(tmp_path), "images", 0, _block(0, 1, 5))
    wrong = piece._replace(rows=6)
    with pytest.raises(OSError, match=re.escape(f"{piece.path}: 5 rows, expected 6")):
        read_piece(wrong)


def test_a_missing_piece_is_an_error(tmp_path):
    piece = BucketPiece("images", str(tmp_path / "images" / "b00000" / "x.arrow"), 1)
    with pytest.raises(OSError):
        read_piece(piece)


def test_remove_exchange_deletes_every_piece_and_nothing_else(tmp_path):
    run = tmp_path / "run"
    root = str(run / EXCHANGE_DIR)
    for bucket in range(3):
        write_piece(root, "images", bucket, _block(bucket, 1, 2))
        write_piece(root, "labels", bucket, _block(bucket, 1, 2))
    (run / "tables").mkdir()
    (run / "tables" / "keep.parquet").write_bytes(b"x")
    remove_exchange(root)
    assert not os.path.exists(root)
    assert _files(run) == ["tables/keep.parquet"]
    remove_exchange(root)  # a second time (a retried finish): nothing to do


def test_remove_exchange_of_a_run_that_parked_nothing(tmp_path):
    remove_exchange(str(tmp_path / "never" / EXCHANGE_DIR))
    assert os.listdir(tmp_path) == []


def test_pieces_round_trip_on_gcs(gcs_emulator):
    bucket = gcs_emulator.create_bucket("exchange-round-trip")
    root = f"gs://{bucket.name}/run/{EXCHANGE_DIR}"
    table = _block(2, 7, 20)
    piece = write_piece(root, "labels", 4, table)
    assert piece.path == f"{root}/labels/b00004/00002-000000000007.arrow"
    assert read_piece(piece).equals(table)
    assert [b.name for b in gcs_emulator.list_blobs(bucket.name)] == [
        "run/_exchange/labels/b00004/00002-000000000007.arrow"
    ]


def test_remove_exchange_on_gcs(gcs_emulator):
    bucket = gcs_emulator.create_bucket("exchange-removal")
    root = f"gs://{bucket.name}/run/{EXCHANGE_DIR}"
    for bucket_number in range(2):
        write_piece(root, "images", bucket_number, _block(bucket_number, 1, 3))
    bucket.blob("run/manifest.json").upload_from_string(b"{}")
    remove_exchange(root)
    assert [b.name for b in gcs_emulator.list_blobs(bucket.name)] == [
        "run/manifest.json"
    ]
    remove_exchange(root)  # nothing left: nothing to do
