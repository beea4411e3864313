#!/usr/bin/env python3
"""Benchmark boxes and hierarchy expansion in `oibeam tables`, against DuckDB.

    python benchmarks/bench_boxes.py --images 1000000 [--boxes-per-image 2]

1. reuses bench_tables' synthetic V1 release (cached per size and seed) and adds
   a 13-column box file (--boxes-per-image boxes on average, on the images'
   positive human labels) and a hierarchy over the release's labels in the
   bbox_labels_600_hierarchy.json format (3 levels),
2. runs `oibeam tables` three ways: as before, with --boxes, and with --boxes
   --hierarchy --expand-ancestors,
3. runs DuckDB on the same CSVs doing what `tables --boxes` does: the label
   counts, the trainable set, the images table with nested labels and nested
   boxes, and box counts per label,
4. checks that both agree on the boxes per label, and prints wall time, CPU and
   peak memory of each, and the ratios.

A JSON line per run is appended to WORKDIR/results.jsonl.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import random
import sys
from pathlib import Path

import pyarrow.parquet as pq
from bench_tables import DUCKDB_SQL, ROOT, measure, sample

from oibeam.schemas.boxes import BOX_FLAGS, BOX_REQUIRED

BOX_HEADER = [*BOX_REQUIRED, *BOX_FLAGS]  # the 13-column form

DUCKDB_BOXES_SQL = """
create table boxes as select * from read_csv({boxes}, header=true,
    columns={{'ImageID': 'VARCHAR', 'Source': 'VARCHAR', 'LabelName': 'VARCHAR',
              'Confidence': 'DOUBLE', 'XMin': 'DOUBLE', 'XMax': 'DOUBLE',
              'YMin': 'DOUBLE', 'YMax': 'DOUBLE', 'IsOccluded': 'TINYINT',
              'IsTruncated': 'TINYINT', 'IsGroupOf': 'TINYINT',
              'IsDepiction': 'TINYINT', 'IsInside': 'TINYINT'}});
copy (
    select LabelName as label, count(*) as boxes,
           count(distinct ImageID) as images_with_boxes
    from boxes where XMin between 0 and XMax and XMax <= 1
                 and YMin between 0 and YMax and YMax <= 1
    group by all
) to '{out}/box_counts.parquet';
copy (
    select i.*, l.labels, b.boxes from images i left join (
        select ImageID, list({{'label': LabelName, 'display_name': n.DisplayName,
                              'source': Source, 'confidence': Confidence}}
                             order by LabelName, Source) as labels
        from labels left join names n using (LabelName) group by ImageID
    ) l using (ImageID) left join (
        select ImageID, list({{'label': LabelName, 'source': Source,
                              'confidence': Confidence, 'x_min': XMin, 'x_max': XMax,
                              'y_min': YMin, 'y_max': YMax,
                              'is_occluded': IsOccluded, 'is_truncated': IsTruncated,
                              'is_group_of': IsGroupOf, 'is_depiction': IsDepiction,
                              'is_inside': IsInside}}
                             order by LabelName, Source, YMin, XMin) as boxes
        from boxes group by ImageID
    ) b using (ImageID)
) to '{out}/images.parquet' (compression zstd);
"""


def write_boxes(files: dict, path: Path, per_image: float, seed: int) -> int:
    """A 13-column box file over the release's positive labels: ~8 labels per
    image, each boxed with probability per_image / 16, 1-3 boxes each."""
    if path.exists():
        return sum(1 for _ in path.open()) - 1
    rng = random.Random(seed)
    rows = 0
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(BOX_HEADER)
        for labels in files["labels"]:
            with open(labels, newline="") as f:
                for r in csv.DictReader(f):
                    if float(r["Confidence"]) <= 0 or rng.random() > per_image / 16:
                        continue
                    for _ in range(rng.choice((1, 2, 3))):
                        x0, x1 = sorted(rng.random() for _ in range(2))
                        y0, y1 = sorted(rng.random() for _ in range(2))
                        flags = [rng.choice("01") for _ in range(4)]
                        flags.append(rng.choice(("-1", "0", "1")))
                        box = [f"{v:.6f}" for v in (x0, x1, y0, y1)]
                        writer.writerow(
                            [r["ImageID"], "xclick", r["LabelName"], "1", *box, *flags]
                        )
                        rows += 1
    return rows


def write_hierarchy(classes: str, path: Path, seed: int) -> None:
    """A 3-level is-a hierarchy over the release's labels (~40 top nodes)."""
    rng = random.Random(seed)
    with open(classes, newline="") as f:
        mids = [r[0] for r in csv.reader(f) if r]
    rng.shuffle(mids)
    top, middle, leaves = mids[:40], mids[40:400], mids[400:]
    children: dict[str, list[str]] = {m: [] for m in top + middle}
    for m in middle:
        children[rng.choice(top)].append(m)
    for m in leaves:
        children[rng.choice(middle)].append(m)

    def node(mid: str) -> dict:
        kids = children.get(mid, [])
        return {
            "LabelName": mid,
            **({"Subcategory": [node(k) for k in kids]} if kids else {}),
        }

    path.write_text(
        json.dumps({"LabelName": "/m/0bl9f", "Subcategory": [node(m) for m in top]})
    )


