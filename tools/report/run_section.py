"""The "Run" section: what the manifest says about the run and its outputs."""

from __future__ import annotations

import datetime
from typing import Any

from oibeam.schemas import snapshot as snapshot_schema
from oibeam.tools.report.page import (
    Code,
    Facts,
    Heading,
    Paragraph,
    Section,
    Table,
)
from oibeam.tools.runs import statuses_of


def _time(text: str | None) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def duration(manifest: dict[str, Any]) -> str | None:
    start, end = _time(manifest.get("started")), _time(manifest.get("finished"))
    if start is None or end is None:
        return None
    seconds = (end - start).total_seconds()
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


def run_id(directory: str, manifest: dict[str, Any]) -> str:
    snapshot = manifest.get("snapshot") or {}
    return snapshot.get("id") or directory.rstrip("/").rsplit("/", 1)[-1]


def _vocabulary_table(
    table_id: str, title: str, counts: dict[str, int], meanings: dict[str, str]
) -> Table:
    return Table(
        table_id,
        [title, "images", "meaning"],
        [[Code(k), n, meanings.get(k, "")] for k, n in counts.items()],
    )


def when(text: str | None) -> str | None:
    """An ISO time as "2026-11-24 03:15:00 UTC" (as given if it is not one)."""
    moment = _time(text)
    if moment is None:
        return text
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def run_section(directory: str, manifest: dict[str, Any]) -> Section:
    """Identity, timing, rule and versions, with the headline numbers."""
    snapshot = manifest.get("snapshot") or {}
    parent = snapshot.get("parent") or None
    rule = manifest.get("trainable_rule") or {}
    versions = manifest.get("versions") or {}
    rows = manifest.get("rows", {})
    counts = manifest.get("counts", {})
    about: list[list] = [
        ["run directory", Code(directory)],
        ["command", Code(f"oibeam {manifest.get('command', '?')}")],
    ]
    if snapshot:
        about += [
            ["snapshot", Code(str(snapshot.get("id")))],
            ["parent", Code(parent["id"]) if parent else "none (a full snapshot)"],
        ]
        if snapshot.get("resumed"):
            about.append(["resumed", "yes: an unfinished attempt was completed"])
    about += [
        ["runner", manifest.get("runner")],
        [
            "ran",
            f"{when(manifest.get('started'))} to {when(manifest.get('finished'))}"
            f" ({duration(manifest) or '?'})",
        ],
    ]
    if rule:
        about.append(
            ["trainable rule", f"{rule.get('name')}: {rule.get('description')}"]
        )
    if versions:
        about.append(["versions", ", ".join(f"{k} {v}" for k, v in versions.items())])
    facts: list = [(run_id(directory, manifest), "run")]
    if snapshot:
        facts.append((parent["id"] if parent else "none", "parent snapshot"))
    facts += [
        (duration(manifest) or "?", "duration"),
        (sum(i.get("rows_read", 0) for i in manifest.get("inputs", [])), "rows read"),
    ]
    if "selected" not in counts:
        facts.append((rows.get("label_stats"), "labels with statistics"))
    if "selected" in counts:
        facts += [
            (counts["selected"], "images selected"),
            (statuses_of(manifest).get("ok", 0), "images fetched ok"),
        ]
    else:
        facts.append((rows.get("images"), "images"))
    return Section(
        "run",
        "Run",
        [
            Facts([(v, what) for v, what in facts if v is not None]),
            Table("run-table", [], about),
        ],
    )


def io_section(manifest: dict[str, Any]) -> Section:
    """Inputs with sizes and rows, rows per output, rejected rows, and what a
    refresh did to each image."""
    snapshot = manifest.get("snapshot") or {}
    parent = snapshot.get("parent") or None
    rows = manifest.get("rows", {})
    tables = manifest.get("tables", {})
    blocks: list = []
    inputs = manifest.get("inputs") or []
    if inputs:
        blocks.append(
            Table(
                "inputs-table",
                ["input", "kind", "release", "bytes", "rows read", "kept", "rejected"],
                [
                    [
                        Code(i.get("path", "")),
                        i.get("kind"),
                        i.get("release"),
                        i.get("bytes"),
                        i.get("rows_read"),
                        i.get("rows_kept"),
                        i.get("rows_rejected"),
                    ]
                    for i in inputs
                ],
                "Every input file with its size and rows: rows read = kept + "
                "rejected (rejected rows are in tables/errors with the reason).",
                title="Inputs",
            )
        )
    if manifest.get("images_tables"):
        blocks.append(
            Paragraph(
                "Read from the images tables "
                + ", ".join(manifest["images_tables"])
                + "."
            )
        )
    blocks.append(
        Table(
            "rows-table",
            ["output", "rows", "files", "bytes"],
            [
                [
                    Code(name),
                    rows.get(name, entry.get("rows")),
                    len(entry.get("files", [])),
                    sum(f.get("bytes", 0) for f in entry.get("files", [])),
                ]
                for name, entry in tables.items()
            ],
            "Rows per output as the manifest lists them (shards: the images in "
            "the tar files).",
            title="Outputs",
        )
    )
    rejected = manifest.get("rejected_by_code") or {}
    if rejected:
        blocks.append(
            Table(
                "rejected-table",
                ["code", "rows"],
                [[Code(k), n] for k, n in rejected.items()],
                "Input rows that could not be used, by code (see tables/errors).",
                title="Rejected rows",
            )
        )
    if manifest.get("changes"):
        changes = manifest.get("change_vocabulary") or snapshot_schema.CHANGES
        actions = manifest.get("action_vocabulary") or snapshot_schema.ACTIONS
        since = (
            f"Changes since snapshot {parent['id']}"
            if parent
            else "Changes (a full snapshot: no parent)"
        )
        blocks += [
            Heading(since),
            _vocabulary_table("changes-table", "change", manifest["changes"], changes),
            _vocabulary_table(
                "actions-table", "action", manifest.get("actions", {}), actions
            ),
            Paragraph(
                "What happened to each selected image since the parent snapshot; "
                "tables/diff has one row per image with the reason.",
                "caption",
            ),
        ]
    return Section("inputs", "Inputs and outputs", blocks)
