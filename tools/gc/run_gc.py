"""`oibeam gc ROOT`: claim the root, find what is there, decide (plan.py),
then expire, delete and erase, saying each thing done in one line.

1. Claim: gc holds `.gc.claim` on ROOT (transforms/publish/claim) and then
   refuses (RootBusy, exit 2) if any snapshot claim is held: a snapshot
   being built may share the bytes gc would delete. A dry run takes no claim
   (it leaves nothing behind) but refuses the same way.
2. Expire: first `pool/W/_EXPIRED` for each expired W (plan.py), then its
   `_SUCCESS` (no refresh can take it as --previous any more), then the rest
   of ROOT/W. A directory without `_SUCCESS` whose pool is marked expired is
   what an interrupted gc left of an expired snapshot: it goes too. Every
   other unfinished snapshot, and its ROOT/pool/U, is left alone and listed.
3. Pool: every file no kept snapshot needs is deleted (plan.plan_pool);
   local pool directories left empty are removed.
4. Erase: in each kept pooled shard, the members of its dead images
   (erase.py), with an erasure record beside it.

Every decision is made from the listing and the kept snapshots' manifests
and tables, all read before anything is deleted. With dry_run the same lines
say "would" and nothing changes.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.snapshot import POOL, SUCCESS
from oibeam.tools.gc.erase import Untrusted, erase_shard
from oibeam.tools.gc.found import GcError, Survey, read_kept, survey
from oibeam.tools.gc.plan import EXPIRED, mark_of, plan_pool, retain, writer_of
from oibeam.tools.gc.tar_spans import NotATar
from oibeam.transforms.common.filesystem import holds_anything, remove_tree
from oibeam.transforms.common.write_files import write_text
from oibeam.transforms.publish.claim import (
    GC_CLAIM,
    RootBusy,
    claimed_name,
    held_claims,
)


@dataclass(frozen=True)
class GcConfig:
    root: str
    keep: int | None
    keep_days: float | None
    dry_run: bool = False


@dataclass
class Outcome:
    expired: int = 0
    deleted: int = 0
    erased_shards: int = 0
    erased_images: int = 0
    freed: int = 0
    failures: list[str] = field(default_factory=list)

    def total(self, dry_run: bool) -> str:
        verbs = ("expire", "delete", "erase", "free")
        if not dry_run:
            verbs = ("expired", "deleted", "erased", "freed")
        return (
            f"total: {'would ' if dry_run else ''}{verbs[0]} {self.expired} "
            f"snapshot(s), {verbs[1]} {self.deleted} pool file(s), {verbs[2]} "
            f"{self.erased_images} image(s) from {self.erased_shards} shard(s); "
            f"{verbs[3]} {self.freed:,} bytes"
        )


class NotARoot(ValueError):
    """ROOT is not a snapshot root gc can work on (a usage error)."""


def check_root(root: str) -> str:
    """ROOT without its trailing '/'; NotARoot unless it is a directory on a
    local disk, or a gs:// prefix that holds something."""
    root = root.rstrip("/")
    if "://" in root and not root.startswith("gs://"):
        raise NotARoot(f"{root}: gc works on local paths and gs:// only")
    local = "://" not in root
    if (local and not os.path.isdir(root)) or (not local and not holds_anything(root)):
        raise NotARoot(f"{root}: no such snapshot root")
    return root


def _busy(root: str) -> None:
    """RootBusy if a snapshot run holds its claim on ROOT."""
    building = [n for n in held_claims(root) if n != GC_CLAIM]
    if building:
        snapshot_id = building[0][1 : -len(".claim")]
        raise RootBusy(f"snapshot {snapshot_id} is being built; run gc when it is done")


def _gc_refusal(root: str):
    return lambda owner: RootBusy(f"oibeam gc is already running on {root}")


