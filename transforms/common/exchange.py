"""Park join-bucket rows in files, so only file names go through the shuffle.

A runner's shuffle is the wrong place for gigabytes of table bytes on a single
machine: Beam's DirectRunner holds every shuffled byte in memory, several times
over. Instead, each read block writes its rows of bucket b to one Arrow IPC file
(LZ4) under EXCHANGE/<side>/b<bucket>/, and the shuffle carries BucketPiece
records (side, path, rows). A bucket's join then reads only its own files, so
memory is bounded by one bucket on any runner. Names are derived from the block
(its read range and first line), so a retried bundle rewrites the same file.
"""

from __future__ import annotations

import pyarrow as pa

from oibeam.schemas.elements import BucketPiece
from oibeam.schemas.tables import LINE, SRC
from oibeam.transforms.common import files
from oibeam.transforms.common.filesystem import remove_tree
from oibeam.transforms.common.write_files import write_atomically

EXCHANGE_DIR = "_exchange"
_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


def block_name(table: pa.Table) -> str:
    """A read block's name: its range and first line (stable across retries)."""
    return f"{table[SRC][0].as_py():05d}-{table[LINE][0].as_py():012d}"


def write_piece(
    root: str, side: str, bucket: int, table: pa.Table, name: str | None = None
) -> BucketPiece:
    """Parks `table` as bucket `bucket` of `side`; `name` must be unique within
    the bucket and the same when a bundle is retried (default: block_name)."""
    path = f"{root}/{side}/b{bucket:05d}/{name or block_name(table)}.arrow"

    def write(stream) -> None:
        with pa.ipc.new_file(stream, table.schema, options=_OPTIONS) as writer:
            writer.write_table(table)

    write_atomically(path, write, digest=False)
    return BucketPiece(side, path, table.num_rows)


def read_piece(piece: BucketPiece) -> pa.Table:
    with files.open(piece.path) as handle:
        data = handle.read()
    table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
    if table.num_rows != piece.rows:
        raise OSError(f"{piece.path}: {table.num_rows} rows, expected {piece.rows}")
    return table


def remove_exchange(root: str) -> None:
    """Deletes the exchange files of a finished (or abandoned) run."""
    remove_tree(root)
