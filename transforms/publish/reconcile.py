"""The counts every run must reconcile before it may write a manifest (pure,
no Beam): each input file's rows read == rows kept + rows rejected, and each
selected image has one status, one images-table row and, in a refresh, one
diff row. Counts that do not reconcile mean a row was lost or counted twice:
the run fails loudly instead."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from oibeam.schemas.elements import ACTION, CHANGE, SELECTED, STATUS, Count, FileCount
from oibeam.transforms.read.csv_inputs import InputPlan


class CountsDoNotReconcile(RuntimeError):
    """Rows read from an input file != rows kept + rows rejected."""


class TooManyRejected(ValueError):
    """An input file rejected more of its rows than the run allows: most
    likely a file of the wrong kind or release, so nothing is published."""


# Rows rejected for what other rows say, not for what they hold: a label of an
# image outside the images files (labels for a sample of the images are
# normal), a row another row already gave (overlapping class files are normal).
_NOT_THE_FILES_FAULT = (
    "unknown_image",
    "duplicate_image",
    "duplicate_label",
    "duplicate_class",
)


def check_rejected(
    plan: InputPlan, totals: dict[int, dict[str, Any]], max_share: float
) -> None:
    """TooManyRejected naming each input file that rejected more than
    `max_share` of the rows it read for what they hold (codes in
    _NOT_THE_FILES_FAULT do not count), with its most frequent error codes.
    A file that kept no row and whose rows name no image of the images files
    is refused all the same (below a share of 1): it is from another release
    or subset."""
    wrong = []
    for f in plan.files:
        entry = totals[f.file_id]
        read, by_code = entry["read"], entry["errors_by_code"]
        if not read:
            continue
        excused = sum(by_code.get(code, 0) for code in _NOT_THE_FILES_FAULT)
        if (entry["errors"] - excused) / read > max_share:
            codes = sorted(by_code.items(), key=lambda kv: -kv[1])[:3]
            wrong.append(
                f"{f.path} ({f.kind}): {entry['errors']:,} of {read:,} rows "
                f"rejected ({entry['errors'] / read:.0%}; "
                + ", ".join(f"{code} {n:,}" for code, n in codes)
                + ")"
            )
        elif not entry["rows"] and by_code.get("unknown_image") and max_share < 1:
            wrong.append(
                f"{f.path} ({f.kind}): none of its {read:,} rows names an image "
                "in the images files (unknown_image): is it from the same "
                "release and subset?"
            )
    if wrong:
        raise TooManyRejected(
            "too many rejected rows, nothing was published: "
            + "; ".join(wrong)
            + f". Check the file is of that kind and release; --max-rejected "
            f"(now {max_share:g}) sets the share of rows a file may reject"
        )


def reconcile(plan: InputPlan, counts: list[FileCount]) -> dict[int, dict[str, Any]]:
    """Per input file: read / kept / rejected and rejected rows per code."""
    totals: dict[int, dict[str, Any]] = {
        f.file_id: {"read": 0, "rows": 0, "errors": 0, "lines": 0, "errors_by_code": {}}
        for f in plan.files
    }
    for c in counts:
        entry = totals[c.file_id]
        if c.counter == "rejected":
            by_code = entry["errors_by_code"]
            by_code[c.code] = by_code.get(c.code, 0) + c.n
        else:
            entry[c.counter] += c.n
    wrong = [
        f"{f.path}: read {totals[f.file_id]['read']} rows, kept "
        f"{totals[f.file_id]['rows']}, rejected {totals[f.file_id]['errors']}"
        for f in plan.files
        if totals[f.file_id]["read"]
        != totals[f.file_id]["rows"] + totals[f.file_id]["errors"]
    ]
    # A file read in line ranges has one record per line: every line below the
    # header must be a row read, or a row was lost between ranges.
    split = {r.file_id for r in plan.ranges if not r.whole}
    wrong += [
        f"{f.path}: {totals[f.file_id]['lines']} lines but "
        f"{totals[f.file_id]['read']} rows read"
        for f in plan.files
        if f.file_id in split
        and totals[f.file_id]["lines"] - 1 != totals[f.file_id]["read"]
    ]
    if wrong:
        raise CountsDoNotReconcile("; ".join(wrong))
    return totals


def tally(counts: list[Count]) -> dict[str, dict[str, int]]:
    """The run's counts summed: kind -> value -> images, values sorted."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for count in counts:
        totals[count.kind][count.value] += count.n
    return {
        kind: dict(sorted(values.items())) for kind, values in sorted(totals.items())
    }


def check_tallies(tallies: dict[str, dict[str, int]], rows: dict[str, int]) -> None:
    """Every selected image has exactly one status row in the images table
    and, in a refresh, one diff row (as has every image it removed)."""
    if SELECTED not in tallies:
        return
    selected = tallies[SELECTED][""]
    statuses = sum(tallies.get(STATUS, {}).values())
    if not statuses == selected == rows.get("images", 0):
        raise CountsDoNotReconcile(
            f"selected {selected} images, {statuses} statuses, "
            f"{rows.get('images', 0)} rows in the images table"
        )
    changes = tallies.get(CHANGE, {})
    if not changes:
        return
    actions = tallies.get(ACTION, {})
    kept = sum(changes.values()) - changes.get("removed", 0)
    if not (
        kept == selected == sum(actions.values()) - actions.get("drop", 0)
        and sum(changes.values()) == rows.get("diff", 0)
    ):
        raise CountsDoNotReconcile(
            f"selected {selected} images, but the diff has {kept} of them "
            f"(changes {changes}, actions {actions}, {rows.get('diff', 0)} rows)"
        )
