"""Label statistics: the fold against plain Python, the CombineFn three ways, rules."""

import random
from collections import defaultdict

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pytest

from oibeam.transforms.stats.label_stats import LabelStatsCombineFn
from oibeam.transforms.stats.partials import fold_labels
from oibeam.transforms.stats.tables import (
    label_counts_table,
    label_stats_table,
    trainable_labels_csv,
)
from oibeam.transforms.stats.trainable import PRESETS, make_rule, trainable_mask

CLASSES = pa.table(
    {"LabelName": ["/m/a", "/m/b"], "DisplayName": ["Apple", "Bee, small"]}
)
HUMAN = {"human", "verification", "crowdsource-verification"}


def _random_labels(seed: int, images: int = 300) -> pa.Table:
    rng = random.Random(seed)
    rows = []
    for _ in range(images):
        image = f"{rng.getrandbits(64):016x}"
        subset = rng.choice(["train", "train", "validation", "test"])
        for label in rng.sample(
            ["/m/a", "/m/b", "/m/c", "/m/d", "/g/e"], rng.randint(0, 4)
        ):
            for source in rng.sample(sorted(HUMAN | {"machine"}), rng.randint(1, 3)):
                if source == "machine":
                    confidence = rng.choice([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
                else:
                    confidence = float(rng.random() < 0.7)
                rows.append((image, source, label, confidence, subset))
    rng.shuffle(rows)
    names = ["ImageID", "Source", "LabelName", "Confidence", "Subset"]
    return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})


def _reference(table: pa.Table):
    """Statistics computed the slow, obvious way."""
    verdict = defaultdict(lambda: -1.0)  # (image, label, subset, kind) -> max conf
    counts = defaultdict(lambda: [0, 0, 0, 0.0])  # (label, subset, source)
    for r in table.to_pylist():
        key = (r["LabelName"], r["Subset"], r["Source"])
        c = counts[key]
        c[0] += 1
        c[1 if r["Confidence"] > 0 else 2] += 1
        c[3] += r["Confidence"]
        kind = "human" if r["Source"] in HUMAN else "machine"
        v = (r["ImageID"], r["LabelName"], r["Subset"], kind)
        verdict[v] = max(verdict[v], r["Confidence"])
    for (image, label, subset, kind), best in list(verdict.items()):
        human = verdict.get((image, label, subset, "human"))
        if kind == "human" or human is None:  # a human verdict overrules
            verdict[(image, label, subset, "any")] = best
    stats = defaultdict(lambda: defaultdict(int))
    for (image, label, subset, kind), best in verdict.items():
        sign = "positive" if best > 0 else "negative"
        stats[label][f"{subset}_{kind}_{sign}_images"] += 1
        if kind == "machine":
            stats[label]["machine_labels"] += 1
            stats[label]["confidence_sum"] += best
            stats[label][f"bin{min(int(best * 10 + 1e-9), 9)}"] += 1
            human = verdict.get((image, label, subset, "human"))
            if subset == "validation" and human is not None:
                stats[label]["verified"] += 1
                stats[label]["confirmed"] += human > 0
    return counts, stats


def _check(partials, table):
    counts, stats = _reference(table)
    got_counts = {
        (r["label"], r["subset"], r["source"]): [
            r["rows"],
            r["positive_images"],
            r["negative_images"],
            r["confidence_sum"],
        ]
        for r in label_counts_table(partials).to_pylist()
    }
    assert got_counts.keys() == counts.keys()
    for key, want in counts.items():
        assert got_counts[key][:3] == want[:3]
        assert got_counts[key][3] == pytest.approx(want[3])
    rule = PRESETS["v1"]
    got = {
        r["label"]: r for r in label_stats_table(partials, CLASSES, rule).to_pylist()
    }
    assert got.keys() == stats.keys()
    for label, want in stats.items():
        row = got[label]
        for column, value in want.items():
            if column.endswith("_images") or column == "machine_labels":
                assert row[column] == value, (label, column)
        assert row["machine_confidence_histogram"] == [
            want[f"bin{i}"] for i in range(10)
        ]
        assert row["machine_verified_validation"] == want["verified"]
        assert row["machine_confirmed_validation"] == want["confirmed"]
        if want["machine_labels"]:
            assert row["machine_confidence_mean"] == pytest.approx(
                want["confidence_sum"] / want["machine_labels"]
            )
        if want["verified"]:
            assert row["machine_precision"] == pytest.approx(
                want["confirmed"] / want["verified"]
            )
        else:
            assert row["machine_precision"] is None
    assert got["/m/a"]["display_name"] == "Apple"
    assert got["/m/c"]["display_name"] is None


