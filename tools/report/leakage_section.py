"""The "Leakage between subsets" section: validation and test images with a
duplicate in train (tools/report/leakage_facts.py), example pairs side by side,
and the train images the selection dropped for it (--drop-eval-duplicates)."""

from __future__ import annotations

from typing import Any

from oibeam.schemas.duplicates import EXACT, NEAR
from oibeam.tools.report.leakage_facts import LeakageFacts, LeakPair, Thumb
from oibeam.tools.report.page import (
    Code,
    Facts,
    Pairs,
    Paragraph,
    Percent,
    Picture,
    Section,
    Table,
)
from oibeam.transforms.select.leakage import EVAL_SUBSETS, REASONS

SECTION_ID = "leakage"
TITLE = "Leakage between subsets"


def _picture(thumb: Thumb) -> Picture:
    missing = "not in the shards" if thumb.jpeg is None else ""
    return Picture(
        thumb.jpeg,
        thumb.width,
        thumb.height,
        f"{thumb.subset} image {thumb.image_id}",
        (thumb.image_id, thumb.subset),
        missing,
    )


def _join(pair: LeakPair) -> str:
    if pair.kind == EXACT:
        return "exact"
    if pair.distance is None:
        return "near (same group)"
    return f"near, {pair.distance} bits"


def _dropped(manifest: dict[str, Any]) -> list:
    """What --drop-eval-duplicates dropped, from the manifest."""
    dropped = manifest.get("dropped")
    if not isinstance(dropped, dict):
        return []
    meanings = {**REASONS, **(manifest.get("drop_vocabulary") or {})}
    source = (manifest.get("duplicates_from") or {}).get("path")
    return [
        Table(
            "dropped-table",
            ["reason", "train images dropped", "meaning"],
            [[Code(r), n, meanings.get(r, "")] for r, n in dropped.items()],
            "Train images this run's selection left out because they duplicate "
            "a validation or test image (--drop-eval-duplicates), counted in "
            "the manifest (`dropped`); every other image of the inputs was "
            "selected or not picked by the selection flags."
            + (f" Duplicates table read: {source}." if source else ""),
            "Dropped by the selection",
        )
    ]


def leakage_section(facts: LeakageFacts, manifest: dict[str, Any]) -> Section:
    """The section, whatever the run has: no duplicates table, no eval
    images, no leak, or leaks with counts and examples."""
    dropped = _dropped(manifest)
    if not facts.has_table:
        note = (
            "This run has no duplicates table (tables/duplicates): it was "
            "written before oibeam looked for duplicates, so leakage between "
            "subsets cannot be told. A run of this version writes one."
        )
        return Section(SECTION_ID, TITLE, [Paragraph(note, "note"), *dropped])
    evals = [s for s in EVAL_SUBSETS if facts.images.get(s) or facts.leaking(s)]
    if not evals:
        note = (
            "The run has no validation or test images: nothing of train can "
            "leak into them."
        )
        return Section(SECTION_ID, TITLE, [Paragraph(note, "note"), *dropped])
    leaking = sum(facts.leaking(s) for s in evals)
    blocks: list = [
        Paragraph(
            "Validation and test images whose duplicates group "
            "(tables/duplicates) also holds a train image: a model trained on "
            "train has seen them. Exact: a train image of the group has the "
            "same OriginalMD5 or, once fetched, the same bytes; near: the "
            "group joins them by perceptual hashes only (re-encoded, resized "
            "or cropped copies). --drop-eval-duplicates leaves such train "
            "images out of the next selection.",
            "lead",
        ),
        Facts(
            [
                (leaking, "validation and test images with a duplicate in train"),
                (facts.train, "train images involved"),
                (facts.train_exact, "of them exact copies"),
                (facts.groups, "groups mixing train and evaluation"),
            ]
        ),
    ]
    rows = []
    for subset in evals:
        images = facts.images.get(subset, 0)
        exact = facts.leaked.get((subset, EXACT), 0)
        near = facts.leaked.get((subset, NEAR), 0)
        rows.append(
            [
                subset,
                images,
                exact,
                Percent(exact / images if images else None),
                near,
                Percent(near / images if images else None),
            ]
        )
    blocks.append(
        Table(
            "leakage-table",
            ["subset", "images", "exact in train", "share", "near in train", "share"],
            rows,
            "Images of each evaluation subset in this run (tables/images) with "
            "an exact or near duplicate in train; each image counts once, as "
            "exact if it has any exact train copy.",
        )
    )
    if not leaking:
        blocks.append(
            Paragraph(
                f"No validation or test image has a duplicate in train "
                f"({facts.duplicates:,} rows in tables/duplicates).",
                "note",
            )
        )
    if facts.examples:
        blocks.append(
            Pairs(
                "leakage-examples",
                [
                    (_picture(p.eval), _picture(p.train), _join(p))
                    for p in facts.examples
                ],
                f"{len(facts.examples)} of {leaking:,} leaking images, each beside "
                "a train image of its group (exact ones first, then the nearest "
                "near ones); thumbnails read from the run's shards.",
            )
        )
    return Section(SECTION_ID, TITLE, [*blocks, *dropped])
