"""ReadPreviousSnapshot: the images of an earlier snapshot, ready to compare.

A snapshot's images table and its shard index are written shard by shard
under the same part names (tables/images/part-S-of-N.parquet beside
shards/index/part-S-of-N.parquet), so each pair is read together: every
earlier image row gets the place of its bytes (`_prev_tar`, `_prev_offset`,
`_prev_size`; null for images that were not ok). The rows are then split by
the current run's join buckets and parked in exchange files, as the join does.

Every path is the snapshot's own: a part the manifest lists must be a file
directly in tables/images/ (or shards/index/), and a shard the index names a
file directly in shards/; anything else is refused, never read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas import snapshot as contract
from oibeam.schemas.elements import BucketPiece
from oibeam.transforms.common.exchange import write_piece
from oibeam.transforms.common.image_keys import bucket_of, parse_image_ids
from oibeam.transforms.fetch.image_tasks import PREV_OFFSET, PREV_SIZE, PREV_TAR
from oibeam.transforms.publish.manifest import MANIFEST

_IMAGES = "tables/images/"
_INDEX = "shards/index/"


class NotASnapshot(ValueError):
    """--previous names something that is not a complete oibeam snapshot."""


def _file_name(name: object) -> bool:
    """A name of a file directly in a directory: no separator, not `.`/`..`."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and name.isprintable()
    )


@dataclass(frozen=True)
class PreviousSnapshot:
    """A complete earlier snapshot, as its manifest describes it."""

    path: str
    snapshot_id: str
    parts: tuple[tuple[str, str], ...]  # (images part, index part) paths
    fetch_options: dict  # the `fetch` options its run used

    @classmethod
    def load(cls, path: str) -> PreviousSnapshot:
        """Reads ROOT/ID's manifest (NotASnapshot unless it is complete)."""
        path = path.rstrip("/")
        if not FileSystems.exists(f"{path}/{contract.SUCCESS}"):
            raise NotASnapshot(
                f"--previous {path}: no {contract.SUCCESS}, so not a complete snapshot"
            )
        with FileSystems.open(f"{path}/{MANIFEST}") as handle:
            text = handle.read()
        try:
            manifest = json.loads(text)
            files = {
                table: [
                    f["path"]
                    for f in manifest["tables"].get(table, {}).get("files", [])
                ]
                for table in ("images", "shard_index")
            }
            if not all(isinstance(p, str) for f in files.values() for p in f):
                raise TypeError("a listed path is not a string")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise NotASnapshot(
                f"--previous {path}: its {MANIFEST} is not an oibeam manifest "
                f"({type(e).__name__}: {e})"
            ) from e
        index = set(files["shard_index"])
        parts = []
        for images in sorted(files["images"]):
            name = images.removeprefix(_IMAGES)
            if images == name or not _file_name(name):
                raise NotASnapshot(
                    f"--previous {path}: its {MANIFEST} lists {images!r}, not a "
                    f"file directly in {_IMAGES} of the snapshot"
                )
            if f"{_INDEX}{name}" not in index:
                raise NotASnapshot(
                    f"--previous {path}: {images} has no matching shard index part"
                )
            parts.append((f"{path}/{images}", f"{path}/{_INDEX}{name}"))
        snapshot = manifest.get("snapshot") or {}
        return cls(
            path=path,
            snapshot_id=snapshot.get("id") or path.rsplit("/", 1)[-1],
            parts=tuple(parts),
            fetch_options=manifest.get("options", {}).get("fetch", {}),
        )


def read_part(images_path: str, index_path: str, snapshot_path: str) -> pa.Table:
    """One images part with the place of each ok image's bytes attached."""
    images = _read_parquet(images_path).replace_schema_metadata(None)
    index = _read_parquet(index_path).select(["ImageID", "shard", "offset", "size"])
    for shard in pc.unique(index["shard"]).to_pylist():
        if not _file_name(shard):
            raise NotASnapshot(
                f"{index_path}: shard {shard!r} is not a file name in "
                f"{snapshot_path}/shards: refused, not read"
            )
    where = pc.index_in(images["ImageID"], value_set=index["ImageID"].combine_chunks())
    found = pc.is_valid(where)

    def placed(values) -> pa.Array:
        taken = values.combine_chunks().take(pc.fill_null(where, 0))
        return pc.if_else(found, taken, pa.scalar(None, taken.type))

    tar = pc.binary_join_element_wise(
        f"{snapshot_path}/shards", placed(index["shard"]), "/"
    )
    return (
        images.append_column(PREV_TAR, tar)
        .append_column(PREV_OFFSET, placed(index["offset"]))
        .append_column(PREV_SIZE, placed(index["size"]))
    )


def _read_parquet(path: str) -> pa.Table:
    with FileSystems.open(path) as handle:
        return pq.read_table(pa.py_buffer(handle.read()))


class _ReadPartFn(beam.DoFn):
    """(images part, index part) -> (bucket, BucketPiece) per current bucket."""

    def __init__(self, snapshot_path: str, buckets: int, exchange: str) -> None:
        self._snapshot_path = snapshot_path
        self._buckets = buckets
        self._exchange = exchange

    def process(self, element):
        images_path, index_path = element
        table = read_part(images_path, index_path, self._snapshot_path)
        if not table.num_rows:
            return
        keys, _ = parse_image_ids(table["ImageID"].combine_chunks())
        which = bucket_of(keys, self._buckets)
        name = images_path.rsplit("/", 1)[-1].removesuffix(".parquet")
        for bucket in np.unique(which).tolist():
            rows = table.filter(pa.array(which == bucket))
            yield (
                bucket,
                write_piece(self._exchange, "previous", bucket, rows, name=name),
            )


class ReadPreviousSnapshot(beam.PTransform):
    """PBegin -> PCollection[(bucket, BucketPiece)] of the previous snapshot's
    image rows (images + status columns + where their bytes are)."""

    def __init__(self, previous: PreviousSnapshot, buckets: int, exchange: str):
        super().__init__()
        self._previous = previous
        self._buckets = buckets
        self._exchange = exchange

    def expand(
        self, root: beam.pvalue.PBegin
    ) -> beam.PCollection[tuple[int, BucketPiece]]:
        return (
            root
            | "ListParts" >> beam.Create(list(self._previous.parts))
            | "ReadParts"
            >> beam.ParDo(
                _ReadPartFn(self._previous.path, self._buckets, self._exchange)
            ).with_output_types(tuple[int, BucketPiece])
        )
