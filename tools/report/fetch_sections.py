"""The fetch sections, for runs whose images table has a `status` column:
outcome per status, hosts, files (bytes, sizes, formats), and which labels stop
being trainable because images failed."""

from __future__ import annotations

from oibeam.schemas.fetch import OK, STATUSES
from oibeam.tools.report import charts
from oibeam.tools.report.fetch_facts import BYTE_EDGES, FetchFacts, LabelChange
from oibeam.tools.report.page import (
    Change,
    Code,
    Facts,
    Figure,
    Paragraph,
    Percent,
    Section,
    Table,
)
from oibeam.transforms.stats.trainable import TrainableRule

TOP_HOSTS = 15


def _status_order(statuses: dict[str, int]) -> list[str]:
    known = [s for s in STATUSES if statuses.get(s)]
    return known + sorted(s for s in statuses if s not in STATUSES and statuses[s])


def status_section(facts: FetchFacts, vocabulary: dict[str, str]) -> Section:
    order = _status_order(facts.statuses)
    total = facts.images
    ok = facts.statuses.get(OK, 0)
    meanings = {name: meaning for name, (_, meaning) in STATUSES.items()}
    meanings.update(vocabulary)
    blocks: list = [
        Facts(
            [
                (total, "images selected"),
                (ok, "fetched and verified (ok)"),
                (total - ok, "not fetched"),
                (Percent(ok / total if total else None), "ok"),
            ]
        ),
        Table(
            "status-table",
            ["status", "images", "share", "retryable", "meaning"],
            [
                [
                    Code(s),
                    facts.statuses[s],
                    Percent(facts.statuses[s] / total),
                    facts.retryable.get(s, 0),
                    meanings.get(s, ""),
                ]
                for s in order
            ],
            "Every selected image has exactly one status (tables/images, column "
            "`status`; `error` says more). retryable: images whose failure may "
            "pass (column `retryable`), which the next refresh fetches again; "
            "the others are final unless --retry-all.",
        ),
    ]
    png = charts.horizontal_bars(
        order,
        [facts.statuses[s] for s in order],
        [charts.status_color(s) for s in order],
        "images",
        total,
    )
    if png is not None:
        blocks.append(
            Figure(
                png,
                "Images per fetch status",
                "Images per status, with the share of all selected images.",
            )
        )
    return Section("fetch", "Fetch outcome", blocks)


def hosts_section(facts: FetchFacts) -> Section:
    shown = facts.hosts[:TOP_HOSTS]
    failing = _status_order(
        {s: 1 for row in facts.hosts for s, n in row.statuses.items() if s != OK and n}
    )
    rows = [
        [
            row.host,
            row.images,
            row.statuses.get(OK, 0),
            row.failed,
            Percent(row.failed / row.images),
            *[row.statuses.get(s, 0) for s in failing],
        ]
        for row in shown
    ]
    blocks: list = [
        Paragraph(
            (
                f"{len(facts.hosts):,} hosts; the {len(shown):,} with the most "
                "images are shown."
                if len(shown) < len(facts.hosts)
                else f"Images by host ({len(facts.hosts):,})."
            )
            + " The host is that of the URL requested (`url`: OriginalURL unless "
            "--image-source thumbnail or --url-template chose another), or of "
            "OriginalURL where nothing was requested.",
            "lead",
        ),
        Table(
            "host-table",
            ["host", "images", "ok", "failed", "failure rate", *failing],
            rows,
            "Images per host and how many failed, in total and per status.",
        ),
    ]
    png = charts.host_failures([(r.host, r.images, r.statuses) for r in shown])
    if png is not None:
        blocks.append(
            Figure(
                png,
                "Failure rate per host, by status",
                "For each host (its number of images in brackets), the share of "
                "its images that failed, stacked by status. A host with a high "
                "rate of one status (e.g. gone) points at that host, not at the "
                "fetcher.",
            )
        )
    return Section("hosts", "Hosts", blocks)