def run_gc(config: GcConfig, say: Callable[[str], None]) -> Outcome:
    """Runs gc on config.root; `say` gets each line of output. RootBusy when
    a snapshot is being built, GcError when it cannot go on safely."""
    root = check_root(config.root)
    claim = (
        contextlib.nullcontext()
        if config.dry_run
        else claimed_name(root, GC_CLAIM, _gc_refusal(root))
    )
    with claim:
        _busy(root)
        return _collect(root, config, say)


def _collect(root: str, config: GcConfig, say) -> Outcome:
    found = survey(root)
    marked = {w for w in map(writer_of, found.files) if w and mark_of(w) in found.files}
    now = datetime.datetime.now(datetime.timezone.utc)
    retention = retain(
        found.snapshots, found.latest, config.keep, config.keep_days, now
    )
    leftovers = [u for u in retention.unfinished if u in marked]
    unfinished = [u for u in retention.unfinished if u not in marked]
    kept = read_kept(root, retention.kept)
    expired = [*retention.expired, *leftovers]
    pool = plan_pool(
        found.pool_files(), set(kept.shards), unfinished, retention.kept, expired
    )
    outcome = Outcome()
    if retention.kept:
        say(f"keeping {len(retention.kept)} snapshot(s): {', '.join(retention.kept)}")
    if not config.dry_run:
        for writer in pool.marks:  # before any _SUCCESS goes: see plan.py
            if mark_of(writer) not in found.files:
                write_text(f"{root}/{mark_of(writer)}", f"# expired {now}\n")
    for snapshot_id in expired:
        size = found.size_of(snapshot_id)
        if not config.dry_run:
            _expire(root, snapshot_id)
        verb = "would expire" if config.dry_run else "expired"
        say(f"{verb} snapshot {snapshot_id} ({size:,} bytes)")
        outcome.expired += 1
        outcome.freed += size
    _delete_pool(root, found, pool.delete, config.dry_run, say, outcome)
    _erase(root, kept, config.dry_run, say, outcome)
    for snapshot_id in unfinished:
        size = found.size_of(snapshot_id) + found.size_of(f"{POOL}/{snapshot_id}")
        say(f"unfinished snapshot {snapshot_id} ({size:,} bytes): left alone")
    return outcome


def _expire(root: str, snapshot_id: str) -> None:
    success = f"{root}/{snapshot_id}/{SUCCESS}"
    if FileSystems.exists(success):
        FileSystems.delete([success])  # first: no refresh can start from it
    remove_tree(f"{root}/{snapshot_id}")


def _delete_pool(
    root: str, found: Survey, names, dry_run: bool, say, outcome: Outcome
) -> None:
    for name in names:
        size = found.files.get(name, 0)
        if name.endswith(f"/{EXPIRED}"):
            if not dry_run:  # gc's own mark, of a pool with no kept shard
                FileSystems.delete([f"{root}/{name}"])
            continue
        if not dry_run:
            FileSystems.delete([f"{root}/{name}"])
        say(f"{'would delete' if dry_run else 'deleted'} {name} ({size:,} bytes)")
        outcome.deleted += 1
        outcome.freed += size
    if dry_run or "://" in root:
        return
    pool = os.path.join(root, POOL)
    for directory in sorted({os.path.dirname(n) for n in names}, reverse=True):
        path = os.path.join(root, directory)
        if path != pool and os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)


def _erase(root: str, kept, dry_run: bool, say, outcome: Outcome) -> None:
    for shard in sorted(kept.dead):
        try:
            erasure = erase_shard(
                f"{root}/{shard}", kept.dead[shard], kept.shards[shard], dry_run
            )
        except (NotATar, Untrusted, OSError) as e:
            outcome.failures.append(f"{shard}: {e}")
            say(f"failed to erase from {shard}: {e}")
            continue
        if erasure is None:
            continue
        verb = "would erase" if dry_run else "erased"
        say(f"{verb} {len(erasure.images)} image(s) from {shard}")
        outcome.erased_shards += 1
        outcome.erased_images += len(erasure.images)


__all__ = ["GcConfig", "GcError", "NotARoot", "Outcome", "RootBusy", "run_gc"]
