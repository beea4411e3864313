"""What a run must reconcile before it may write a manifest: rows per input
file, and selected == statuses == images rows (== diff rows in a refresh)."""

from __future__ import annotations

import pytest

from oibeam.schemas.elements import Count
from oibeam.transforms.publish.reconcile import (
    CountsDoNotReconcile,
    TooManyRejected,
    check_rejected,
    check_tallies,
    reconcile,
    tally,
)

from support.run_counts import LABEL_ROWS
from support.run_counts import file_counts as _counts


def test_reconcile_sums_every_record_per_file(plan):
    totals = reconcile(plan, _counts())
    assert totals[0] == {
        "read": 3,
        "rows": 2,
        "errors": 1,
        "lines": 0,
        "errors_by_code": {"duplicate_image": 1},
    }
    assert totals[1]["read"] == LABEL_ROWS
    assert totals[1]["lines"] == LABEL_ROWS + 1
    assert totals[1]["rows"] + totals[1]["errors"] == LABEL_ROWS
    assert totals[1]["errors_by_code"] == {"unknown_image": 4, "bad_confidence": 1}
    assert totals[2]["read"] == totals[2]["rows"] == 2
    # A file nothing was counted for reconciles at zero.
    assert reconcile(plan, [c for c in _counts() if c.file_id != 2])[2]["read"] == 0


@pytest.mark.parametrize(
    "change, file_kind",
    [
        ({"images_rows": -1}, "images"),  # a row lost between read and table
        ({"images_errors": 1}, "images"),  # a row both kept and rejected
        ({"labels_read": 1, "labels_lines": 1}, "labels"),  # read, never written
        ({"classes_rows": 1}, "classes"),  # counted twice
    ],
)
def test_a_file_whose_rows_do_not_add_up_fails_naming_it(plan, change, file_kind):
    wrong = next(f for f in plan.files if f.kind == file_kind)
    with pytest.raises(CountsDoNotReconcile) as failure:
        reconcile(plan, _counts(**change))
    message = str(failure.value)
    assert wrong.path in message
    others = [f.path for f in plan.files if f.kind != file_kind]
    assert not any(path in message for path in others)
    totals = {c.counter: 0 for c in _counts()}
    for c in _counts(**change):
        if c.file_id == wrong.file_id:
            totals[c.counter] += c.n
    assert (
        f"read {totals['read']} rows, kept {totals['rows']}, "
        f"rejected {totals['errors']}" in message
    )


def test_a_split_file_must_have_a_row_read_for_every_line(plan):
    labels = plan.of_kind("labels")[0]
    # Rows reconcile with the tables, but a line was never read as a row.
    with pytest.raises(CountsDoNotReconcile, match="lines but") as failure:
        reconcile(plan, _counts(labels_lines=1))
    assert f"{labels.path}: {LABEL_ROWS + 2} lines but {LABEL_ROWS} rows read" in str(
        failure.value
    )
    # A file read whole is not held to its lines (quoted newlines are one row).
    totals = reconcile(plan, _counts(images_lines=7))
    assert totals[0]["lines"] == 7


def _tally(flat: dict[str, int]) -> dict[str, dict[str, int]]:
    """{"selected": 3, "status:ok": 3, ...} as the run counts them, summed."""
    return tally(
        [Count(*(k.split(":") if ":" in k else (k, "")), n) for k, n in flat.items()]
    )


@pytest.mark.parametrize(
    "tallies, rows",
    [
        ({}, {"images": 3}),  # a run that selects nothing: nothing to check
        ({"selected": 3, "status:ok": 2, "status:gone": 1}, {"images": 3}),
        ({"selected": 0}, {}),
        (
            {
                "selected": 3,
                "status:ok": 3,
                "change:added": 2,
                "change:carried": 1,
                "change:removed": 1,
                "action:fetch": 2,
                "action:copy": 1,
                "action:drop": 1,
            },
            {"images": 3, "diff": 4},
        ),
    ],
)
def test_tallies_that_reconcile(tallies, rows):
    check_tallies(_tally(tallies), rows)