def test_fold_matches_plain_python():
    table = _random_labels(1)
    _check(fold_labels(table).compact(), table)


def test_combine_fn_three_ways():
    fn = LabelStatsCombineFn()
    table = _random_labels(2, images=600)
    # As the join emits them: every row of an image in the same table.
    ids = sorted(set(table.column("ImageID").to_pylist()))
    pieces = [
        table.filter(pa.compute.is_in(table["ImageID"], pa.array(ids[i : i + 37])))
        for i in range(0, len(ids), 37)
    ]
    # 1. sequential adds
    acc = fn.create_accumulator()
    for piece in pieces:
        acc = fn.add_input(acc, piece)
    _check(fn.extract_output(acc), table)
    # 2. merged partial accumulators
    accs = []
    for i in range(0, len(pieces), 5):
        a = fn.create_accumulator()
        for piece in pieces[i : i + 5]:
            a = fn.add_input(a, piece)
        accs.append(a)
    _check(fn.extract_output(fn.merge_accumulators(accs)), table)
    # 3. compact after merge, then merge again
    merged = fn.compact(fn.merge_accumulators(accs[:2]))
    rest = fn.merge_accumulators([merged, *accs[2:]])
    _check(fn.extract_output(fn.compact(rest)), table)


def test_empty_input_gives_empty_tables():
    fn = LabelStatsCombineFn()
    partials = fn.extract_output(fn.create_accumulator())
    assert label_counts_table(partials).num_rows == 0
    assert label_stats_table(partials, CLASSES, PRESETS["v1"]).num_rows == 0


def _stats_with(train_machine, train_human, validation_human) -> pa.Table:
    rows = {
        "train_machine_positive_images": [train_machine],
        "train_human_positive_images": [train_human],
        "train_any_positive_images": [max(train_machine, train_human)],
        "validation_human_positive_images": [validation_human],
        "validation_machine_positive_images": [0],
        "validation_any_positive_images": [validation_human],
    }
    return pa.table(rows)


@pytest.mark.parametrize(
    ("counts", "v1", "v2"),
    [
        ((20, 0, 50), True, False),
        ((19, 0, 50), False, False),
        ((20, 30, 49), False, True),
        ((0, 30, 5), False, True),
        ((0, 29, 5), False, False),
        ((100, 30, 4), False, False),
    ],
)
def test_trainable_presets(counts, v1, v2):
    stats = _stats_with(*counts)
    assert bool(trainable_mask(stats, PRESETS["v1"])[0]) is v1
    assert bool(trainable_mask(stats, PRESETS["v2"])[0]) is v2


def test_rule_overrides():
    rule = make_rule("v1", min_validation=10, train_source="any")
    assert rule.name == "v1+custom"
    assert (rule.train_source, rule.min_train, rule.min_validation) == ("any", 20, 10)
    assert make_rule("v2") is PRESETS["v2"]
    assert make_rule("v1", min_train=20) is PRESETS["v1"]
    with pytest.raises(ValueError, match="unknown trainable rule"):
        make_rule("v9")
    with pytest.raises(ValueError, match="not one of"):
        make_rule("v1", train_source="robots")


def test_trainable_csv_quotes_names():
    table = _random_labels(3, images=2000)
    stats = label_stats_table(
        fold_labels(table).compact(),
        CLASSES,
        make_rule("v1", min_train=1, min_validation=1),
    )
    text = trainable_labels_csv(stats)
    assert text.startswith("LabelName,DisplayName\n")
    assert '/m/b,"Bee, small"\n' in text
