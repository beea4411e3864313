"""Label hierarchies: read the two published formats, walk them, expand labels.

- Open Images' `bbox_labels_600_hierarchy.json`: nested nodes {"LabelName",
  "Subcategory": [...], "Part": [...]}. Subcategory is "is a" and propagates;
  Part is "part of" and is kept (`Hierarchy.wholes`) but never propagated, as in
  the official Open Images expansion. The top node (/m/0bl9f, "Entity") is a
  container, not a label. A label may sit under several parents.
- Tencent ML-Images' `dictionary_and_semantic_hierarchy.txt`: tab separated
  category_index, category_id (a WordNet id), index_of_parent_category (-1 for
  a root), category name; one parent each.

Expansion (pure Arrow, no Beam): every positive label row (Confidence > 0) also
implies its ancestors, as rows of the same image and Source whose
`InferredFrom` names the child they came from (the most confident one, then
the smallest mid). A label row the input already has, positive or a verified
negative, is never replaced by an inferred one; negatives imply nothing; and a
label a human verified absent from an image (a human source, Confidence 0) is
never inferred on that image, from any source.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.releases import HUMAN_SOURCES

INFERRED_FROM = "InferredFrom"
_TENCENT_HEADER = "category_index"


class HierarchyError(ValueError):
    """A hierarchy file that is neither format, or is inconsistent."""


@dataclass(frozen=True)
class Hierarchy:
    parents: Mapping[str, tuple[str, ...]]  # every label -> its "is a" parents
    wholes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # part of
    names: Mapping[str, str] = field(default_factory=dict)  # Tencent only
    index: Mapping[str, int] = field(default_factory=dict)  # Tencent only

    @property
    def labels(self) -> list[str]:
        return sorted(self.parents)

    def ancestors(self, label: str) -> tuple[str, ...]:
        """Every label `label` is a kind of, nearest first (each level sorted)."""
        return _walk(label, self.parents)

    def descendants(self, label: str) -> tuple[str, ...]:
        """Every label that is a kind of `label`, nearest first."""
        return _walk(label, self._children())

    def closure(self) -> pa.Table:
        """(LabelName, Ancestor) for every label and each of its ancestors."""
        pairs = [(c, a) for c in sorted(self.parents) for a in self.ancestors(c)]
        return pa.table(
            {
                "LabelName": pa.array([c for c, _ in pairs], pa.string()),
                "Ancestor": pa.array([a for _, a in pairs], pa.string()),
            }
        )

    def _children(self) -> dict[str, tuple[str, ...]]:
        children: dict[str, list[str]] = {}
        for child, parents in self.parents.items():
            for parent in parents:
                children.setdefault(parent, []).append(child)
        return {p: tuple(sorted(c)) for p, c in children.items()}


def _walk(start: str, edges: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Breadth-first from `start` along `edges`; cycle-safe, no repeats."""
    seen, order, level = {start}, [], [start]
    while level:
        following = sorted({n for node in level for n in edges.get(node, ())} - seen)
        seen.update(following)
        order.extend(following)
        level = following
    return tuple(order)


def parse_bbox_hierarchy(text: str) -> Hierarchy:
    """bbox_labels_600_hierarchy.json -> Hierarchy (the top node is not a label)."""
    try:
        root = json.loads(text)
    except json.JSONDecodeError as e:
        raise HierarchyError(f"not JSON: {e}") from None
    parents: dict[str, set[str]] = {}
    wholes: dict[str, set[str]] = {}

    def visit(node, parent: str | None) -> None:
        if not isinstance(node, dict) or "LabelName" not in node:
            raise HierarchyError(f"a node without LabelName: {str(node)[:80]}")
        label = node["LabelName"]
        parents.setdefault(label, set())
        if parent is not None:
            parents[label].add(parent)
        for child in node.get("Subcategory", ()):
            visit(child, label)
        for part in node.get("Part", ()):
            visit(part, None)
            wholes.setdefault(part["LabelName"], set()).add(label)

    if not isinstance(root, dict):
        raise HierarchyError("the top level is not an object")
    for child in root.get("Subcategory", ()):
        visit(child, None)
    return Hierarchy(
        parents={k: tuple(sorted(v)) for k, v in sorted(parents.items())},
        wholes={k: tuple(sorted(v)) for k, v in sorted(wholes.items())},
    )


def parse_tencent_hierarchy(text: str) -> Hierarchy:
    """dictionary_and_semantic_hierarchy.txt -> Hierarchy keyed by category_id."""
    rows = [line.split("\t") for line in text.splitlines() if line.strip()]
    if not rows or rows[0][0] != _TENCENT_HEADER:
        raise HierarchyError(f"no '{_TENCENT_HEADER}' header")
    by_index: dict[int, tuple[str, int, str]] = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 4:
            raise HierarchyError(f"line {number}: {len(row)} fields, expected 4")
        try:
            index, parent = int(row[0]), int(row[2])
        except ValueError:
            raise HierarchyError(f"line {number}: indexes must be integers") from None
        by_index[index] = (row[1], parent, row[3])
    parents, names, indexes = {}, {}, {}
    for index, (category, parent, name) in sorted(by_index.items()):
        if parent != -1 and parent not in by_index:
            raise HierarchyError(f"{category}: parent index {parent} is not listed")
        parents[category] = (by_index[parent][0],) if parent != -1 else ()
        names[category] = name
        indexes[category] = index
    return Hierarchy(parents=parents, names=names, index=indexes)


