"""An unchanged refresh, published without a pipeline.

A nightly `oibeam snapshot --previous latest` over a release that did not
change would start a pipeline (and load Beam, ~1.5 s; on Dataflow a job, minutes)
only to find every image `carried` and write the parent's rows again. When
- the parent is complete and recorded the same refresh key (the options that
  decide what a snapshot holds, and the oibeam version: refresh_key),
- every input file has the size and MD5 the parent's manifest gives it (whole
  files or the same byte ranges; hashed again here, not trusted by name),
- and the parent leaves nothing to do: no retryable failure (nor, with
  --retry-all, any failure) and every ok image in a pooled shard,
the pipeline's outcome is known: the parent's tables, every image carried.
carry_over writes it and this module publishes it as the pipeline does
(claims, _SUCCESS, LATEST), then the report. Anything else, or --replan, and
refresh_if_unchanged returns None: the pipeline runs.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from typing import Any

import pyarrow.compute as pc

from oibeam.pipelines import carry_over
from oibeam.pipelines.eval_duplicates import listed_in
from oibeam.pipelines.layout import OutputExists, UsageError
from oibeam.pipelines.options.beam_commands import SnapshotConfig
from oibeam.pipelines.versions import versions
from oibeam.schemas import fetch as fetch_schema
from oibeam.schemas import snapshot as snapshot_schema
from oibeam.tools.runs import NotARun, Run
from oibeam.transforms.common import files
from oibeam.transforms.common.filesystem import holds_anything
from oibeam.transforms.publish.claim import claimed, wait_for_gc
from oibeam.transforms.publish.publish_snapshot import (
    check_publishable,
    publish,
    read_latest,
    snapshot_complete,
)
from oibeam.transforms.shard.locations import pooled_mask

_LOG = logging.getLogger(__name__)
_HASH_CHUNK = 8 << 20
# What a snapshot holds does not depend on these: where it goes, its id, and
# how patiently images are fetched (an unchanged refresh fetches none; the
# pipeline refetches on --source, --url-template or --verify only).
_FETCH_KEPT = ("source", "url_template", "verify", "phash")
_INPUT_FILES = ("images", "labels", "classes", "boxes", "hierarchy")


def refresh_key(config: SnapshotConfig) -> str:
    """The SHA-256 of the options that decide a snapshot's content, as given
    (before label names are resolved), with the oibeam version."""
    options = config.as_json()
    kept = {
        "inputs": {k: v for k, v in options["inputs"].items() if k not in _INPUT_FILES},
        "output": {"parquet_compression": options["output"]["parquet_compression"]},
        "rule": options["rule"],
        "labels": options["labels"],
        "selection": options["selection"],
        "duplicates": options["duplicates"],
        "fetch": {k: options["fetch"][k] for k in _FETCH_KEPT},
        "oibeam": versions()["oibeam"],
    }
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def current_inputs(config: SnapshotConfig) -> list[tuple[str, str]]:
    """(kind, path) of every input file, in the pipeline's order (kinds in
    turn, each pattern's files sorted), the --hierarchy file last."""
    found = []
    inputs = config.inputs
    for kind in ("images", "labels", "classes", "boxes"):
        for pattern in getattr(inputs, kind) or ():
            matched = files.match([pattern])[0].metadata_list
            found += [(kind, p) for p in sorted(m.path for m in matched)]
    if inputs.hierarchy:
        found.append(("hierarchy", inputs.hierarchy))
    return found


def _md5(path: str, start: int = 0, end: int | None = None) -> str:
    digest = hashlib.md5()
    with files.open(path) as f:
        f.seek(start)
        left = end - start if end is not None else None
        while left is None or left > 0:
            chunk = f.read(_HASH_CHUNK if left is None else min(left, _HASH_CHUNK))
            if not chunk:
                break
            digest.update(chunk)
            left = None if left is None else left - len(chunk)
    return digest.hexdigest()


def changed_input(recorded: list[dict], current: list[tuple[str, str]]) -> str | None:
    """What differs between the parent's inputs and these files, or None."""
    if [r.get("kind") for r in recorded] != [kind for kind, _ in current]:
        return "other input files"
    for entry, (_, path) in zip(recorded, current, strict=True):
        if files.size(path) != entry.get("bytes"):
            return f"{path} changed size"
        if "md5_ranges" in entry:
            same = all(
                _md5(path, r["start"], r["end"]) == r["md5"]
                for r in entry["md5_ranges"]
            )
        else:
            same = entry.get("md5") is not None and _md5(path) == entry["md5"]
        if not same:
            return f"{path} changed"
    return None


def work_left(parent: Run, retry_all: bool) -> str | None:
    """Why a refresh of `parent` would fetch or copy something, or None."""
    images = parent.read("images", ["status", "retryable", "shard"])
    if images is None:
        return "the previous snapshot has no images table"
    ok = pc.equal(images["status"], fetch_schema.OK)
    failed = pc.invert(ok)
    if pc.any(pc.and_(failed, pc.fill_null(images["retryable"], False))).as_py():
        return "the previous snapshot has retryable failures"
    if retry_all and pc.any(failed).as_py():
        return "--retry-all, and the previous snapshot has failures"
    if not pc.all(pc.or_(failed, pooled_mask(images["shard"]))).as_py():
        return "the previous snapshot keeps images in its own shards"
    return None


