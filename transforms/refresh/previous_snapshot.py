"""ReadPreviousSnapshot: the images of an earlier snapshot, ready to compare.

A snapshot's images table and its shard index are written shard by shard
under the same part names (tables/images/part-S-of-N.parquet beside
shards/index/part-S-of-N.parquet), so each pair is read together: every
earlier image row gets the place of its bytes (`_prev_tar`, `_prev_offset`,
`_prev_size`; null for images that were not ok). The rows are then split by
the current run's join buckets and parked in exchange files, as the join does.

The snapshot's deleted rows (tables/deleted) are split by bucket the same way.

Every path is the snapshot's own: a part the manifest lists must be a file
directly in tables/images/ (or shards/index/, tables/deleted/), and a shard the
index names a file directly in shards/ or in the root's pool (see
shard/locations); anything else is refused, never read.
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
from oibeam.schemas.snapshot import MANIFEST
from oibeam.transforms.common.exchange import write_piece
from oibeam.transforms.common.image_keys import bucket_of, parse_image_ids
from oibeam.transforms.fetch.image_tasks import (
    PREV_INDEX,
    PREV_OFFSET,
    PREV_SIZE,
    PREV_TAR,
)
from oibeam.transforms.shard.locations import (
    from_run_relative,
    is_file_name,
    is_shard_name,
    shard_location,
)

_IMAGES = "tables/images/"
_INDEX = "shards/index/"
_DELETED = "tables/deleted/"


class NotASnapshot(ValueError):
    """--previous names something that is not a complete oibeam snapshot."""


@dataclass(frozen=True)
class PreviousSnapshot:
    """A complete earlier snapshot, as its manifest describes it."""

    path: str
    snapshot_id: str
    parts: tuple[tuple[str, str], ...]  # (images part, index part) paths
    fetch_options: dict  # the `fetch` options its run used
    # pooled shard name -> (bytes, checksum) as its manifest lists them
    pooled: tuple[tuple[str, int, str], ...] = ()
    deleted: tuple[str, ...] = ()  # tables/deleted parts
    ok_images: int = 0  # images whose bytes it has (its manifest's statuses)

    @property
    def pooled_files(self) -> dict[str, tuple[int, str]]:
        return {name: (size, checksum) for name, size, checksum in self.pooled}

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
                for table in ("images", "shard_index", "deleted")
            }
            if not all(isinstance(p, str) for f in files.values() for p in f):
                raise TypeError("a listed path is not a string")
            pooled = tuple(
                (from_run_relative(f["path"]), int(f["bytes"]), str(f["md5"]))
                for f in manifest["tables"].get("shards", {}).get("files", [])
                if from_run_relative(f["path"]) is not None
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise NotASnapshot(
                f"--previous {path}: its {MANIFEST} is not an oibeam manifest "
                f"({type(e).__name__}: {e})"
            ) from e
        index = set(files["shard_index"])
        parts = []
        for images in sorted(files["images"]):
            name = _part_name(path, images, _IMAGES)
            if f"{_INDEX}{name}" not in index:
                raise NotASnapshot(
                    f"--previous {path}: {images} has no matching shard index part"
                )
            parts.append((f"{path}/{images}", f"{path}/{_INDEX}{name}"))
        deleted = []
        for part in sorted(files["deleted"]):
            _part_name(path, part, _DELETED)
            deleted.append(f"{path}/{part}")
        snapshot = manifest.get("snapshot") or {}
        return cls(
            path=path,
            snapshot_id=snapshot.get("id") or path.rsplit("/", 1)[-1],
            parts=tuple(parts),
            fetch_options=manifest.get("options", {}).get("fetch", {}),
            pooled=pooled,
            deleted=tuple(deleted),
            ok_images=_ok_images(manifest),
        )


def _part_name(path: str, listed: str, directory: str) -> str:
    """The file name of a part the manifest lists in `directory`;
    NotASnapshot unless it is a file directly there."""
    name = listed.removeprefix(directory)
    if listed == name or not is_file_name(name):
        raise NotASnapshot(
            f"--previous {path}: its {MANIFEST} lists {listed!r}, not a "
            f"file directly in {directory} of the snapshot"
        )
    return name


def _ok_images(manifest: dict) -> int:
    ok = (manifest.get("statuses") or {}).get("ok", 0)
    return ok if isinstance(ok, int) and ok > 0 else 0


def read_part(images_path: str, index_path: str, snapshot_path: str) -> pa.Table:
    """One images part with the place of each ok image's bytes attached."""
    images = _read_parquet(images_path).replace_schema_metadata(None)
    index = _read_parquet(index_path).select(
        ["ImageID", "shard", "offset", "size", *PREV_INDEX]
    )
    locations = {}
    for shard in pc.unique(index["shard"]).to_pylist():
        if not is_shard_name(shard):
            raise NotASnapshot(
                f"{index_path}: shard {shard!r} is neither a file name in "
                f"{snapshot_path}/shards nor a shard of its root's pool: "
                "refused, not read"
            )
        locations[shard] = shard_location(snapshot_path, shard)
    where = pc.index_in(images["ImageID"], value_set=index["ImageID"].combine_chunks())
    found = pc.is_valid(where)

    def placed(values) -> pa.Array:
        if not len(values):  # a part of failures only: no bytes anywhere
            return pa.nulls(len(where), values.type)
        taken = values.combine_chunks().take(pc.fill_null(where, 0))
        return pc.if_else(found, taken, pa.scalar(None, taken.type))

    names = list(locations)
    at = pc.index_in(placed(index["shard"]), value_set=pa.array(names, pa.string()))
    tar = pa.array([locations[n] for n in names], pa.string()).take(at)
    table = (
        images.append_column(PREV_TAR, tar)
        .append_column(PREV_OFFSET, placed(index["offset"]))
        .append_column(PREV_SIZE, placed(index["size"]))
    )
    for column, internal in PREV_INDEX.items():
        table = table.append_column(internal, placed(index[column]))
    return table


