"""ShareShards: a refresh's unchanged images stay in the pooled shards that hold
them; only their rows are written.

Carried images are shared ones (bytes in a pooled shard) and kept failures
(no bytes). Their images-table rows carry their previous status, as recorded
by the fetch that got the bytes (its attempts and time included; the diff
says this run shared them); a shared image's shard index row points at the
same bytes as before. Rows go to
`carried-BBBBB-of-NNNNN.parquet` parts of tables/images and shards/index
(paired by name, as fetched shards' parts are), so a refresh that fetches
nothing writes no shard at all.
Every pooled shard with at least one shared image is listed in the manifest
with the size and checksum the previous manifest gave it and, as rows, the
images of this snapshot it holds. The dead rows PlanRefresh found are kept
for exactly those shards: the snapshot's tables/deleted.
"""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas import fetch as fetch_contract
from oibeam.schemas import snapshot as contract
from oibeam.schemas.elements import SELECTED, STATUS, Count, WrittenFile
from oibeam.transforms.common.write_files import write_parquet
from oibeam.transforms.fetch.image_tasks import (
    PLAN,
    PREV_INDEX,
    PREV_OFFSET,
    PREV_SIZE,
    PREVIOUS,
    SHARE,
    internal_columns,
)
from oibeam.transforms.fetch.pixel_boxes import with_upright_boxes
from oibeam.transforms.shard.locations import shard_location

# What a status column an older snapshot left null reads as.
_FILL = {"status": "error", "retryable": False, "bytes": 0, "attempts": 0}
_FILL |= {"elapsed_ms": 0}


def shared_images(tasks: pa.Table, schema: pa.Schema) -> pa.Table:
    """The images-table rows of carried tasks: their columns now, their status
    as the previous snapshot recorded it (attempts and elapsed time too: of
    the fetch that got the bytes), boxes in pixels."""
    table = tasks.drop_columns(internal_columns(tasks))
    for f in fetch_contract.STATUS_FIELDS:
        values = tasks[PREVIOUS + f.name].cast(f.type)
        if not f.nullable:  # recorded by an older snapshot, maybe not
            values = pc.fill_null(values, _FILL[f.name])
        table = table.append_column(f, values)
    return with_upright_boxes(table).select(schema.names).cast(schema)


def shared_index(tasks: pa.Table) -> pa.Table:
    """The shard index rows of shared tasks: where their bytes already are."""
    tasks = tasks.filter(pc.equal(tasks[PLAN], SHARE))
    columns = {
        "ImageID": tasks["ImageID"],
        "shard": tasks[PREVIOUS + "shard"],
        "offset": tasks[PREV_OFFSET],
        "size": tasks[PREV_SIZE],
        **{c: tasks[internal] for c, internal in PREV_INDEX.items()},
    }
    index = fetch_contract.SHARD_INDEX
    return pa.table(
        [columns[f.name].cast(f.type) for f in index], schema=index
    ).sort_by("ImageID")


class _WriteSharedFn(beam.DoFn):
    """(bucket, carried tasks) -> WrittenFile of its images and index parts;
    tagged 'counts' (Count per status) and 'uses' ((shard, images))."""

    def __init__(self, images_dir: str, index_dir: str, schema, compression: str):
        self._images_dir = images_dir
        self._index_dir = index_dir
        self._schema = schema
        self._compression = compression

    def process(self, element, buckets: int):
        bucket, tasks = element
        tasks = tasks.sort_by("ImageID")
        part = f"carried-{bucket:05d}-of-{buckets:05d}.parquet"
        index = shared_index(tasks)
        path = f"{self._index_dir}/{part}"
        size, md5 = write_parquet(path, index, self._compression)
        yield WrittenFile("shard_index", path, index.num_rows, size, md5)
        images = shared_images(tasks, self._schema)
        path = f"{self._images_dir}/{part}"
        size, md5 = write_parquet(path, images, self._compression)
        yield WrittenFile("images", path, images.num_rows, size, md5)
        yield beam.pvalue.TaggedOutput("counts", Count(SELECTED, "", images.num_rows))
        for status, n in _counted(images["status"]):
            yield beam.pvalue.TaggedOutput("counts", Count(STATUS, status, n))
        for shard, n in _counted(index["shard"]):
            yield beam.pvalue.TaggedOutput("uses", (shard, n))


def _counted(column) -> list[tuple[str, int]]:
    counts = pc.value_counts(column)
    return sorted(
        zip(
            counts.field("values").to_pylist(),
            counts.field("counts").to_pylist(),
            strict=True,
        )
    )


class _ListShardFn(beam.DoFn):
    """(pooled shard name, images) -> WrittenFile as the previous manifest
    listed it (its bytes and checksum), with this snapshot's images as rows."""

    def __init__(self, snapshot_dir: str, pooled: dict[str, tuple[int, str]]):
        self._snapshot_dir = snapshot_dir
        self._pooled = pooled

    def process(self, element):
        shard, images = element
        if shard not in self._pooled:
            raise ValueError(
                f"the previous snapshot's index names {shard}, which its "
                "manifest does not list: run `oibeam verify` on it"
            )
        size, checksum = self._pooled[shard]
        path = shard_location(self._snapshot_dir, shard)
        yield WrittenFile("shards", path, images, size, checksum)


def _dead_of_used(element, used: list[str]):
    """(bucket, dead rows) -> (bucket, the rows of shards this snapshot uses)."""
    bucket, dead = element
    kept = dead.filter(pc.is_in(dead["shard"], value_set=pa.array(used, pa.string())))
    if kept.num_rows:
        yield bucket, kept.cast(contract.DELETED)


class ShareShards(beam.PTransform):
    """{"carried": (bucket, carried tasks), "dead": (bucket, DELETED rows)} ->
    dict: written = WrittenFile (images and index parts, every pooled shard
    used), counts = Count per status, deleted = (bucket, DELETED rows of the
    shards used). `buckets`: the join's bucket count, for part names (a side
    input or an int); `pooled`: the previous manifest's pooled shards."""

    def __init__(
        self,
        snapshot_dir: str,
        images_dir: str,
        index_dir: str,
        schema: pa.Schema,
        compression: str,
        pooled: dict[str, tuple[int, str]],
        buckets,
    ) -> None:
        super().__init__()
        self._write = _WriteSharedFn(images_dir, index_dir, schema, compression)
        self._list = _ListShardFn(snapshot_dir, pooled)
        self._buckets = buckets

    def expand(
        self, inputs: dict[str, beam.PCollection]
    ) -> dict[str, beam.PCollection]:
        written = inputs["carried"] | "WriteCarriedRows" >> beam.ParDo(
            self._write, self._buckets
        ).with_outputs("counts", "uses", main="written")
        uses = written.uses | "ImagesPerShard" >> beam.CombinePerKey(sum)
        listed = uses | "ListSharedShards" >> beam.ParDo(self._list).with_output_types(
            WrittenFile
        )
        used = uses | "UsedShards" >> beam.Keys()
        deleted = inputs["dead"] | "DeletedOfUsedShards" >> beam.FlatMap(
            _dead_of_used, beam.pvalue.AsList(used)
        )
        return {
            "written": (written.written, listed) | "AllShared" >> beam.Flatten(),
            "counts": written.counts,
            "deleted": deleted,
        }
