"""What the Beam commands print when they finish, read from the run's manifest."""

from __future__ import annotations

import json

from oibeam.transforms.common import files


def _manifest(path: str) -> dict:
    with files.open(path) as f:
        return json.loads(f.read())


def tables_summary(manifest_path: str) -> str:
    """Rows of each table, the trainable set, rejected rows by code."""
    manifest = _manifest(manifest_path)
    rows = manifest["rows"]
    lines = [
        f"images: {rows.get('images', 0):,}   labels: {rows.get('labels', 0):,}   "
        f"labels with statistics: {rows.get('label_stats', 0):,}",
        f"trainable labels ({manifest['trainable_rule']['name']}: "
        f"{manifest['trainable_rule']['description']}): "
        f"{rows.get('trainable_labels', 0):,}",
        f"rejected rows: {rows.get('errors', 0):,}"
        + (
            " ("
            + ", ".join(f"{k} {v:,}" for k, v in manifest["rejected_by_code"].items())
            + ")"
            if manifest["rejected_by_code"]
            else ""
        ),
        f"outputs: {manifest_path.rsplit('/', 1)[0]}/tables/ "
        "(images, labels, label_counts, label_stats, errors, trainable_labels.csv)",
        f"manifest: {manifest_path}",
    ]
    return "\n".join(lines)


def _shards_line(manifest: dict, root: str) -> str:
    """How many shards the run uses, where they are and what it wrote."""
    files = manifest["tables"].get("shards", {}).get("files", [])
    pooled = [f for f in files if f["path"].startswith("../")]
    if not pooled:
        return (
            f"shards: {len(files):,} in {root}/shards/ (WebDataset tar, index in "
            "shards/index/)"
        )
    snapshot_id = (manifest.get("snapshot") or {}).get("id", "")
    new = [f for f in pooled if f["path"].startswith(f"../pool/{snapshot_id}/")]
    written = sum(f["bytes"] for f in new)
    return (
        f"shards: {len(files):,} in {root.rsplit('/', 1)[0]}/pool/ "
        f"({len(new):,} new, {written:,} bytes written; the others shared with "
        "earlier snapshots; index in shards/index/)"
    )


def _dropped_line(manifest: dict) -> list[str]:
    """The train images --drop-eval-duplicates dropped, per reason."""
    dropped = manifest.get("dropped")
    if dropped is None:
        return []
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in dropped.items())
    return [
        f"train images dropped as duplicates of validation/test images: "
        f"{sum(dropped.values()):,} ({reasons})"
    ]


def fetch_summary(manifest_path: str) -> str:
    """Selected and ok images, failures by status, where the shards are."""
    manifest = _manifest(manifest_path)
    counts = manifest.get("counts", {})
    statuses = manifest.get("statuses", {})
    ok = statuses.get("ok", 0)
    failed = ", ".join(f"{k} {v:,}" for k, v in statuses.items() if k != "ok")
    root = manifest_path.rsplit("/", 1)[0]
    resumed = manifest.get("resumed") or (manifest.get("snapshot") or {}).get("resumed")
    return "\n".join(
        (
            ["resumed an unfinished run: its committed shards were kept"]
            if resumed
            else []
        )
        + [
            f"selected images: {counts.get('selected', 0):,}   ok: {ok:,}"
            + (f"   not fetched: {failed}" if failed else ""),
            *_dropped_line(manifest),
            _shards_line(manifest, root),
            f"images table with a status per image: {root}/tables/images/",
            f"manifest: {manifest_path}",
        ]
        + _labels_without_images(manifest)
    )


def snapshot_summary(outcome) -> str:
    """The published snapshot, or for a dry run the job that was built."""
    if outcome.dry_run:
        job = getattr(outcome.result, "job", None)
        steps = []
        if job is not None:
            root = job.proto_pipeline.root_transform_ids
            transforms = job.proto_pipeline.components.transforms
            for transform_id in root:
                steps += [
                    transforms[s].unique_name
                    for s in transforms[transform_id].subtransforms
                ]
        proto = getattr(job, "proto", None)
        named = f"job {proto.name} " if getattr(proto, "name", "") else "the job "
        labels = dict(proto.labels) if getattr(proto, "labels", None) else {}
        if labels:
            named += "(labels " + ", ".join(f"{k}={v}" for k, v in labels.items())
            named += ") "
        return f"dry run: {named}was built, nothing ran" + (
            "; its steps: " + ", ".join(steps) if steps else ""
        )
    manifest_path = f"{outcome.directory}/manifest.json"
    manifest = _manifest(manifest_path)
    parent = manifest["snapshot"]["parent"]
    rows, rule = manifest["rows"], manifest["trainable_rule"]
    lines = [
        f"labels with statistics: {rows.get('label_stats', 0):,}   trainable labels "
        f"({rule['name']}: {rule['description']}): {rows.get('trainable_labels', 0):,}"
        f"   rejected rows: {rows.get('errors', 0):,}",
        fetch_summary(manifest_path),
    ]
    if manifest.get("changes"):
        lines.append(
            "since "
            + (parent["id"] if parent else "nothing")
            + ": "
            + ", ".join(f"{k} {v:,}" for k, v in manifest["changes"].items())
            + "   actions: "
            + ", ".join(f"{k} {v:,}" for k, v in manifest["actions"].items())
        )
    lines.append(
        f"published {manifest['snapshot']['id']}: {outcome.directory} "
        f"(_SUCCESS written, {manifest['snapshot']['root']}/LATEST points at it)"
    )
    if outcome.report:
        lines.append(f"report: {outcome.report}")
    return "\n".join(lines)


def _labels_without_images(manifest: dict) -> list[str]:
    """A line naming the --label values that selected no image, if any."""
    empty = [m for m, n in manifest.get("images_per_label", {}).items() if n == 0]
    if not empty:
        return []
    return [
        f"no image was selected by --label {' '.join(empty)}: check the mid, "
        "--label-source, --min-confidence, --subset and --trainable-only"
    ]