def _read_parquet(path: str) -> pa.Table:
    with FileSystems.open(path) as handle:
        return pq.read_table(pa.py_buffer(handle.read()))


class _ReadPartFn(beam.DoFn):
    """(images part, index part), or (deleted part, None) -> (bucket,
    BucketPiece) per current bucket: image rows parked as "previous", deleted
    rows as "deleted"."""

    def __init__(self, snapshot_path: str, buckets: int, exchange: str) -> None:
        self._snapshot_path = snapshot_path
        self._buckets = buckets
        self._exchange = exchange

    def process(self, element):
        path, index_path = element
        if index_path is None:
            kind, table = "deleted", _read_parquet(path)
        else:
            kind = "previous"
            table = read_part(path, index_path, self._snapshot_path)
        if not table.num_rows:
            return
        keys, _ = parse_image_ids(table["ImageID"].combine_chunks())
        which = bucket_of(keys, self._buckets)
        name = path.rsplit("/", 1)[-1].removesuffix(".parquet")
        for bucket in np.unique(which).tolist():
            rows = table.filter(pa.array(which == bucket))
            piece = write_piece(self._exchange, kind, bucket, rows, name=name)
            if kind == "deleted":
                yield beam.pvalue.TaggedOutput(kind, (bucket, piece))
            else:
                yield bucket, piece


class ReadPreviousSnapshot(beam.PTransform):
    """PBegin -> dict: previous = (bucket, BucketPiece) of the previous
    snapshot's image rows (images + status columns + where their bytes are),
    deleted = (bucket, BucketPiece) of its deleted rows."""

    def __init__(self, previous: PreviousSnapshot, buckets: int, exchange: str):
        super().__init__()
        self._previous = previous
        self._buckets = buckets
        self._exchange = exchange

    def expand(self, root: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        parts = list(self._previous.parts) + [(p, None) for p in self._previous.deleted]
        read = (
            root
            | "ListParts" >> beam.Create(parts)
            | "ReadParts"
            >> beam.ParDo(
                _ReadPartFn(self._previous.path, self._buckets, self._exchange)
            )
            .with_output_types(tuple[int, BucketPiece], deleted=tuple[int, BucketPiece])
            .with_outputs("deleted", main="previous")
        )
        return {"previous": read.previous, "deleted": read.deleted}
