"""Selection: per-image conditions, stable sampling, caps and limits, name lookup."""

import random

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.util import assert_that, equal_to

from oibeam.schemas.tables import images_schema
from oibeam.transforms.select.select_images import (
    SelectImages,
    SmallestPerGroupFn,
    candidates,
    rank_pairs,
    resolve_labels,
    selection_digest,
)
from oibeam.transforms.select.selection import Selection


def _images(rows) -> pa.Table:
    """rows: (ImageID, Subset, [(label, source, confidence), ...])"""
    schema = images_schema(())
    columns = {f.name: pa.nulls(len(rows), f.type) for f in schema}
    columns["ImageID"] = pa.array([r[0] for r in rows])
    columns["Subset"] = pa.array([r[1] for r in rows])
    columns["labels"] = pa.array(
        [
            [
                {"label": name, "display_name": None, "source": s, "confidence": c}
                for name, s, c in r[2]
            ]
            for r in rows
        ],
        schema.field("labels").type,
    )
    return pa.table(columns, schema=schema)


TABLE = _images(
    [
        ("000000000000000a", "train", [("/m/cat", "machine", 0.9)]),
        ("000000000000000b", "train", [("/m/cat", "verification", 0.0)]),
        (
            "000000000000000c",
            "validation",
            [("/m/cat", "machine", 0.8), ("/m/cat", "verification", 0.0)],
        ),
        (
            "000000000000000d",
            "validation",
            [("/m/dog", "crowdsource-verification", 1.0)],
        ),
        ("000000000000000e", "test", []),
    ]
)


def _ids(table):
    return [i[-1] for i in table.column("ImageID").to_pylist()]


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (Selection(), list("abcde")),
        (Selection(subsets=("validation",)), list("cd")),
        (Selection(labels=("/m/cat",)), ["a"]),  # b: a negative; c: humans said no
        (Selection(labels=("/m/cat",), source="machine"), ["a", "c"]),
        (Selection(labels=("/m/cat",), source="human"), []),
        (Selection(source="human"), ["d"]),
        (Selection(min_confidence=0.85), ["a", "d"]),
        (Selection(trainable_only=True), ["d"]),
    ],
)
def test_per_image_conditions(selection, expected):
    trainable = frozenset({"/m/dog"})
    assert _ids(candidates(TABLE, selection, trainable)) == expected


def _random_table(n=2000, seed=0):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        labels = [
            (f"/m/{c}", "machine", rng.choice([0.5, 0.7, 0.9]))
            for c in rng.sample("abcdef", rng.randint(1, 3))
        ]
        rows.append((f"{rng.getrandbits(64):016x}", "train", labels))
    return _images(rows)


def test_sampling_is_stable_and_about_right():
    table = _random_table()
    picked = candidates(table, Selection(sample=0.25))
    assert 0.2 * table.num_rows < picked.num_rows < 0.3 * table.num_rows
    reordered = table.take(pa.array(list(range(table.num_rows))[::-1]))
    assert sorted(_ids(candidates(reordered, Selection(sample=0.25)))) == sorted(
        _ids(picked)
    )


def test_smallest_per_group_three_ways():
    table = _random_table(3000, seed=1)
    pairs = rank_pairs(table, Selection(max_per_label=7), None, per_label=True)
    fn = SmallestPerGroupFn(7)
    pieces = [pairs.slice(i, 500) for i in range(0, pairs.num_rows, 500)]
    sequential = fn.create_accumulator()
    for piece in pieces:
        sequential = fn.add_input(sequential, piece)
    merged = fn.merge_accumulators(
        [fn.add_input(fn.create_accumulator(), p) for p in pieces]
    )
    expected = {}
    for group, digest in zip(
        pairs["group"].to_pylist(), pairs["digest"].to_pylist(), strict=True
    ):
        expected.setdefault(group, []).append(digest)
    expected = {g: sorted(d)[:7][-1] for g, d in expected.items()}
    assert fn.extract_output(sequential) == expected
    assert fn.extract_output(merged) == expected


def _reference(table, per_label, limit):
    """Plain Python: cap per label by digest, then the overall limit."""
    ids = table.column("ImageID").to_pylist()
    digests = dict(zip(ids, selection_digest(table["ImageID"]).tolist(), strict=True))
    chosen = set(ids)
    if per_label:
        by_label = {}
        for image, labels in zip(ids, table.column("labels").to_pylist(), strict=True):
            for item in labels:
                by_label.setdefault(item["label"], set()).add(image)
        chosen = set()
        for images in by_label.values():
            chosen |= set(sorted(images, key=digests.get)[:per_label])
    if limit:
        chosen = set(sorted(chosen, key=digests.get)[:limit])
    return sorted(chosen)


def test_select_images_composite_caps_and_limit(pipeline):
    table = _random_table(1500, seed=2)
    selection = Selection(max_per_label=40, limit=100)
    expected = _reference(table, 40, 100)
    pieces = [(i, table.slice(i * 300, 300)) for i in range(5)]
    with pipeline as p:
        selected = (
            p
            | beam.Create(pieces).with_output_types(tuple[int, pa.Table])
            | SelectImages(selection)
            | beam.FlatMap(lambda e: e[1].column("ImageID").to_pylist())
        )
        assert_that(selected, equal_to(expected))
    assert len(expected) == 100  # the limit binds (the caps alone keep 124)


def test_resolve_labels_by_name_or_mid():
    names = {"/m/01": "Cat", "/m/02": "Dog", "/m/03": "Dog", "/m/04": "Apple"}
    assert resolve_labels(("cat", "/m/02", "APPLE"), names) == (
        "/m/01",
        "/m/02",
        "/m/04",
    )
    with pytest.raises(ValueError, match=r"ambiguous: /m/02 \(Dog\), /m/03 \(Dog\)"):
        resolve_labels(("Dog",), names)
    with pytest.raises(ValueError, match="did you mean: cat"):
        resolve_labels(("cats",), names)
