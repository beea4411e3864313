"""The label sections: frequency, machine quality, trainable sets, top and
bottom labels, and (when the run has them) boxes and inferred labels."""

from __future__ import annotations

import numpy as np

from oibeam.schemas.tables import HISTOGRAM_BINS
from oibeam.tools.report import charts
from oibeam.tools.report.label_facts import InferredFacts, LabelFacts
from oibeam.tools.report.page import (
    Code,
    Facts,
    Figure,
    Paragraph,
    Percent,
    Section,
    Table,
)
from oibeam.transforms.stats.trainable import TrainableRule


def _share_of_top(values: np.ndarray, fraction: float) -> tuple[int, float]:
    """(k, share of all images held by the k = fraction of labels with most)."""
    positive = np.sort(values[values > 0])[::-1]
    if not len(positive):
        return 0, 0.0
    k = max(1, int(round(len(positive) * fraction)))
    return k, float(positive[:k].sum() / positive.sum())


def frequency_section(facts: LabelFacts, scope: str, rule: TrainableRule) -> Section:
    machine_labels = int((facts.machine > 0).sum())
    human_labels = int((facts.human > 0).sum())
    blocks: list = [
        Paragraph(f"Label statistics of {scope}.", "lead"),
        Facts(
            [
                (facts.count, "labels with statistics"),
                (machine_labels, "labels with a machine label"),
                (human_labels, "labels with a human-verified positive"),
                (int(facts.trainable.sum()), f"trainable ({rule.name})"),
            ]
        ),
    ]
    png = charts.label_frequency(facts.machine, facts.human)
    if png is None:
        blocks.append(Paragraph("No label has a positive image.", "note"))
        return Section("labels", "Label frequency", blocks)
    k, share = _share_of_top(facts.machine, 0.01)
    uneven = (
        f" The {k:,} most frequent machine labels (1% of them) account for "
        f"{100 * share:.0f}% of all (image, machine label) pairs."
        if machine_labels >= 100
        else ""
    )
    blocks.append(
        Figure(
            png,
            "Labels ranked by their number of images, log scale",
            "How uneven the labels are. Each line ranks the labels by the number "
            "of images that carry them (x: 1 = the most frequent label) and plots "
            "that number on a log scale (y). Blue: images with a positive machine "
            "label; red: images whose label a human verified as present. A steep "
            "drop means a few labels hold most of the images and a long tail has "
            "very few." + uneven,
        )
    )
    return Section("labels", "Label frequency", blocks)


def quality_section(facts: LabelFacts) -> Section:
    blocks: list = []
    verified = int(facts.verified.sum())
    checked = int((facts.verified > 0).sum())
    png = charts.precision_scatter(
        facts.machine, facts.verified, facts.confirmed, facts.trainable
    )
    if png is None:
        blocks.append(
            Paragraph(
                "No machine label was verified by a human on validation images, "
                "so machine precision cannot be measured for this run.",
                "note",
            )
        )
    else:
        pooled = int(facts.confirmed.sum()) / verified
        blocks += [
            Facts(
                [
                    (checked, "labels with verified machine labels"),
                    (verified, "machine labels verified on validation"),
                    (Percent(pooled), "of them confirmed (pooled precision)"),
                ]
            ),
            Figure(
                png,
                "Machine precision per label against its number of images",
                "Each dot is a label with at least one machine label that a human "
                "checked on a validation image. x: images with a positive machine "
                "label (log scale); y: machine precision, the share of its "
                "verified machine labels that humans confirmed. Blue dots are "
                "trainable under the run's rule. The red line pools all labels "
                "of each decade of x (confirmed / verified). Dots at exactly 0% or "
                "100% often rest on a handful of verifications.",
            ),
        ]
    hist = charts.confidence_histogram(facts.confidence_histogram)
    if hist is not None:
        total = int(facts.confidence_histogram.sum())
        blocks.append(
            Figure(
                hist,
                "Histogram of machine label confidences",
                f"The confidence of all {total:,} (image, machine label) pairs, "
                f"summed over labels, in {HISTOGRAM_BINS} equal bins over [0, 1] "
                "(an image counts once per label, with its highest machine "
                "confidence). A bin [a, b) holds confidences from a up to b; "
                "the last bin includes 1.",
            )
        )
    return Section("quality", "Machine label quality", blocks)


