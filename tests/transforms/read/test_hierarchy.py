"""Label hierarchies on the real published files, checked against independent
walks written here, and ancestor expansion of label rows."""

from __future__ import annotations

import csv

import pyarrow as pa
import pytest

from oibeam.transforms.read.hierarchy import (
    INFERRED_FROM,
    Hierarchy,
    HierarchyError,
    expand_ancestors,
    load_hierarchy,
    with_descendants,
)

from support.hierarchy_walk import BBOX, bbox_edges, transitive
from support.paths import REAL

TENCENT = REAL.parent / "tencent" / "dictionary_and_semantic_hierarchy.txt"


def test_the_600_box_hierarchy_matches_an_independent_walk():
    h = load_hierarchy(str(BBOX))
    up, mids, parts = bbox_edges()
    assert set(h.labels) == mids and "/m/0bl9f" not in mids  # the root is no label
    assert len(mids) == 601
    down: dict[str, set[str]] = {}
    for child, parents in up.items():
        for parent in parents:
            down.setdefault(parent, set()).add(child)
    for mid in mids:
        assert set(h.ancestors(mid)) == transitive(up, mid), mid
        assert set(h.descendants(mid)) == transitive(down, mid), mid
        assert len(h.ancestors(mid)) == len(set(h.ancestors(mid)))
    assert any(len(p) > 1 for p in up.values())  # some labels have two parents
    # Parts are recorded, never propagated.
    assert {(p, w) for p, ws in h.wholes.items() for w in ws} == parts
    part, whole = sorted(parts)[0]
    if whole not in transitive(up, part):
        assert whole not in h.ancestors(part)
    pairs = h.closure()
    assert pairs.num_rows == sum(len(transitive(up, m)) for m in mids)


def test_ancestors_come_nearest_first():
    h = Hierarchy(parents={"dog": ("mammal",), "mammal": ("animal",), "animal": ()})
    assert h.ancestors("dog") == ("mammal", "animal")
    assert h.descendants("animal") == ("mammal", "dog")
    assert with_descendants(["mammal", "cat"], h) == ("cat", "dog", "mammal")


def test_the_tencent_hierarchy_matches_its_parent_indexes():
    h = load_hierarchy(str(TENCENT))
    with TENCENT.open(newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))[1:]
    assert len(h.labels) == len(rows) == 11166
    by_index = {int(r[0]): r for r in rows}
    for index, category, parent, name in rows[::7]:
        chain, p = [], int(parent)
        while p != -1:
            chain.append(by_index[p][1])
            p = int(by_index[p][2])
        assert h.ancestors(category) == tuple(chain), category
        assert h.names[category] == name and h.index[category] == int(index)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ImageID,LabelName\n", "no 'category_index' header"),
        ('{"LabelName": "/m/x", "Subcategory": [{"Name": 1}]}', "without LabelName"),
        ("category_index\tcategory_id\tparent\tname\n0\tn1\t7\tthing\n", "not listed"),
        ("{not json", "not JSON"),
    ],
)
def test_a_file_in_neither_format_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "h.txt"
    path.write_text(text)
    with pytest.raises(HierarchyError, match=message) as caught:
        load_hierarchy(str(path))
    assert str(path) in str(caught.value)


def _labels(rows) -> pa.Table:
    return pa.table(
        {
            "ImageID": [r[0] for r in rows],
            "Source": [r[1] for r in rows],
            "LabelName": [r[2] for r in rows],
            "Confidence": pa.array([r[3] for r in rows], pa.float32()),
            "Extra": [f"x{i}" for i in range(len(rows))],
        }
    )


