"""Where a shard named in a run's shard index lives (no Beam here).

A shard index (and the images table's `shard` column) names a shard in one of
two forms:
- `NAME.tar`: a file in the run's own `shards/` directory (fetch runs, and
  snapshots written before shards were pooled);
- `pool/ID/NAME.tar`: a file in the snapshot root's shared pool, written once
  by snapshot ID and used by every later snapshot that still has its images.
A manifest lists a pooled shard relative to its snapshot directory, as
`../pool/ID/NAME.tar`. Nothing else is accepted: every other name is refused,
never read, so an index cannot point a reader outside the run or its pool.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.snapshot import POOL, SNAPSHOT_ID

_POOLED = re.compile(rf"{POOL}/([^/]+)/([^/]+)")
_UP = "../"


def is_file_name(name: object) -> bool:
    """A name of a file directly in a directory: no separator, not `.`/`..`."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and name.isprintable()
    )


def pooled(snapshot_id: str, name: str) -> str:
    """The index name of shard file `name` written by snapshot `snapshot_id`."""
    return f"{POOL}/{snapshot_id}/{name}"


def pool_parts(shard: str) -> tuple[str, str] | None:
    """(writer snapshot id, file name) of a pooled shard name, else None."""
    match = _POOLED.fullmatch(shard) if isinstance(shard, str) else None
    if match and SNAPSHOT_ID.fullmatch(match[1]) and is_file_name(match[2]):
        return match[1], match[2]
    return None


def pooled_mask(shards: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Which of an index's shard names are in the pool (null: False), for a
    whole column at once; the names were checked when the index was read."""
    return pc.starts_with(pc.fill_null(shards, ""), f"{POOL}/")


def is_shard_name(shard: object) -> bool:
    """Whether `shard` is a name a shard index may hold (see module doc)."""
    return is_file_name(shard) or pool_parts(shard) is not None


def parent(path: str) -> str:
    """The directory holding `path` (a local path or a gs:// URI)."""
    return path.rstrip("/").rsplit("/", 1)[0]


def shard_location(run_dir: str, shard: str) -> str:
    """The path of the shard an index names, for the run at `run_dir`
    (ValueError for a name no index may hold)."""
    run_dir = run_dir.rstrip("/")
    if is_file_name(shard):
        return f"{run_dir}/shards/{shard}"
    if pool_parts(shard) is not None:
        return f"{parent(run_dir)}/{shard}"
    raise ValueError(f"{shard!r} is not a shard name: refused, not read")


def run_relative(shard: str) -> str:
    """The shard's path relative to the run directory, as a manifest lists
    it: `shards/NAME.tar` or `../pool/ID/NAME.tar`."""
    if is_file_name(shard):
        return f"shards/{shard}"
    if pool_parts(shard) is not None:
        return f"{_UP}{shard}"
    raise ValueError(f"{shard!r} is not a shard name")


def from_run_relative(relative: str) -> str | None:
    """The shard name of a manifest's `../pool/ID/NAME.tar` path, else None."""
    if relative.startswith(_UP) and pool_parts(relative[len(_UP) :]):
        return relative[len(_UP) :]
    return None


def listed_path(run_dir: str, relative: str) -> str:
    """Where a manifest path lives: inside the run, or a pooled shard."""
    shard = from_run_relative(relative)
    if shard is not None:
        return f"{parent(run_dir.rstrip('/'))}/{shard}"
    return f"{run_dir.rstrip('/')}/{relative}"