def load_hierarchy(path: str) -> Hierarchy:
    """Either format, from any Beam filesystem, told apart by its first byte."""
    try:
        with FileSystems.open(path) as f:
            text = io.TextIOWrapper(f, encoding="utf-8-sig").read()
    except (OSError, UnicodeDecodeError) as e:
        raise HierarchyError(f"{path}: cannot read it: {e}") from None
    try:
        if text.lstrip().startswith("{"):
            return parse_bbox_hierarchy(text)
        return parse_tencent_hierarchy(text)
    except HierarchyError as e:
        raise HierarchyError(
            f"{path}: {e} (expected bbox_labels_600_hierarchy.json or "
            "dictionary_and_semantic_hierarchy.txt)"
        ) from None


def with_descendants(labels: Iterable[str], hierarchy: Hierarchy) -> tuple[str, ...]:
    """The labels and every label under them, sorted."""
    found = set(labels)
    for label in list(found):
        found.update(hierarchy.descendants(label))
    return tuple(sorted(found))


def expand_ancestors(labels: pa.Table, closure: pa.Table) -> pa.Table:
    """Flat label rows (ImageID, Source, LabelName, Confidence, ...) -> the same
    rows (inferred_from null) plus the inferred ancestor rows, sorted by
    (ImageID, LabelName, Source). Columns other than those four are null in
    inferred rows."""
    explicit = labels
    if INFERRED_FROM not in labels.column_names:
        explicit = labels.append_column(
            pa.field(INFERRED_FROM, pa.string()),
            pa.nulls(labels.num_rows, pa.string()),
        )
    positive = labels.select(["ImageID", "Source", "LabelName", "Confidence"]).filter(
        pc.greater(labels["Confidence"], 0)
    )
    if not positive.num_rows or not closure.num_rows:
        return explicit
    candidates = positive.join(closure, keys="LabelName", join_type="inner")
    if not candidates.num_rows:
        return explicit
    candidates = candidates.sort_by(
        [
            ("ImageID", "ascending"),
            ("Source", "ascending"),
            ("Ancestor", "ascending"),
            ("Confidence", "descending"),
            ("LabelName", "ascending"),
        ]
    )
    best = candidates.filter(
        _first_of_groups(candidates, ["ImageID", "Source", "Ancestor"])
    )
    present = labels.select(["ImageID", "Source", "LabelName"]).rename_columns(
        ["ImageID", "Source", "Ancestor"]
    )
    inferred = best.join(
        present, keys=["ImageID", "Source", "Ancestor"], join_type="left anti"
    ).join(
        _verified_negatives(labels),
        keys=["ImageID", "Ancestor"],
        join_type="left anti",
    )
    columns = {
        "ImageID": inferred["ImageID"],
        "Source": inferred["Source"],
        "LabelName": inferred["Ancestor"],
        "Confidence": inferred["Confidence"],
        INFERRED_FROM: inferred["LabelName"],
    }
    rows = pa.Table.from_arrays(
        [
            columns[f.name].cast(f.type)
            if f.name in columns
            else pa.nulls(inferred.num_rows, f.type)
            for f in explicit.schema
        ],
        schema=explicit.schema,
    )
    return pa.concat_tables([explicit, rows]).sort_by(
        [("ImageID", "ascending"), ("LabelName", "ascending"), ("Source", "ascending")]
    )


def _verified_negatives(labels: pa.Table) -> pa.Table:
    """(ImageID, Ancestor) of every label a human verified absent from an
    image: no inferred row may say it is there, whatever its source."""
    human = pc.is_in(labels["Source"], value_set=pa.array(sorted(HUMAN_SOURCES)))
    negative = pc.and_(human, pc.equal(labels["Confidence"], 0))
    return (
        labels.filter(negative)
        .select(["ImageID", "LabelName"])
        .rename_columns(["ImageID", "Ancestor"])
    )


def _first_of_groups(table: pa.Table, keys: list[str]) -> pa.Array:
    """True for the first row of each run of equal `keys` (table sorted by them)."""
    n = table.num_rows
    first = np.zeros(n, dtype=bool)
    first[0] = True
    for key in keys:
        column = table[key].combine_chunks()
        first[1:] |= pc.not_equal(column.slice(1), column.slice(0, n - 1)).to_numpy(
            zero_copy_only=False
        )
    return pa.array(first)