def _parent_path(config: SnapshotConfig) -> str | None:
    previous = config.snapshot.previous
    if previous == "latest":
        latest = read_latest(config.root).snapshot_id
        return f"{config.root}/{latest}" if latest else None
    return f"{config.root}/{previous}" if "/" not in previous else previous


def why_not(
    config: SnapshotConfig, parent: Run, current: list[tuple[str, str]]
) -> str | None:
    """Why this refresh needs the pipeline, or None when it is unchanged;
    `current`: its input files (current_inputs)."""
    manifest = parent.manifest
    if manifest.get("refresh_key") != refresh_key(config):
        return "other options (or oibeam version) than the previous snapshot's"
    return (
        changed_input(manifest.get("inputs", []), current)
        or work_left(parent, config.snapshot.retry_all)
        or listed_in(config.selection, parent)
    )


def _dry_run(beam_args: list[str]) -> bool:
    """Whether Beam is asked only to build the job (--dry_run VALUE: any
    value, as Beam reads it)."""
    return any(a == "--dry_run" or a.startswith("--dry_run=") for a in beam_args)


def refresh_if_unchanged(config: SnapshotConfig, beam_args: list[str]):
    """Publishes the refresh from its parent when nothing changed (see the
    module doc) and returns its snapshot.Outcome; None when the pipeline must
    run it (or only build it: --dry_run)."""
    if not config.snapshot.previous or config.snapshot.replan:
        return None
    if _dry_run(beam_args):
        return None
    if beam_args:  # no pipeline runs, but a mistyped flag is still refused
        from oibeam.pipelines.beam_options import check_known, runner_args

        check_known(runner_args(beam_args))
    try:
        check_publishable(config.root)
    except ValueError as e:
        raise UsageError(str(e)) from e
    snapshot_id = config.snapshot.snapshot_id
    with claimed(config.root, snapshot_id):
        wait_for_gc(config.root)
        latest = read_latest(config.root)
        path = _parent_path(config)
        if path is None or path.rstrip("/") == config.directory:
            return None
        if snapshot_complete(config.directory):
            raise OutputExists(
                f"{config.directory} is a complete snapshot; snapshots are "
                "immutable: choose another --snapshot-id"
            )
        pool = f"{config.root}/{snapshot_schema.POOL}/{snapshot_id}"
        if holds_anything(config.directory) or files.exists(pool):
            return None  # an unfinished attempt or an expired id: the pipeline's
        try:
            if not snapshot_complete(path):
                return None  # the pipeline says what is wrong with it
            parent = Run.load(path)
            current = current_inputs(config)
            reason = why_not(config, parent, current)
        except (NotARun, OSError, ValueError, KeyError) as e:
            reason = f"the previous snapshot could not be compared ({e})"
        if reason:
            _LOG.info("refreshing %s with the pipeline: %s", path, reason)
            return None
        _LOG.info("nothing changed since %s: carrying it over", parent.directory)
        _write(config, parent, latest, path, current)
    return _outcome(config)


def _info(
    config: SnapshotConfig, parent: Run, path: str, current: list[tuple[str, str]]
) -> dict[str, Any]:
    """What this run sets in the parent's manifest."""
    recorded = parent.manifest["options"]
    options = config.as_json()
    options["selection"] = recorded["selection"]  # labels resolved to mids
    inputs = [
        {**entry, "path": p}
        for entry, (_, p) in zip(parent.manifest["inputs"], current, strict=True)
    ]
    return {
        "command": "snapshot",
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "runner": "none: nothing changed since the previous snapshot",
        "versions": versions(),
        "options": options,
        "refresh_key": refresh_key(config),
        "snapshot": {
            "id": config.snapshot.snapshot_id,
            "root": config.root,
            "parent": {"id": parent.manifest["snapshot"]["id"], "path": path},
            "resumed": False,
        },
        "inputs": inputs,
    }


def _write(config: SnapshotConfig, parent: Run, latest, path: str, current) -> None:
    directory = config.directory
    info = _info(config, parent, path, current)
    written = carry_over.write_rewritten(
        parent,
        directory,
        parent.manifest["join_buckets"],
        config.output.parquet_compression,
    )
    carry_over.link_unchanged(parent, directory)
    manifest = carry_over.carried_manifest(parent, written, info)
    manifest_path = carry_over.write_manifest(directory, manifest)
    publish(manifest_path, config.root, config.snapshot.snapshot_id, latest)


def _outcome(config: SnapshotConfig):
    from oibeam.pipelines.snapshot_outcome import Outcome, write_report

    report = write_report(config.directory) if config.snapshot.report else None
    return Outcome(config.directory, False, None, report)
