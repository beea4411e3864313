"""What `oibeam gc` finds under a snapshot ROOT, local or gs://: every file
with its size, the snapshot directories (complete or not, and when each was
published), LATEST; and, for the snapshots it keeps, the pooled shards their
manifests list and the dead images of each (read through FileSystems)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.snapshot import POOL, RESERVED_IDS, SNAPSHOT_ID, SUCCESS
from oibeam.tools.gc.plan import Found, dead_images, published_at
from oibeam.tools.runs import BadManifest, Run
from oibeam.transforms.publish.publish_snapshot import read_latest
from oibeam.transforms.shard.locations import from_run_relative


class GcError(RuntimeError):
    """gc cannot go on safely: nothing more is deleted (exit status 1)."""


@dataclass(frozen=True)
class Survey:
    root: str
    files: dict[str, int]  # every file under ROOT, relative to it -> bytes
    snapshots: tuple[Found, ...]
    latest: str | None

    def size_of(self, directory: str) -> int:
        """Bytes of the files under ROOT/`directory`."""
        return _size_under(self.files, directory)

    def pool_files(self) -> list[str]:
        return sorted(n for n in self.files if n.startswith(f"{POOL}/"))


def _size_under(files: dict[str, int], directory: str) -> int:
    return sum(n for name, n in files.items() if name.startswith(f"{directory}/"))


def _read_text(path: str) -> str:
    with FileSystems.open(path) as handle:
        return handle.read().decode("utf-8", "replace")


def _snapshot_ids(root: str, files: dict[str, int]) -> set[str]:
    names = {name.split("/", 1)[0] for name in files if "/" in name}
    if "://" not in root:  # empty directories hold no file to list
        names |= {e.name for e in os.scandir(root) if e.is_dir()}
    return {n for n in names if SNAPSHOT_ID.fullmatch(n) and n not in RESERVED_IDS}


def survey(root: str) -> Survey:
    """Lists ROOT once and reads the `_SUCCESS` of each complete snapshot."""
    root = root.rstrip("/")
    listed = FileSystems.match([f"{root}/**"])[0].metadata_list
    files = {m.path[len(root) + 1 :]: m.size_in_bytes for m in listed}
    snapshots = []
    for snapshot_id in sorted(_snapshot_ids(root, files)):
        size = _size_under(files, snapshot_id)
        if f"{snapshot_id}/{SUCCESS}" not in files:
            snapshots.append(Found(snapshot_id, False, None, size))
            continue
        success = _read_text(f"{root}/{snapshot_id}/{SUCCESS}")
        try:
            when = published_at(success)
        except ValueError:
            when = None
        if when is None:
            try:
                finished = Run.load(f"{root}/{snapshot_id}").manifest.get("finished")
                when = published_at("", finished)
            except (OSError, ValueError) as e:
                raise GcError(
                    f"cannot tell when {root}/{snapshot_id} was published: {e}"
                ) from e
        snapshots.append(Found(snapshot_id, True, when, size))
    return Survey(root, files, tuple(snapshots), read_latest(root).snapshot_id)


@dataclass(frozen=True)
class Kept:
    """What the kept snapshots hold in the pool."""

    shards: dict[str, set[str]]  # pooled shard name -> checksum labels listed
    dead: dict[str, set[str]]  # pooled shard name -> ImageIDs to erase


def read_kept(root: str, kept: tuple[str, ...]) -> Kept:
    """The pooled shards the manifests of `kept` list, and their dead images
    (plan.dead_images); GcError if a kept snapshot cannot be read."""
    runs = []
    shards: dict[str, set[str]] = {}
    for snapshot_id in kept:
        try:
            run = Run.load(f"{root}/{snapshot_id}")
        except (OSError, BadManifest) as e:
            raise GcError(f"cannot read kept snapshot {snapshot_id}: {e}") from e
        runs.append(run)
        for entry in run.manifest["tables"].get("shards", {}).get("files", []):
            name = from_run_relative(entry["path"])
            if name is not None:
                shards.setdefault(name, set()).add(str(entry.get("md5")))
    try:
        deleted = [
            pair
            for run in runs
            for pair in _pairs(run, "deleted", None)
            if pair[1] in shards
        ]
        candidates = dead_images(deleted, ())
        ids = pa.array(sorted({i for s in candidates.values() for i in s}), pa.string())
        live = [pair for run in runs for pair in _pairs(run, "shard_index", ids)]
    except (OSError, BadManifest, pa.ArrowException) as e:
        raise GcError(f"cannot read the tables of a kept snapshot: {e}") from e
    return Kept(shards, dead_images(deleted, live))


def _pairs(run: Run, table: str, only: pa.Array | None):
    """(ImageID, shard) of a table's rows (of the ImageIDs `only`, if given)."""
    if only is not None and not len(only):
        return
    for batch in run.batches(table, ["ImageID", "shard"]):
        if only is not None:
            batch = batch.filter(pc.is_in(batch["ImageID"], value_set=only))
        yield from zip(
            batch["ImageID"].to_pylist(), batch["shard"].to_pylist(), strict=True
        )
