"""One run per snapshot id at a time (no Beam here).

A run claims ROOT/<id> before it plans anything, and a second run of the same
--snapshot-id is refused while the claim is held: two runs writing one snapshot
directory could publish a snapshot whose files come from both. A claim is not
a mark left behind: a run that stopped, even killed, no longer holds it, so
rerunning the id resumes the snapshot.

- Locally, an exclusive lock (flock) on ROOT/.<id>.claim, which the system
  releases when the process ends however it ends.
- On GCS, the object ROOT/.<id>.claim created with a generation-0 precondition
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
import socket
import threading
from collections.abc import Iterator

from oibeam.transforms.common.gcs_client import storage_client

_LOG = logging.getLogger(__name__)
LEASE_SECONDS = 600.0  # a GCS claim outlives its run by at most this
RENEW_SECONDS = 60.0


class SnapshotClaimed(RuntimeError):
    """Another run is building this snapshot id."""


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


def _refusal(root: str, snapshot_id: str, owner: dict | None) -> SnapshotClaimed:
    who = (
        f" (pid {owner.get('pid')} on {owner.get('host')} since {owner.get('since')})"
        if owner
        else ""
    )
    return SnapshotClaimed(
        f"snapshot {snapshot_id} under {root} is being built by another run{who}; "
        "wait for it, or rerun later to resume it"
    )


@contextlib.contextmanager
def claimed(
    root: str,
    snapshot_id: str,
    lease: float = LEASE_SECONDS,
    renew: float = RENEW_SECONDS,
) -> Iterator[None]:
    """Holds the claim on ROOT/<snapshot_id> for the block; SnapshotClaimed
    when another run holds it."""
    root = root.rstrip("/")
    if root.startswith("gs://"):
        with _gcs_claim(root, snapshot_id, lease, renew):
            yield
    elif "://" in root:
        raise ValueError(f"{root}: snapshots are claimed on local paths and gs:// only")
    else:
        with _local_claim(root, snapshot_id):
            yield


@contextlib.contextmanager
def _local_claim(root: str, snapshot_id: str) -> Iterator[None]:
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, claim_name(snapshot_id))
    # Never removed: removing a lock file lets a waiting run lock a file
    # nobody can see any more while a third creates a new one.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with open(path, encoding="utf-8") as f:
                raise _refusal(root, snapshot_id, _parsed(f.read())) from None
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


def _gcs_blob(root: str, snapshot_id: str):
    bucket, _, prefix = root.removeprefix("gs://").partition("/")
    name = f"{prefix}/{claim_name(snapshot_id)}" if prefix else claim_name(snapshot_id)
    return storage_client().bucket(bucket).blob(name)


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
def _gcs_claim(root: str, snapshot_id: str, lease: float, renew: float):
    from google.api_core.exceptions import NotFound, PreconditionFailed

    blob = _gcs_blob(root, snapshot_id)
    try:
        generation = _gcs_write(blob, lease, 0)
    except PreconditionFailed:
        held = blob.bucket.get_blob(blob.name)
        owner = _parsed(held.download_as_bytes()) if held is not None else None
        if held is not None and not _expired(owner):
            raise _refusal(root, snapshot_id, owner) from None
        _LOG.info("taking over the expired claim on %s/%s", root, snapshot_id)
        try:
            generation = _gcs_write(blob, lease, held.generation if held else 0)
        except PreconditionFailed:  # another run took it over first
            raise _refusal(root, snapshot_id, None) from None
    state = {"generation": generation}
    stop = threading.Event()

    def keep_renewing() -> None:
        while not stop.wait(renew):
            try:
                state["generation"] = _gcs_write(blob, lease, state["generation"])
            except PreconditionFailed:
                _LOG.error(
                    "lost the claim on %s/%s: another run took it over",
                    root,
                    snapshot_id,
                )
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