@pytest.mark.parametrize(
    "tallies, rows",
    [
        ({"selected": 3, "status:ok": 2}, {"images": 3}),  # an image without status
        ({"selected": 3, "status:ok": 3}, {"images": 2}),  # a status without a row
        ({"selected": 2, "status:ok": 3}, {"images": 3}),
        ({"selected": 1, "status:ok": 1}, {}),
        (  # a removed image without its diff row
            {
                "selected": 2,
                "status:ok": 2,
                "change:added": 2,
                "change:removed": 1,
                "action:fetch": 2,
                "action:drop": 1,
            },
            {"images": 2, "diff": 2},
        ),
        (  # an image with a change but no action
            {
                "selected": 2,
                "status:ok": 2,
                "change:carried": 2,
                "action:copy": 1,
            },
            {"images": 2, "diff": 2},
        ),
        (  # a diff row for an image that is not in the images table
            {"selected": 1, "status:ok": 1, "change:added": 2, "action:fetch": 2},
            {"images": 1, "diff": 2},
        ),
    ],
)
def test_tallies_that_do_not_reconcile(tallies, rows):
    with pytest.raises(CountsDoNotReconcile, match=f"selected {tallies['selected']}"):
        check_tallies(_tally(tallies), rows)


def test_a_file_that_rejects_more_than_the_share_stops_the_run(plan):
    # labels.csv rejects 5 of 300 rows: unknown_image 4 (not counted) and
    # bad_confidence 1; images.csv 1 of 3: duplicate_image (not counted).
    totals = reconcile(plan, _counts())
    check_rejected(plan, totals, 0.5)
    check_rejected(plan, totals, 1 / LABEL_ROWS)  # exactly the share, allowed
    with pytest.raises(TooManyRejected) as refused:
        check_rejected(plan, totals, 0.002)
    text = str(refused.value)
    assert f"labels.csv (labels): 5 of {LABEL_ROWS} rows rejected (2%;" in text
    assert "unknown_image 4, bad_confidence 1" in text
    assert "images.csv" not in text  # its duplicate does not count
    assert "dict.csv" not in text  # it rejected nothing
    assert "--max-rejected (now 0.002)" in text
    totals[0]["errors_by_code"] = {"bad_md5": 1}  # a row bad in itself does
    with pytest.raises(TooManyRejected) as refused:
        check_rejected(plan, totals, 0.3)
    assert "images.csv (images): 1 of 3 rows rejected (33%; bad_md5 1)" in str(
        refused.value
    )


def test_a_file_none_of_whose_rows_joins_an_image_stops_the_run(plan):
    totals = reconcile(plan, _counts())
    labels = totals[1]
    labels["errors"] = labels["read"]
    labels["rows"] = 0
    labels["errors_by_code"] = {"unknown_image": labels["read"]}
    with pytest.raises(TooManyRejected) as refused:
        check_rejected(plan, totals, 0.5)
    assert f"none of its {LABEL_ROWS} rows names an image" in str(refused.value)
    check_rejected(plan, totals, 1)  # --max-rejected 1 lets it through
    # One row rejected for its content beside them: still nothing joined.
    labels["errors_by_code"] = {"unknown_image": LABEL_ROWS - 1, "bad_confidence": 1}
    with pytest.raises(TooManyRejected, match="none of its"):
        check_rejected(plan, totals, 0.5)


def test_rows_another_file_already_gave_do_not_count(plan):
    """A second class file that repeats the first (class-descriptions.csv
    and its boxable subset) rejects all of its rows as duplicates: fine."""
    totals = reconcile(plan, _counts())
    classes = totals[2]
    classes["errors"], classes["rows"] = classes["read"], 0
    classes["errors_by_code"] = {"duplicate_class": classes["read"]}
    check_rejected(plan, totals, 0.5)
    classes["errors_by_code"] = {"empty_display_name": classes["read"]}
    with pytest.raises(TooManyRejected, match="dict.csv"):
        check_rejected(plan, totals, 0.5)
