"""What `oibeam gc` keeps, expires, deletes and erases, decided from what it
found under a snapshot ROOT (no I/O here).

Retention: the complete snapshots (ROOT/ID with `_SUCCESS`) are ordered by
the publish time `_SUCCESS` records (else the manifest's `finished`). One is
kept if it is among the newest `keep`, or was published within `keep_days`
days, or is the one ROOT/LATEST names; every other complete snapshot expires.
Unfinished snapshot directories (no `_SUCCESS`) are never touched: a rerun
resumes them.

Pool: a file under ROOT/pool/ is kept if a kept snapshot's manifest lists it,
or it is the erasure record (`X.erased.json`) of such a shard X, or it lies
under ROOT/pool/U of an unfinished snapshot U, or it is the `_EXPIRED` mark of
a pool directory that still holds a kept shard; every other one is deleted.
`_EXPIRED` marks ROOT/pool/W of a snapshot W that gc expired while later
snapshots still share its shards: a snapshot run refuses to reuse the id W
(its sweep of ROOT/pool/W would delete them).

Erasure: in each kept shard X, the images some kept snapshot lists in
tables/deleted for X and no kept snapshot's shard index lists in X.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from oibeam.schemas import snapshot as snapshot_schema
from oibeam.schemas.snapshot import POOL
from oibeam.transforms.publish.publish_snapshot import recorded_time

EXPIRED = snapshot_schema.EXPIRED  # in ROOT/pool/W: W expired, its shards live on
RECORD_SUFFIX = ".erased.json"  # beside an erased shard X: X.erased.json


@dataclass(frozen=True)
class Found:
    """A snapshot directory under ROOT: complete (with its publish time) or not."""

    snapshot_id: str
    complete: bool
    published: datetime.datetime | None = None
    bytes: int = 0


@dataclass(frozen=True)
class Retention:
    kept: tuple[str, ...]  # newest first
    expired: tuple[str, ...]  # newest first
    unfinished: tuple[str, ...]  # sorted


def published_at(success: str, finished: str | None = None) -> datetime.datetime:
    """When a snapshot was published: the first line of its `_SUCCESS`
    (`# published <ISO time>`, or only the time before digests were recorded),
    else the manifest's `finished`; ValueError if neither is a time."""
    for text in (recorded_time(success), finished):
        try:
            when = datetime.datetime.fromisoformat(str(text).strip())
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        return when
    raise ValueError("neither _SUCCESS nor the manifest says when it was published")


def retain(
    found: Iterable[Found],
    latest: str | None,
    keep: int | None,
    keep_days: float | None,
    now: datetime.datetime,
) -> Retention:
    """Which complete snapshots are kept and which expire (module doc)."""
    if keep is None and keep_days is None:
        raise ValueError("give --keep N, --keep-days D or both")
    if keep is not None and keep < 1:
        raise ValueError("--keep must be at least 1")
    found = list(found)
    complete = sorted(
        (f for f in found if f.complete),
        key=lambda f: (f.published, f.snapshot_id),
        reverse=True,
    )
    kept, expired = [], []
    for n, snapshot in enumerate(complete):
        recent = keep_days is not None and now - snapshot.published <= (
            datetime.timedelta(days=keep_days)
        )
        newest = keep is not None and n < keep
        if newest or recent or snapshot.snapshot_id == latest:
            kept.append(snapshot.snapshot_id)
        else:
            expired.append(snapshot.snapshot_id)
    unfinished = sorted(f.snapshot_id for f in found if not f.complete)
    return Retention(tuple(kept), tuple(expired), tuple(unfinished))


def writer_of(name: str) -> str | None:
    """W of a pool path `pool/W/...` (relative to ROOT), else None."""
    parts = name.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == POOL else None


def mark_of(writer: str) -> str:
    """The `_EXPIRED` mark of ROOT/pool/W, relative to ROOT."""
    return f"{POOL}/{writer}/{EXPIRED}"


@dataclass(frozen=True)
class PoolPlan:
    delete: tuple[str, ...]  # pool files (relative to ROOT), sorted
    marks: tuple[str, ...]  # writers W whose ROOT/pool/W must be marked first


def plan_pool(
    files: Iterable[str],
    referenced: set[str],
    unfinished: Iterable[str],
    kept: Iterable[str],
    expired: Iterable[str] = (),
) -> PoolPlan:
    """Which of the pool `files` (paths relative to ROOT, `pool/...`) go
    (module doc), and which pool directories are marked `_EXPIRED` before
    anything is deleted: those of the `expired` snapshots, and those holding
    shards of snapshots that are gone. `referenced`: the pooled shards
    (`pool/W/NAME.tar`) the kept snapshots list. A mark of a directory that
    keeps no shard is deleted with the rest of it."""
    unfinished, kept = set(unfinished), set(kept)
    live = {writer_of(name) for name in referenced} - {None}
    marks = sorted((set(expired) | live) - kept - unfinished)
    delete = []
    for name in sorted(set(files) | {mark_of(w) for w in marks}):
        writer = writer_of(name)
        spared = (
            writer in unfinished
            or name in referenced
            or name.removesuffix(RECORD_SUFFIX) in referenced
            or (name == mark_of(writer) and writer in live and writer not in kept)
        )
        if not spared:
            delete.append(name)
    return PoolPlan(tuple(delete), tuple(marks))


def dead_images(
    deleted: Iterable[tuple[str, str]], live: Iterable[tuple[str, str]]
) -> dict[str, set[str]]:
    """shard -> the ImageIDs to erase from it: (ImageID, shard) pairs kept
    snapshots list as deleted, less those any kept shard index lists."""
    dead: dict[str, set[str]] = {}
    for image_id, shard in deleted:
        dead.setdefault(shard, set()).add(image_id)
    for image_id, shard in live:
        dead.get(shard, set()).discard(image_id)
    return {shard: ids for shard, ids in dead.items() if ids}