def test_expansion_infers_ancestors_of_positives_only():
    h = Hierarchy(
        parents={
            "/m/dog": ("/m/mammal",),
            "/m/cat": ("/m/mammal",),
            "/m/mammal": ("/m/animal",),
            "/m/animal": (),
            "/m/car": ("/m/vehicle",),
            "/m/vehicle": (),
        }
    )
    labels = _labels(
        [
            ("a", "machine", "/m/dog", 0.6),
            ("a", "machine", "/m/cat", 0.9),
            ("a", "human", "/m/dog", 0.0),  # a verified negative: implies nothing
            ("b", "human", "/m/car", 1.0),
            ("b", "human", "/m/vehicle", 0.0),  # explicit, kept as it is
            ("c", "human", "/m/dog", 1.0),
            ("c", "human", "/m/mammal", 1.0),  # explicit: not inferred again
        ]
    )
    out = expand_ancestors(labels, h.closure())
    rows = {(r["ImageID"], r["Source"], r["LabelName"]): r for r in out.to_pylist()}
    inferred = {
        k: (r["Confidence"], r[INFERRED_FROM])
        for k, r in rows.items()
        if r[INFERRED_FROM]
    }
    assert inferred == {
        ("a", "machine", "/m/mammal"): (pytest.approx(0.9), "/m/cat"),
        ("a", "machine", "/m/animal"): (pytest.approx(0.9), "/m/cat"),
        ("c", "human", "/m/animal"): (1.0, "/m/dog"),  # a tie: the smaller mid
    }
    assert rows[("b", "human", "/m/vehicle")]["Confidence"] == 0.0
    assert out.num_rows == labels.num_rows + 3
    assert rows[("a", "machine", "/m/mammal")]["Extra"] is None
    assert rows[("a", "machine", "/m/dog")]["Extra"] == "x0"
    keys = list(
        zip(out["ImageID"].to_pylist(), out["LabelName"].to_pylist(), strict=True)
    )
    assert keys == sorted(keys)


@pytest.mark.parametrize("child_source", ["crowdsource-verification", "machine"])
def test_a_human_verified_negative_blocks_an_inferred_positive(child_source):
    """Real V3 validation rows of image 00437aa0ab4abf9d: humans said "no
    Animal" (verification) and "Bird" (crowdsource-verification). Bird is an
    Animal in the 600-class hierarchy, but the verified "no" stands: no Animal
    row is inferred, from that source or any other."""
    h = load_hierarchy(str(BBOX))
    assert "/m/0jbk" in h.ancestors("/m/015p6")  # Bird is an Animal
    labels = _labels(
        [
            ("00437aa0ab4abf9d", "verification", "/m/0jbk", 0.0),
            ("00437aa0ab4abf9d", child_source, "/m/015p6", 1.0),
            ("0000000000000001", child_source, "/m/015p6", 1.0),  # no verdict
        ]
    )
    out = expand_ancestors(labels, h.closure()).to_pylist()
    animal = [
        (r["ImageID"], r["Source"], r["Confidence"])
        for r in out
        if r["LabelName"] == "/m/0jbk"
    ]
    assert animal == [
        ("0000000000000001", child_source, 1.0),  # inferred where nobody said no
        ("00437aa0ab4abf9d", "verification", 0.0),  # the verdict, alone
    ]


def test_expansion_of_real_labels_matches_a_plain_python_walk():
    h = load_hierarchy(str(BBOX))
    up, _, _ = bbox_edges()
    # The labels of the real V3 boxes: all boxable, so all in this hierarchy.
    with (REAL / "v3_2017_11" / "train" / "annotations-human-bbox.csv").open() as f:
        rows = [
            (r["ImageID"], r["Source"], r["LabelName"], float(r["Confidence"]))
            for r in csv.DictReader(f)
        ]
    out = expand_ancestors(_labels(rows), h.closure())
    explicit = {(i, s, label) for i, s, label, _ in rows}
    expected = {
        (i, s, a)
        for i, s, label, c in rows
        if c > 0
        for a in transitive(up, label)
        if (i, s, a) not in explicit
    }
    got = {
        (r["ImageID"], r["Source"], r["LabelName"])
        for r in out.to_pylist()
        if r[INFERRED_FROM] is not None
    }
    assert got == expected and len(expected) > 200
