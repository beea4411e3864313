"""A snapshot s1 and its refresh s2 over a changing release, and a fetch run of
s2's release: what the readers of a snapshot (tools/dataset, the webdataset
export) are tested on.

Between s1 and s2 one image is removed from the release, one replaced (new
bytes: fetched again into a new pool tar, its old bytes left in s1's) and one
relabelled (its bytes shared). Both snapshots' pool tars then hold bytes that
s2 must not yield: what tables/deleted lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from support.runs import run_cli
from support.snapshot_release import FLAGS, Photo, Release, jpeg

# Small tars: several per snapshot, so a refresh shares some and not others.
SHARD_FLAGS = [*FLAGS, "--shard-bytes", "2500"]
IDS = [f"{i:016x}" for i in (0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77)]
REMOVED, REPLACED, RELABELLED, GONE = IDS[0], IDS[1], IDS[2], IDS[6]

Labels = set[tuple[str, float, str]]  # (LabelName, Confidence, Source)


@dataclass(frozen=True)
class Refreshed:
    root: Path
    s1: Path
    s2: Path
    fetch: Path
    # ImageID -> (bytes, labels) of the images each run holds (the ok ones).
    expected_s1: dict[str, tuple[bytes, Labels]]
    expected_s2: dict[str, tuple[bytes, Labels]]
    old_bytes: dict[str, bytes]  # of REMOVED and REPLACED, as s1 has them


def _expected(release: Release) -> dict[str, tuple[bytes, Labels]]:
    return {
        image_id: (
            release.bytes_of(image_id),
            {(label, confidence, "machine") for label, confidence in photo.labels},
        )
        for image_id, photo in release.photos.items()
        if image_id != GONE
    }


def build(server, base: Path) -> Refreshed:
    """Runs s1, the refresh s2 and a fetch of s2's release under `base`."""
    release = Release(server, base / "release", base.name)
    for n, image_id in enumerate(IDS):
        release.add(Photo(image_id, seed=n, labels=[("/m/cat", 0.9), ("/m/dog", 0.4)]))
    release.photos[GONE].route = "/status/404/{name}"
    root = base / "root"
    snapshot = ["snapshot", "--output", root, *SHARD_FLAGS, "--previous", "latest"]
    assert run_cli(*snapshot, *release.write(), "--snapshot-id", "s1") == 0
    expected_s1 = _expected(release)
    old_bytes = {i: jpeg(release.photos[i].seed) for i in (REMOVED, REPLACED)}

    release.remove(REMOVED)
    release.replace(REPLACED, seed=100)
    release.photos[RELABELLED].labels = [("/m/car", 0.7)]
    assert run_cli(*snapshot, *release.write(), "--snapshot-id", "s2") == 0
    fetch = base / "fetch"
    assert run_cli("fetch", *release.write(), "--output", fetch, *SHARD_FLAGS) == 0
    return Refreshed(
        root,
        root / "s1",
        root / "s2",
        fetch,
        expected_s1,
        _expected(release),
        old_bytes,
    )
