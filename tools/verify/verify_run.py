"""`oibeam verify RUN`: read the run's manifest and kind, run every check, report."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.snapshot import MANIFEST, SUCCESS
from oibeam.tools.runs import (
    BadManifest,
    NotARun,
    parse_manifest,
    resolve_run,
    shape_problems,
)
from oibeam.tools.verify.counts import (
    check_inputs,
    check_rows,
    check_trainable,
    reconcile,
)
from oibeam.tools.verify.files import check_file, strays
from oibeam.tools.verify.findings import Report
from oibeam.tools.verify.listing import listing_of, read_bytes
from oibeam.transforms.publish.publish_snapshot import (
    manifest_digest,
    recorded_digest,
)

_THREADS = 4

# What a kind of run does not give to check, said in the report.
_NOT_FETCHED = (
    "a tables run fetched no images: there are no statuses, shard index, "
    "shards or image bytes to check"
)


def _unsigned(kind: str) -> str:
    return (
        f"a {kind} run writes no {SUCCESS}: its {MANIFEST} is what marks it "
        "complete, and nothing records the manifest's digest (manifest not signed)"
    )


_NOT_SIGNED = (
    f"manifest not signed: {SUCCESS} records no digest of {MANIFEST} (a snapshot "
    "published before digests were recorded), so an edited manifest cannot be "
    "told from the one the run wrote"
)


def run_kind(manifest: dict[str, Any]) -> str:
    """tables, fetch or snapshot: the kind of run, from its command and what
    its manifest records (a snapshot section; shards or statuses), so an
    edited `command` cannot skip a check."""
    command = manifest.get("command")
    if command == "snapshot" or "snapshot" in manifest:
        return "snapshot"
    if (
        command == "fetch"
        or "shards" in manifest["tables"]
        or "statuses" in manifest
        or "counts" in manifest
    ):
        return "fetch"
    return "tables"


def _check_digest(directory: str, manifest: bytes, report: Report) -> bool:
    """The manifest's digest against the one `_SUCCESS` records (a note if it
    records none); False if there is no `_SUCCESS`."""
    success = f"{directory}/{SUCCESS}"
    if not FileSystems.exists(success):
        return False
    try:
        recorded = recorded_digest(read_bytes(success).decode("utf-8", "replace"))
    except ValueError as e:
        report.problems.append(f"{e}: the manifest's digest cannot be checked")
        return True
    actual = manifest_digest(manifest)
    if recorded is None:
        report.notes.append(_NOT_SIGNED)
    elif recorded != actual:
        report.problems.append(
            f"{MANIFEST} has changed since the snapshot was published: its "
            f"SHA-256 is {actual[:16]}..., {SUCCESS} records {recorded[:16]}..."
        )
    return True


def _read_manifest(directory: str, report: Report) -> dict | None:
    """The manifest, with its digest checked against `_SUCCESS`; None (and a
    problem) unless it is one oibeam writes."""
    try:
        data = read_bytes(f"{directory}/{MANIFEST}")
    except Exception as e:  # whatever the filesystem raises: reported, not lost
        report.problems.append(
            f"cannot read {MANIFEST} ({e}): the run did not finish, or this is "
            "not a run directory"
        )
        return None
    success = _check_digest(directory, data, report)
    try:
        manifest = parse_manifest(data)
    except BadManifest as e:
        report.problems.append(f"{MANIFEST}: {e}")
        return None
    shape = shape_problems(manifest)
    if shape:
        report.problems += [f"{MANIFEST} is not an oibeam manifest: {p}" for p in shape]
        return None
    report.kind = run_kind(manifest)
    if not success and report.kind == "snapshot":
        report.problems.append(f"no {SUCCESS}: the snapshot is not complete")
    elif not success:
        report.notes.append(_unsigned(report.kind))
    return manifest


def verify_snapshot(path: str, quick: bool = False, deep: bool = False) -> Report:
    """Checks the run at `path` (RUN_DIR, or a snapshot ROOT through LATEST);
    `quick`: sizes and row counts only; `deep`: every ok image's MD5 too."""
    try:
        directory = resolve_run(path, complete=False)
    except NotARun as e:
        report = Report(path.rstrip("/"))
        report.problems.append(str(e))
        return report
    report = Report(directory)
    manifest = _read_manifest(directory, report)
    if manifest is None:
        return report
    listing = listing_of(manifest, report)
    check_rows(manifest, listing, report)
    check_inputs(directory, manifest, listing, report)
    check_trainable(directory, listing, report)
    shards = {}
    if report.kind == "tables":
        report.notes.insert(0, _NOT_FETCHED)
    else:
        shards = reconcile(directory, manifest, listing, report)
    entries = [
        (table, entry) for table, files in listing.files.items() for entry in files
    ]
    with ThreadPoolExecutor(_THREADS) as pool:
        for problems, notes in pool.map(
            lambda te: check_file(directory, te[0], te[1], quick, shards, deep),
            entries,
        ):
            report.problems += problems
            report.notes += notes
    report.checked["files"] = len(entries)
    if report.kind != "tables":
        report.checked["ok images"] = sum(len(v) for v in shards.values())
    report.problems += [
        f"not in the manifest: {p}" for p in strays(directory, manifest, listing.paths)
    ]
    return report
