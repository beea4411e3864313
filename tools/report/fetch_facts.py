"""What the report shows about a fetch, gathered in one pass over the images
table's record batches into small accumulators (nothing per image is kept).

Label statistics of the fetched images reuse the pipeline's own code
(fold_labels, label_stats_table, the trainable rule): once over every image
the run selected, once over those whose status is ok.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.fetch import OK
from oibeam.schemas.tables import CLASSES
from oibeam.tools.report.label_facts import InferredFacts, images_of
from oibeam.transforms.stats.partials import LabelPartials, fold_labels
from oibeam.transforms.stats.tables import label_stats_table, labels_of_images
from oibeam.transforms.stats.trainable import TrainableRule, trainable_mask

IMAGE_COLUMNS = [
    "ImageID",
    "Subset",
    "labels",
    "status",
    "retryable",
    "OriginalURL",
    "url",
    "bytes",
    "width",
    "height",
    "format",
]
# scheme://[userinfo@]host[:port]...: the host, lower-cased later.
_HOST = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^/?#@]*@)?(?P<host>\[[^\]]*\]|[^/?#:]*)"
NO_HOST = "(no URL)"
# log10(bytes) bin edges: 1 B .. 10 GB in 20 bins per decade.
BYTE_EDGES = np.linspace(0.0, 10.0, 201)


@dataclass(frozen=True)
class HostRow:
    """Images of one host, per status."""

    host: str
    images: int
    statuses: dict[str, int]

    @property
    def failed(self) -> int:
        return self.images - self.statuses.get(OK, 0)


@dataclass(frozen=True)
class LabelChange:
    """One label's counts under the run's rule: selected images vs ok images."""

    mid: str
    name: str | None
    train_before: int
    train_after: int
    validation_before: int
    validation_after: int
    images_before: int
    images_after: int
    trainable_before: bool
    trainable_after: bool

    @property
    def failed(self) -> int:
        return self.images_before - self.images_after


@dataclass(frozen=True)
class FetchFacts:
    """Everything the fetch sections show, and the label statistics of the
    selected and of the ok images."""

    images: int
    statuses: dict[str, int]
    retryable: dict[str, int]  # per status: images a refresh fetches again
    hosts: list[HostRow]  # most images first
    ok_bytes: int
    bytes_histogram: np.ndarray  # ok images over BYTE_EDGES
    bytes_min: int | None
    bytes_max: int | None
    sizes: Counter  # (width, height) of ok images
    formats: Counter  # of ok images
    selected_stats: pa.Table  # label_stats of every selected image
    ok_stats: pa.Table  # label_stats of the ok images
    changes: list[LabelChange]  # every label of the selected images
    inferred: InferredFacts | None  # from nested labels, if they say
    names: dict[str, str]  # mid -> display name, from nested labels


def host_of(urls: pa.Array) -> pa.Array:
    """The lower-cased host of each URL (NO_HOST where there is none)."""
    found = pc.extract_regex(urls.cast(pa.string()), _HOST).field("host")
    host = pc.utf8_lower(found)
    empty = pc.or_(pc.is_null(host), pc.equal(host, ""))
    return pc.if_else(pc.fill_null(empty, True), NO_HOST, host)


def _count(values: pa.Array) -> Counter:
    counts = pc.value_counts(values)
    return Counter(
        dict(
            zip(
                counts.field("values").to_pylist(),
                counts.field("counts").to_pylist(),
                strict=True,
            )
        )
    )


def _nested_items(table: pa.Table) -> pa.Array:
    labels = table["labels"].combine_chunks()
    return pc.list_flatten(labels)


class FetchFactsAccumulator:
    """Accumulates FetchFacts over record batches of a fetched images table."""

    def __init__(self) -> None:
        self.statuses: Counter = Counter()
        self.retryable: Counter = Counter()
        self.hosts: Counter = Counter()  # (host, status)
        self.bytes_histogram = np.zeros(len(BYTE_EDGES) - 1, dtype=np.int64)
        self.ok_bytes = 0
        self.bytes_min: int | None = None
        self.bytes_max: int | None = None
        self.sizes: Counter = Counter()
        self.formats: Counter = Counter()
        # Each image is folded once: selected = ok + failed.
        self.ok = LabelPartials()
        self.failed = LabelPartials()
        self.names: dict[str, str] = {}
        self.label_rows = 0
        self.inferred: Counter | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        table = pa.Table.from_batches([batch])
        status = table["status"].combine_chunks()
        self.statuses.update(_count(status))
        if "retryable" in table.column_names:
            again = pc.fill_null(table["retryable"].combine_chunks(), False)
            self.retryable.update(_count(status.filter(again)))
        self._add_hosts(table, status)
        is_ok = pc.equal(status, OK)
        ok = table.filter(is_ok)
        self._add_files(ok)
        if "labels" in table.column_names and "Subset" in table.column_names:
            self._add_labels(table, ok, table.filter(pc.invert(is_ok)))

    def _add_hosts(self, table: pa.Table, status: pa.Array) -> None:
        urls = [table[c] for c in ("url", "OriginalURL") if c in table.column_names]
        if not urls:
            return
        url = pc.coalesce(*urls) if len(urls) > 1 else urls[0]
        pairs = pa.table({"host": host_of(url.combine_chunks()), "status": status})
        grouped = pairs.group_by(["host", "status"], use_threads=False).aggregate(
            [("host", "count")]
        )
        for host, name, n in zip(
            grouped["host"].to_pylist(),
            grouped["status"].to_pylist(),
            grouped["host_count"].to_pylist(),
            strict=True,
        ):
            self.hosts[(host, name)] += n

    def _add_files(self, ok: pa.Table) -> None:
        if not ok.num_rows:
            return
        if "bytes" in ok.column_names:
            size = np.asarray(ok["bytes"].fill_null(0).to_numpy(), dtype=np.int64)
            self.ok_bytes += int(size.sum())
            low, high = int(size.min()), int(size.max())
            self.bytes_min = low if self.bytes_min is None else min(self.bytes_min, low)
            self.bytes_max = (
                high if self.bytes_max is None else max(self.bytes_max, high)
            )
            log = np.log10(np.maximum(size, 1))
            self.bytes_histogram += np.histogram(
                np.clip(log, BYTE_EDGES[0], BYTE_EDGES[-1]), BYTE_EDGES
            )[0]
        if "width" in ok.column_names and "height" in ok.column_names:
            known = ok.filter(
                pc.and_(pc.is_valid(ok["width"]), pc.is_valid(ok["height"]))
            )
            w = np.asarray(known["width"].to_numpy(), dtype=np.int64)
            h = np.asarray(known["height"].to_numpy(), dtype=np.int64)
            pairs, n = np.unique((w << 32) | h, return_counts=True)
            for pair, count in zip(pairs.tolist(), n.tolist(), strict=True):
                self.sizes[(pair >> 32, pair & 0xFFFFFFFF)] += count
        if "format" in ok.column_names:
            self.formats.update(_count(ok["format"].combine_chunks().fill_null("?")))

    def _add_labels(self, table: pa.Table, ok: pa.Table, failed: pa.Table) -> None:
        self.ok.add(fold_labels(labels_of_images(ok)))
        self.failed.add(fold_labels(labels_of_images(failed)))
        items = _nested_items(table)
        self.label_rows += len(items)
        pairs = pa.table(
            {"label": items.field("label"), "name": items.field("display_name")}
        ).filter(pc.is_valid(items.field("display_name")))
        unique = pairs.group_by(["label", "name"], use_threads=False).aggregate([])
        for mid, name in zip(
            unique["label"].to_pylist(), unique["name"].to_pylist(), strict=True
        ):
            self.names.setdefault(mid, name)
        if any(f.name == "inferred_from" for f in items.type):
            inferred = items.filter(pc.is_valid(items.field("inferred_from")))
            self.inferred = self.inferred or Counter()
            self.inferred.update(_count(inferred.field("label")))

    def facts(self, rule: TrainableRule) -> FetchFacts:
        empty_classes = CLASSES.empty_table()
        every = LabelPartials(
            self.ok.sources + self.failed.sources, self.ok.kinds + self.failed.kinds
        )
        selected = label_stats_table(every.compact(), empty_classes, rule)
        ok = label_stats_table(self.ok.compact(), empty_classes, rule)
        hosts: dict[str, dict[str, int]] = {}
        for (host, name), n in self.hosts.items():
            hosts.setdefault(host, {})[name] = n
        rows = [HostRow(h, sum(s.values()), dict(s)) for h, s in hosts.items()]
        rows.sort(key=lambda r: (-r.images, r.host))
        inferred = None
        if self.inferred is not None:
            inferred = InferredFacts(
                self.label_rows, sum(self.inferred.values()), dict(self.inferred)
            )
        return FetchFacts(
            images=sum(self.statuses.values()),
            statuses=dict(self.statuses),
            retryable=dict(self.retryable),
            hosts=rows,
            ok_bytes=self.ok_bytes,
            bytes_histogram=self.bytes_histogram,
            bytes_min=self.bytes_min,
            bytes_max=self.bytes_max,
            sizes=self.sizes,
            formats=self.formats,
            selected_stats=selected,
            ok_stats=ok,
            changes=label_changes(selected, ok, rule, self.names),
            inferred=inferred,
            names=self.names,
        )


def label_changes(
    before: pa.Table, after: pa.Table, rule: TrainableRule, names: dict[str, str]
) -> list[LabelChange]:
    """Per label of `before`: the rule's counts and verdict before and after."""
    train = f"train_{rule.train_source}_positive_images"
    validation = f"validation_{rule.validation_source}_positive_images"

    def by_label(stats: pa.Table) -> dict[str, tuple[int, int, int, bool]]:
        if not stats.num_rows:
            return {}
        return dict(
            zip(
                stats["label"].to_pylist(),
                zip(
                    stats[train].to_pylist(),
                    stats[validation].to_pylist(),
                    images_of(stats, "any").tolist(),
                    trainable_mask(stats, rule).tolist(),
                    strict=True,
                ),
                strict=True,
            )
        )

    now = by_label(after)
    changes = []
    for mid, (t0, v0, i0, ok0) in by_label(before).items():
        t1, v1, i1, ok1 = now.get(
            mid, (0, 0, 0, rule.min_train + rule.min_validation == 0)
        )
        changes.append(
            LabelChange(mid, names.get(mid), t0, t1, v0, v1, i0, i1, ok0, bool(ok1))
        )
    return changes