def run_duckdb(files: dict, boxes: str, out: str) -> None:
    import duckdb

    Path(out).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    # bench_tables' SQL without its last step (the images table): ours writes
    # the images table with labels and boxes nested, in one pass.
    labels_sql = DUCKDB_SQL[: DUCKDB_SQL.rindex("copy (")]
    con.execute(
        labels_sql.format(
            images=files["images"],
            labels=files["labels"],
            classes=files["classes"],
            out=out,
        )
    )
    con.execute(DUCKDB_BOXES_SQL.format(boxes=[boxes], out=out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--boxes-per-image", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", default=str(ROOT / "benchmarks" / "runs" / "tables")
    )
    parser.add_argument("--duckdb-only", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.duckdb_only:
        run_duckdb(
            json.loads(args.duckdb_only[0]), args.duckdb_only[1], args.duckdb_only[2]
        )
        return

    work = Path(args.workdir)
    data = work / f"sample-{args.images}-seed{args.seed}"
    release = sample(data, args.images, args.seed)
    files = release["files"]
    boxes = data / f"boxes-{args.boxes_per_image}.csv"
    box_rows = write_boxes(files, boxes, args.boxes_per_image, args.seed)
    hierarchy = data / "hierarchy.json"
    write_hierarchy(files["classes"], hierarchy, args.seed)
    print(
        f"release: {args.images:,} images, {release['label_rows']:,} label rows, "
        f"{box_rows:,} boxes ({data})"
    )

    def tables(name: str, *extra: str) -> dict:
        out = work / f"oibeam-boxes-{name}-{args.images}"
        cmd = [
            sys.executable,
            "-m",
            "oibeam.pipelines",
            "tables",
            "--images",
            *files["images"],
            "--labels",
            *files["labels"],
            "--classes",
            files["classes"],
            "--output",
            str(out),
            "--overwrite",
            *extra,
        ]
        result = measure(cmd)
        result["out"] = out
        return result

    results = {
        "labels only": tables("plain"),
        "+ boxes": tables("boxes", "--boxes", str(boxes)),
        "+ boxes + expansion": tables(
            "expanded",
            "--boxes",
            str(boxes),
            "--hierarchy",
            str(hierarchy),
            "--expand-ancestors",
        ),
    }
    theirs = work / f"duckdb-boxes-{args.images}"
    results["duckdb + boxes"] = measure(
        [
            sys.executable,
            __file__,
            "--duckdb-only",
            json.dumps(files),
            str(boxes),
            str(theirs),
        ]
    )
    ours = pq.read_table(
        results["+ boxes"]["out"] / "tables" / "label_stats",
        columns=["label", "boxes", "images_with_boxes"],
    )
    ours = {
        r["label"]: (r["boxes"], r["images_with_boxes"])
        for r in ours.to_pylist()
        if r["boxes"]
    }
    duck = {
        r["label"]: (r["boxes"], r["images_with_boxes"])
        for r in pq.read_table(theirs / "box_counts.parquet").to_pylist()
    }
    agree = ours == duck
    expanded = pq.read_table(
        results["+ boxes + expansion"]["out"] / "tables" / "label_stats",
        columns=["inferred_labels"],
    )
    inferred = sum(expanded["inferred_labels"].to_pylist())

    print(f"{'':22} {'wall s':>8} {'cpu s':>8} {'peak MB':>8}")
    for name, r in results.items():
        print(f"{name:22} {r['wall_s']:8.1f} {r['cpu_s']:8.1f} {r['peak_mb']:8,}")
    base = results["labels only"]["wall_s"]
    expansion = results["+ boxes + expansion"]["wall_s"]
    print(
        f"boxes add {results['+ boxes']['wall_s'] / base - 1:.0%}, expansion "
        f"({inferred:,} inferred rows) another "
        f"{(expansion - results['+ boxes']['wall_s']) / base:.0%}"
        f" of the labels-only time; oibeam --boxes / duckdb: "
        f"{results['+ boxes']['wall_s'] / results['duckdb + boxes']['wall_s']:.2f}x "
        f"(box counts agree: {agree})"
    )
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "images": args.images,
        "box_rows": box_rows,
        "inferred_rows": inferred,
        "agree": agree,
        **{
            k: {kk: vv for kk, vv in v.items() if kk not in ("output", "out")}
            for k, v in results.items()
        },
    }
    with open(work / "results.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    if not agree:
        sys.exit("box counts differ between oibeam and DuckDB")


if __name__ == "__main__":
    main()
