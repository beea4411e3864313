"""Claims on a snapshot root (no Beam here): one run per snapshot id at a time,
and `oibeam gc` never alongside a snapshot run.

A run claims ROOT/<id> before it plans anything, and a second run of the same
--snapshot-id is refused while the claim is held: two runs writing one snapshot
directory could publish a snapshot whose files come from both. `oibeam gc`
holds the claim `.gc.claim` on ROOT while it deletes; it refuses to start
while any snapshot claim is held, and a snapshot run, once it holds its own
claim, waits while gc's is held. Each side takes its claim before looking for
the other's, so of two that start together at least one sees the other.

A claim is not a mark left behind: a run that stopped, even killed, no longer
holds it, so rerunning the id resumes the snapshot.

- Locally, an exclusive lock (flock) on ROOT/<name>, which the system
  releases when the process ends however it ends.
- On GCS, the object ROOT/<name> created with a generation-0 precondition
  (only one creator wins), holding its owner and the time its lease runs out.
  The holder renews the lease while it runs and deletes the object when done;
  a claim whose lease ran out (its run died) is taken over, again with a
  generation precondition.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator

from oibeam.transforms.common.gcs_client import storage_client

_LOG = logging.getLogger(__name__)
LEASE_SECONDS = 600.0  # a GCS claim outlives its run by at most this
RENEW_SECONDS = 60.0
GC_CLAIM = ".gc.claim"  # held by `oibeam gc` on the root it cleans
GC_WAIT_SECONDS = 600.0  # how long a snapshot run waits for gc to finish
_CLAIM = re.compile(r"\.(.+)\.claim")


class SnapshotClaimed(RuntimeError):
    """Another run is building this snapshot id."""


class RootBusy(SnapshotClaimed):
    """gc found a snapshot being built, or a snapshot run waited too long for gc."""


def claim_name(snapshot_id: str) -> str:
    return f".{snapshot_id}.claim"


def _owner(lease: float) -> dict:
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": now.isoformat(timespec="seconds"),
        "expires": (now + datetime.timedelta(seconds=lease)).isoformat(),
    }


def _who(owner: dict | None) -> str:
    if not owner:
        return ""
    return (
        f" (pid {owner.get('pid')} on {owner.get('host')} since {owner.get('since')})"
    )


def _refusal(root: str, snapshot_id: str, owner: dict | None) -> SnapshotClaimed:
    return SnapshotClaimed(
        f"snapshot {snapshot_id} under {root} is being built by another run"
        f"{_who(owner)}; wait for it, or rerun later to resume it"
    )


def _check_root(root: str) -> str:
    root = root.rstrip("/")
    if "://" in root and not root.startswith("gs://"):
        raise ValueError(f"{root}: snapshots are claimed on local paths and gs:// only")
    return root


@contextlib.contextmanager
def claimed(
    root: str,
    snapshot_id: str,
    lease: float = LEASE_SECONDS,
    renew: float = RENEW_SECONDS,
) -> Iterator[None]:
    """Holds the claim on ROOT/<snapshot_id> for the block; SnapshotClaimed
    when another run holds it."""
    root = _check_root(root)

    def refuse(owner: dict | None) -> SnapshotClaimed:
        return _refusal(root, snapshot_id, owner)

    with claimed_name(root, claim_name(snapshot_id), refuse, lease, renew):
        yield


@contextlib.contextmanager
def claimed_name(
    root: str,
    name: str,
    refuse: Callable[[dict | None], Exception] | None = None,
    lease: float = LEASE_SECONDS,
    renew: float = RENEW_SECONDS,
) -> Iterator[None]:
    """Holds the claim ROOT/<name> for the block; refuse(owner or None) is
    raised when another process holds it (by default SnapshotClaimed)."""
    root = _check_root(root)
    if refuse is None:

        def refuse(owner: dict | None) -> Exception:
            return SnapshotClaimed(f"{root}/{name} is held by another run{_who(owner)}")

    if root.startswith("gs://"):
        with _gcs_claim(root, name, refuse, lease, renew):
            yield
    else:
        with _local_claim(root, name, refuse):
            yield


@contextlib.contextmanager
def _local_claim(root: str, name: str, refuse) -> Iterator[None]:
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, name)
    # Never removed: removing a lock file lets a waiting run lock a file
    # nobody can see any more while a third creates a new one.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with open(path, encoding="utf-8") as f:
                raise refuse(_parsed(f.read())) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_owner(0)).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _parsed(text: str | bytes) -> dict | None:
    try:
        owner = json.loads(text)
    except ValueError:
        return None
    return owner if isinstance(owner, dict) else None


def _expired(owner: dict | None) -> bool:
    try:
        expires = datetime.datetime.fromisoformat(owner["expires"])
    except (TypeError, KeyError, ValueError):
        return True  # unreadable: its run cannot be renewing it
    return expires < datetime.datetime.now(datetime.timezone.utc)


def _gcs_parts(root: str) -> tuple[str, str]:
    """(bucket, object prefix ending in '/' or empty) of a gs:// root."""
    bucket, _, prefix = root.removeprefix("gs://").partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def _gcs_blob(root: str, name: str):
    bucket, prefix = _gcs_parts(root)
    return storage_client().bucket(bucket).blob(prefix + name)