def files_section(facts: FetchFacts, top: int) -> Section:
    ok = facts.statuses.get(OK, 0)
    blocks: list = [
        Facts(
            [
                (charts.human_bytes(facts.ok_bytes), "of verified images"),
                (charts.human_bytes(facts.ok_bytes / ok) if ok else "–", "mean size"),
                (
                    charts.human_bytes(facts.bytes_min)
                    if facts.bytes_min is not None
                    else "–",
                    "smallest",
                ),
                (
                    charts.human_bytes(facts.bytes_max)
                    if facts.bytes_max is not None
                    else "–",
                    "largest",
                ),
            ]
        )
    ]
    png = charts.bytes_histogram(facts.bytes_histogram, BYTE_EDGES)
    if png is not None:
        blocks.append(
            Figure(
                png,
                "Distribution of file sizes of the ok images",
                "The size in bytes of each verified image (what its shard holds), "
                "in bins of equal width on a log scale (20 per decade).",
            )
        )
    heat = charts.size_heatmap(facts.sizes)
    if heat is not None:
        blocks.append(
            Figure(
                heat,
                "Image width against height, ok images",
                "Each cell counts the verified images of that width (x) and "
                "height (y) in pixels as stored (before EXIF orientation or "
                "Rotation), colour on a log scale; the dashed diagonal marks "
                "square images, landscape images lie below it.",
            )
        )
        common = sorted(facts.sizes.items(), key=lambda kv: (-kv[1], kv[0]))
        common = common[: min(top, 10)]
        blocks.append(
            Table(
                "size-table",
                ["width × height", "images", "share of ok"],
                [[f"{w} × {h}", n, Percent(n / ok)] for (w, h), n in common],
                "The most common image sizes.",
                "Most common sizes",
            )
        )
    if facts.formats:
        formats = sorted(facts.formats.items(), key=lambda kv: (-kv[1], kv[0]))
        blocks.append(
            Table(
                "format-table",
                ["format", "images", "share of ok"],
                [[Code(f), n, Percent(n / ok)] for f, n in formats],
                "The format Pillow read from the bytes of each verified image "
                "(not the file name's extension).",
                "Formats",
            )
        )
    if ok == 0:
        blocks.append(Paragraph("No image was fetched ok.", "note"))
    return Section("files", "Files: sizes, dimensions, formats", blocks)


def _change_row(c: LabelChange) -> list:
    return [
        c.name,
        Code(c.mid),
        Change(c.train_before, c.train_after),
        Change(c.validation_before, c.validation_after),
        c.failed,
    ]


def trainability_section(
    facts: FetchFacts, rule: TrainableRule, release_trainable: int | None, top: int
) -> Section:
    before = [c for c in facts.changes if c.trainable_before]
    lost = sorted(
        (c for c in before if not c.trainable_after),
        key=lambda c: (-c.failed, c.mid),
    )
    headers = [
        "display name",
        "label",
        f"train, {rule.train_source} (≥ {rule.min_train})",
        f"validation, {rule.validation_source} (≥ {rule.min_validation})",
        "images failed",
    ]
    items = [
        (len(before), "trainable on the selected images"),
        (len(before) - len(lost), "still trainable on the ok images"),
        (len(lost), "no longer trainable"),
    ]
    if release_trainable is not None:
        items.insert(0, (release_trainable, "trainable in label_stats"))
    blocks: list = [
        Paragraph(
            f"The run's rule ({rule.name}: {rule.describe()}) applied to the "
            f"{facts.images:,} images this run selected (tables/images), with the "
            "pipeline's own label statistics computed twice: over every selected "
            "image, and over only those whose status is ok. Both sides count the "
            "same selection, so the difference is what the fetch failures cost. "
            "label_stats counts every image the run read (the whole release, in "
            "a snapshot); with --max-per-label, --limit or --sample the selection "
            "holds fewer images, and a label can miss the rule before anything "
            "is fetched.",
            "lead",
        ),
        Facts(items),
    ]
    if lost:
        blocks.append(
            Table(
                "lost-table",
                headers,
                [_change_row(c) for c in lost],
                "Labels that meet the rule on the selected images but not on the "
                "ok images alone. The two counts the rule looks at (images with a "
                "positive label of that source, the threshold in brackets) read "
                "selected → ok; most failed images first.",
                "Labels that stop being trainable",
            )
        )
    else:
        blocks.append(
            Paragraph(
                "No label stops being trainable because of fetch failures.", "note"
            )
        )
    hit = sorted(
        (c for c in facts.changes if c.failed > 0), key=lambda c: (-c.failed, c.mid)
    )[:top]
    if hit:
        blocks.append(
            Table(
                "failed-labels-table",
                [*headers, "share failed"],
                [[*_change_row(c), Percent(c.failed / c.images_before)] for c in hit],
                "Labels with the most selected images not fetched ok; counts "
                "read selected → ok (images failed and share failed count images "
                "with a positive label of any kind).",
                "Labels with the most failed images",
            )
        )
    return Section("trainability", "Trainability after fetching", blocks)
