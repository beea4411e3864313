"""Publishing a snapshot: `_SUCCESS` after the manifest, then ROOT/LATEST,
atomically (no Beam here: publish_step.PublishSnapshot runs publish() as the
pipeline's last step, and an unchanged refresh calls it directly).

`_SUCCESS` records when the snapshot was published and the SHA-256 of its
manifest as `sha256sum` writes it (`sha256sum -c _SUCCESS` in the snapshot
directory checks it), so an edited manifest is told from the one the run
wrote. It is a checksum, not a signature: whoever can rewrite the manifest can
rewrite `_SUCCESS` too.

LATEST holds the id of the newest complete snapshot. It moves in one atomic
step and only from the value the run saw when it started: on GCS an upload
with a generation precondition (never read-then-write), on a local disk a
temporary file renamed over it under an exclusive lock. If another run moved
LATEST in the meantime, this run's snapshot is complete all the same, but
LATEST is left alone and the run fails with LatestMoved, saying so.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import os
import re
import uuid
from dataclasses import dataclass

from oibeam.schemas.snapshot import LATEST, MANIFEST, SUCCESS
from oibeam.transforms.common import files
from oibeam.transforms.common.gcs_client import storage_client
from oibeam.transforms.common.write_files import write_text

# A line of `sha256sum` output for the manifest (`*`: its binary mode).
_DIGEST_LINE = re.compile(rf"([0-9a-f]{{64}}) [ *]{re.escape(MANIFEST)}")


class LatestMoved(RuntimeError):
    """ROOT/LATEST changed while this snapshot was being built."""


@dataclass(frozen=True)
class Latest:
    """What ROOT/LATEST said: the snapshot id (None: no LATEST yet) and the
    token to move it from (GCS generation, or the local file's text)."""

    snapshot_id: str | None
    token: str


def check_publishable(root: str) -> None:
    """ValueError unless LATEST can be moved atomically under `root`."""
    if "://" in root and not root.startswith("gs://"):
        raise ValueError(
            f"--output {root}: snapshots publish LATEST atomically on local "
            "paths and gs:// only"
        )


def _gcs_blob(root: str):
    bucket, _, prefix = root.removeprefix("gs://").partition("/")
    name = f"{prefix.rstrip('/')}/{LATEST}" if prefix.strip("/") else LATEST
    return storage_client().bucket(bucket).blob(name)


def read_latest(root: str) -> Latest:
    root = root.rstrip("/")
    if root.startswith("gs://"):
        from google.api_core.exceptions import NotFound, PreconditionFailed

        blob = _gcs_blob(root)
        while True:  # the text of exactly the generation we return
            found = blob.bucket.get_blob(blob.name)
            if found is None:
                return Latest(None, "0")
            generation = found.generation  # a download may reset the property
            try:
                text = found.download_as_bytes(if_generation_match=generation)
            except (NotFound, PreconditionFailed):
                continue  # replaced or deleted in between: look again
            return Latest(text.decode().strip() or None, str(generation))
    path = os.path.join(root, LATEST)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return Latest(None, "")
    return Latest(text.strip() or None, text)


def move_latest(root: str, snapshot_id: str, expected: Latest) -> None:
    """Points ROOT/LATEST at `snapshot_id`, if it still says what `expected`
    saw; LatestMoved otherwise (unless it already names `snapshot_id`: a
    retried publish)."""
    root = root.rstrip("/")
    text = f"{snapshot_id}\n"
    if root.startswith("gs://"):
        from google.api_core.exceptions import PreconditionFailed

        try:
            _gcs_blob(root).upload_from_string(
                text, content_type="text/plain", if_generation_match=int(expected.token)
            )
            return
        except PreconditionFailed:
            now = read_latest(root)
    else:
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, f".{LATEST}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            now = read_latest(root)
            if now.token == expected.token:
                temp = os.path.join(root, f".tmp-{uuid.uuid4().hex}-{LATEST}")
                with open(temp, "w", encoding="utf-8") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(temp, os.path.join(root, LATEST))
                return
    if now.snapshot_id == snapshot_id:
        return
    raise LatestMoved(
        f"{root}/{LATEST} moved while this snapshot was built (it said "
        f"{expected.snapshot_id!r} at the start, now {now.snapshot_id!r}): "
        f"snapshot {snapshot_id} is complete, but LATEST was left alone"
    )


def manifest_digest(data: bytes) -> str:
    """The SHA-256 (hex) of a manifest's bytes, as `_SUCCESS` records it."""
    return hashlib.sha256(data).hexdigest()


_PUBLISHED = "# published "


def success_text(manifest: bytes, published: str) -> str:
    """What `_SUCCESS` holds: a comment with the time, then the manifest's
    digest line."""
    return f"{_PUBLISHED}{published}\n{manifest_digest(manifest)}  {MANIFEST}\n"


def recorded_time(success: str) -> str:
    """The publish time a `_SUCCESS` records, as written: its first line less
    the `# published ` of success_text (one written before digests were
    holds only the time)."""
    first = success.splitlines()[0].strip() if success.strip() else ""
    return first.removeprefix(_PUBLISHED)


def recorded_digest(success: str) -> str | None:
    """The manifest digest a `_SUCCESS` records; None if it records none (one
    written before digests were, which holds only a time); ValueError if a
    line naming the manifest is not one digest line."""
    lines = [line.strip() for line in success.splitlines()]
    named = [line for line in lines if MANIFEST in line and not line.startswith("#")]
    if not named:
        return None
    found = _DIGEST_LINE.fullmatch(named[0])
    if len(named) > 1 or not found:
        raise ValueError(
            f"{SUCCESS} should record one digest line `<sha256>  {MANIFEST}`, "
            f"it has {named!r}"
        )
    return found.group(1)


def publish(manifest_path: str, root: str, snapshot_id: str, expected: Latest) -> str:
    """After the manifest: writes `_SUCCESS` with the digest of the manifest
    as stored, then moves LATEST. Returns the snapshot directory."""
    directory = manifest_path.rsplit("/", 1)[0]
    with files.open(manifest_path) as handle:
        manifest = handle.read()
    published = datetime.datetime.now(datetime.timezone.utc).isoformat()
    write_text(f"{directory}/{SUCCESS}", success_text(manifest, published))
    move_latest(root, snapshot_id, expected)
    return directory


def snapshot_complete(directory: str) -> bool:
    return files.exists(f"{directory.rstrip('/')}/{SUCCESS}")