def _gcs_write(blob, lease: float, generation: int) -> int:
    """Writes a fresh lease if the object is still at `generation` (0: does
    not exist); returns the new generation, PreconditionFailed otherwise."""
    blob.upload_from_string(
        json.dumps(_owner(lease)),
        content_type="application/json",
        if_generation_match=generation,
    )
    return int(blob.generation)


@contextlib.contextmanager
def _gcs_claim(root: str, name: str, refuse, lease: float, renew: float):
    from google.api_core.exceptions import NotFound, PreconditionFailed

    blob = _gcs_blob(root, name)
    try:
        generation = _gcs_write(blob, lease, 0)
    except PreconditionFailed:
        held = blob.bucket.get_blob(blob.name)
        owner = _parsed(held.download_as_bytes()) if held is not None else None
        if held is not None and not _expired(owner):
            raise refuse(owner) from None
        _LOG.info("taking over the expired claim %s/%s", root, name)
        try:
            generation = _gcs_write(blob, lease, held.generation if held else 0)
        except PreconditionFailed:  # another run took it over first
            raise refuse(None) from None
    state = {"generation": generation}
    stop = threading.Event()

    def keep_renewing() -> None:
        while not stop.wait(renew):
            try:
                state["generation"] = _gcs_write(blob, lease, state["generation"])
            except PreconditionFailed:
                _LOG.error("lost the claim %s/%s: another run took it over", root, name)
                return
            except Exception as e:  # a network blip: try again next round
                _LOG.warning("could not renew the claim on %s: %s", blob.name, e)

    renewer = threading.Thread(target=keep_renewing, daemon=True, name="claim")
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        with contextlib.suppress(NotFound, PreconditionFailed):
            blob.delete(if_generation_match=state["generation"])


def held_claims(root: str, names: list[str] | None = None) -> list[str]:
    """The claims on ROOT held by a live run: of `names`, or of every
    `.*.claim` there (sorted). Locally a claim is held if a non-blocking
    flock on it fails (taken and released at once); on GCS if its object
    exists and its lease has not run out."""
    root = _check_root(root)
    if root.startswith("gs://"):
        return _gcs_held(root, names)
    if names is None:
        try:
            names = [n for n in os.listdir(root) if _CLAIM.fullmatch(n)]
        except FileNotFoundError:
            return []
    held = []
    for name in sorted(names):
        try:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
        except FileNotFoundError:
            continue  # never claimed here
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(name)
        finally:
            os.close(fd)  # and any lock this took with it
    return held


def _gcs_held(root: str, names: list[str] | None) -> list[str]:
    bucket_name, prefix = _gcs_parts(root)
    bucket = storage_client().bucket(bucket_name)
    if names is None:
        blobs = [
            b
            for b in bucket.list_blobs(prefix=f"{prefix}.", delimiter="/")
            if _CLAIM.fullmatch(b.name[len(prefix) :])
        ]
    else:
        blobs = [b for b in (bucket.get_blob(prefix + n) for n in names) if b]
    held = []
    for blob in blobs:
        with contextlib.suppress(Exception):  # gone meanwhile: not held
            if not _expired(_parsed(blob.download_as_bytes())):
                held.append(blob.name[len(prefix) :])
    return sorted(held)


def wait_for_gc(root: str, timeout: float = GC_WAIT_SECONDS, poll: float = 1.0) -> None:
    """Returns once no `oibeam gc` holds its claim on ROOT (a snapshot run
    calls this while it holds its own claim); RootBusy after `timeout`."""
    deadline = time.monotonic() + timeout
    logged = False
    while held_claims(root, [GC_CLAIM]):
        if time.monotonic() >= deadline:
            raise RootBusy(
                f"oibeam gc has been running on {root} for more than "
                f"{timeout:.0f} s: run the snapshot again when it is done"
            )
        if not logged:
            _LOG.info("waiting for oibeam gc on %s to finish", root)
            logged = True
        time.sleep(poll)
