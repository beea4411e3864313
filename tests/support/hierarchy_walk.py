"""Independent walks of the 600-class box hierarchy, to check ours against."""

from __future__ import annotations

import json

from support.paths import REAL

BBOX = REAL / "bbox_labels_600_hierarchy.json"


def transitive(edges: dict[str, set[str]], start: str) -> set[str]:
    found, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in found:
                found.add(nxt)
                todo.append(nxt)
    return found


def bbox_edges() -> tuple[dict[str, set[str]], set[str], set[tuple[str, str]]]:
    """(child -> parents by Subcategory, every mid below the root, part links)."""
    root = json.loads(BBOX.read_text())
    up: dict[str, set[str]] = {}
    mids: set[str] = set()
    parts: set[tuple[str, str]] = set()

    def walk(node, parent):
        mids.add(node["LabelName"])
        if parent:
            up.setdefault(node["LabelName"], set()).add(parent)
        for child in node.get("Subcategory", []):
            walk(child, node["LabelName"])
        for part in node.get("Part", []):
            parts.add((part["LabelName"], node["LabelName"]))
            walk(part, None)

    for child in root["Subcategory"]:
        walk(child, None)
    return up, mids, parts
