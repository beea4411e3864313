"""The files of an unchanged refresh, written from its parent snapshot's.

When the inputs and options are the parent's (unchanged_refresh decides), the
pipeline would plan every image `carried` and write what this module writes,
without reading a CSV or starting a worker:
- tables/diff: every image `carried`, action `share` (ok) or `keep` (a final
  failure), in parts per join bucket sorted by ImageID, as PlanRefresh writes
  it (the parent's rows are parked per bucket first: memory stays a bucket);
- every other table (images, shard index, labels, statistics, errors,
  deleted, the trainable CSV): the parent's files, hard-linked on a local
  disk (copied on gs://). The pipeline would write the same rows: those of
  the same inputs and options, carried images with the status their fetch
  recorded and their index rows pointing at the same pooled bytes (its part
  files are named otherwise);
- the manifest: the parent's, with this run's id, parent, options, times,
  files, and changes/actions.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas import fetch as fetch_schema
from oibeam.schemas import snapshot as contract
from oibeam.schemas.elements import WrittenFile
from oibeam.schemas.snapshot import MANIFEST
from oibeam.tools.runs import Run
from oibeam.transforms.common import files
from oibeam.transforms.common.image_keys import bucket_of, parse_image_ids
from oibeam.transforms.common.write_files import write_parquet, write_text

REWRITTEN = ("diff",)  # the other tables are the parent's files


def bucket_column(ids: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """The join bucket of each ImageID."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    keys, _ = parse_image_ids(ids)
    return bucket_of(keys, buckets)


class _Spill:
    """A table's rows, parked per bucket in Arrow IPC files under `folder`:
    a large parent is read once, a batch at a time, and each bucket is then
    sorted on its own (memory: one batch, then one bucket, as a pipeline
    worker holds)."""

    def __init__(self, folder: str, name: str, buckets: int) -> None:
        self._folder, self._name, self._buckets = folder, name, buckets
        self._writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}

    def add(self, batch: pa.RecordBatch) -> None:
        table = pa.Table.from_batches([batch])
        which = bucket_column(table["ImageID"], self._buckets)
        for bucket in np.unique(which).tolist():
            rows = table.filter(pa.array(which == bucket))
            writer = self._writers.get(bucket)
            if writer is None:
                path = os.path.join(self._folder, f"{self._name}-{bucket}.arrow")
                writer = pa.ipc.new_file(path, table.schema)
                self._writers[bucket] = writer
            writer.write_table(rows)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()

    def buckets(self) -> list[int]:
        return sorted(self._writers)

    def rows(self, bucket: int) -> pa.Table:
        """The rows of one of buckets(), sorted by ImageID."""
        path = os.path.join(self._folder, f"{self._name}-{bucket}.arrow")
        with pa.memory_map(path) as source:
            table = pa.ipc.open_file(source).read_all()
        return table.sort_by("ImageID")


def carried_diff(images: pa.Table) -> pa.Table:
    """Every image carried: shared if ok (its bytes stay), else kept."""
    ok = pc.equal(images["status"], fetch_schema.OK)
    n = images.num_rows
    return pa.table(
        {
            "ImageID": images["ImageID"],
            "change": pa.array(["carried"] * n, pa.string()),
            "action": pc.if_else(ok, "share", "keep"),
            "reason": pc.if_else(ok, "unchanged", "final_failure"),
            "changed_columns": pa.nulls(n, pa.list_(pa.string())),
            "previous_status": images["status"],
            "previous_shard": images["shard"],
        }
    ).cast(contract.DIFF)


def write_rewritten(
    parent: Run, directory: str, buckets: int, compression: str
) -> list[WrittenFile]:
    """tables/diff of the new snapshot: every image carried."""
    written = []
    with tempfile.TemporaryDirectory(prefix="oibeam-carry-") as folder:
        images = _Spill(folder, "images", buckets)
        for batch in parent.batches("images", ["ImageID", "status", "shard"]):
            images.add(batch)
        images.close()
        for bucket in images.buckets():
            path = f"tables/diff/part-{bucket:05d}-of-{buckets:05d}.parquet"
            diff = carried_diff(images.rows(bucket))
            size, md5 = write_parquet(f"{directory}/{path}", diff, compression)
            written.append(WrittenFile("diff", path, diff.num_rows, size, md5))
    return written


def link_unchanged(parent: Run, directory: str) -> None:
    """The parent's other table files, at the same places in the new snapshot."""
    for name, table in parent.manifest["tables"].items():
        if name in (*REWRITTEN, "shards"):
            continue
        for f in table["files"]:
            files.link_or_copy(
                f"{parent.directory}/{f['path']}", f"{directory}/{f['path']}"
            )


def carried_manifest(
    parent: Run, written: list[WrittenFile], info: dict[str, Any]
) -> dict[str, Any]:
    """The parent's manifest, as this run's: `info` (command, times, options,
    snapshot) over it, the rewritten tables' files, and every image carried."""
    manifest = {k: v for k, v in parent.manifest.items() if k not in info}
    manifest = {**info, **manifest}
    tables = dict(parent.manifest["tables"])
    for name in REWRITTEN:
        mine = sorted((w for w in written if w.table == name), key=lambda w: w.path)
        tables[name] = {
            "rows": sum(w.rows for w in mine),
            "files": [
                {"path": w.path, "rows": w.rows, "bytes": w.bytes, "md5": w.md5}
                for w in mine
            ],
        }
    manifest["tables"] = dict(sorted(tables.items()))
    manifest["rows"] = {
        **parent.manifest["rows"],
        **{name: tables[name]["rows"] for name in REWRITTEN},
    }
    statuses = parent.manifest.get("statuses", {})
    ok = statuses.get(fetch_schema.OK, 0)
    selected = sum(statuses.values())
    manifest["changes"] = {"carried": selected} if selected else {}
    manifest["actions"] = {
        a: n for a, n in (("keep", selected - ok), ("share", ok)) if n
    }
    manifest["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    return manifest


def write_manifest(directory: str, manifest: dict[str, Any]) -> str:
    path = f"{directory}/{MANIFEST}"
    write_text(path, json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return path