def trainable_section(facts: LabelFacts, rule: TrainableRule) -> Section:
    names = [p.name + (" (this run)" if p.is_run_rule else "") for p in facts.presets]
    png = charts.horizontal_bars(
        names,
        [p.labels for p in facts.presets],
        [charts.MACHINE if p.is_run_rule else charts.GREY for p in facts.presets],
        "trainable labels",
    )
    blocks: list = [
        Paragraph(
            "The same label statistics under each trainable rule preset "
            "(transforms/stats/trainable.py), recomputed here; the run used "
            f"{rule.name}: {rule.describe()}.",
            "lead",
        )
    ]
    if png is not None:
        blocks.append(
            Figure(
                png,
                "Trainable labels under each rule preset",
                "Number of labels each rule calls trainable. The highlighted bar "
                "is the rule this run used (its label_stats `trainable` column).",
            )
        )
    blocks.append(
        Table(
            "presets-table",
            ["rule", "what it asks", "trainable labels"],
            [[Code(p.name), p.description, p.labels] for p in facts.presets],
        )
    )
    return Section("trainable", "Trainable labels by rule", blocks)


def _label_rows(facts: LabelFacts, order: np.ndarray) -> list[list]:
    rows = []
    for rank, i in order:
        row = [
            rank,
            facts.names[i],
            Code(facts.mids[i]),
            int(facts.images[i]),
            int(facts.machine[i]),
            int(facts.human[i]),
            int(facts.validation_human[i]),
            Percent(None if np.isnan(facts.precision[i]) else facts.precision[i]),
            bool(facts.trainable[i]),
        ]
        if facts.boxes is not None:
            row.append(int(facts.boxes[i]))
        rows.append(row)
    return rows


def top_labels_section(facts: LabelFacts, top: int) -> Section:
    headers = [
        "rank",
        "display name",
        "label",
        "images",
        "machine",
        "human-verified",
        "validation human",
        "machine precision",
        "trainable",
    ]
    if facts.boxes is not None:
        headers.append("boxes")
    ranked = facts.ranked()
    ranks = list(enumerate(ranked.tolist(), start=1))
    first = ranks[:top]
    last = ranks[max(len(ranks) - top, len(first)) :][::-1]
    caption = (
        "images: images with a positive label of any kind (a human verdict "
        "overrules the machine's); machine: with a positive machine label; "
        "human-verified: with a human-verified positive; validation human: "
        "human-verified positives on validation (what the v1 rule counts); "
        "machine precision: confirmed / verified machine labels on validation."
    )
    blocks: list = [
        Table(
            "top-labels",
            headers,
            _label_rows(facts, first),
            caption,
            f"The {len(first)} labels with the most images",
        )
    ]
    if last:
        blocks.append(
            Table(
                "bottom-labels",
                headers,
                _label_rows(facts, last),
                "Fewest images first; ties in mid order.",
                f"The {len(last)} labels with the fewest images",
            )
        )
    return Section("top-labels", "Top and bottom labels", blocks)


def boxes_section(facts: LabelFacts) -> Section | None:
    if facts.boxes is None or facts.images_with_boxes is None:
        return None
    total = int(facts.boxes.sum())
    labelled = int((facts.boxes > 0).sum())
    blocks: list = [
        Facts(
            [
                (total, "boxes"),
                (labelled, "labels with boxes"),
                (int(facts.images_with_boxes.sum()), "(image, label) pairs with boxes"),
            ]
        )
    ]
    png = charts.boxes_per_label(facts.boxes, facts.images_with_boxes)
    if png is None:
        blocks.append(Paragraph("The run read no boxes.", "note"))
    else:
        blocks.append(
            Figure(
                png,
                "Boxes per label, ranked",
                "Labels with at least one bounding box, ranked by their number of "
                "boxes (x); y (log): boxes of the label (blue) and images with at "
                "least one box of it (green). The gap between the lines is the "
                "number of boxes per image.",
            )
        )
    return Section("boxes", "Bounding boxes", blocks)


def inferred_section(
    inferred: InferredFacts | None, names: dict[str, str | None], top: int
) -> Section | None:
    if inferred is None:
        return None
    blocks: list = [
        Facts(
            [
                (inferred.rows, "label rows"),
                (inferred.inferred, "inferred from a child label"),
                (
                    Percent(inferred.inferred / inferred.rows if inferred.rows else 0),
                    "of the rows",
                ),
            ]
        )
    ]
    if not inferred.inferred:
        blocks.append(
            Paragraph(
                "No label row was inferred: the run did not expand labels to "
                "their ancestors.",
                "note",
            )
        )
    else:
        order = sorted(inferred.by_label.items(), key=lambda kv: (-kv[1], kv[0]))
        blocks.append(
            Table(
                "inferred-table",
                ["display name", "label", "inferred rows"],
                [[names.get(m), Code(m), n] for m, n in order[:top]],
                "Rows added by the hierarchy expansion (InferredFrom names the "
                "child label each came from): an image labelled Dog is also "
                "labelled Mammal and Animal. Labels with the most inferred rows.",
            )
        )
    return Section("inferred", "Inferred labels", blocks)
