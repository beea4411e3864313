#!/usr/bin/env python3
"""Benchmark `oibeam tables` against DuckDB doing the same work on the same CSVs.

    python benchmarks/bench_tables.py --images 1000000 [--beam-arg=--flag=value]

1. writes a synthetic V1 release with `oibeam sample` (cached per size and seed),
2. runs `oibeam tables` on it (DirectRunner unless --beam-arg says otherwise),
3. runs DuckDB on the same CSVs: label counts per (label, subset, source) with
   distinct positive/negative images, the v1 trainable set, and the joined images
   table with nested, named labels, written to Parquet (zstd) as we write ours,
4. checks that both agree (trainable set, label counts, image count), and prints
   wall time, rows/s and peak memory of each and their ratio. Each tool runs in
   its own process; peak memory is that process's max RSS (os.wait4).

A JSON line per run is appended to WORKDIR/results.jsonl.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(cmd: list[str]) -> dict:
    """Runs cmd; wall seconds, CPU seconds and peak RSS (MB) of that process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{output}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_mb": round(usage.ru_maxrss / 1024),
        "output": output,
    }


def sample(data: Path, images: int, seed: int) -> dict:
    marker = data / ".complete"
    if marker.exists():
        return json.loads(marker.read_text())
    cmd = [
        sys.executable,
        "-m",
        "oibeam.pipelines",
        "sample",
        "--output",
        str(data),
        "--images",
        str(images),
        "--seed",
        str(seed),
    ]
    result = measure(cmd)
    files = {
        "images": sorted(str(p) for p in data.glob("images_2016_08/*/images.csv")),
        "labels": sorted(str(p) for p in data.glob("*_ann_2016_08/*/labels.csv")),
        "classes": str(data / "dict.csv"),
    }
    label_rows = sum(sum(1 for _ in open(p, "rb")) - 1 for p in files["labels"])
    info = {
        "files": files,
        "label_rows": label_rows,
        "seconds": result["wall_s"],
        "bytes": sum(p.stat().st_size for p in data.rglob("*.csv")),
    }
    marker.write_text(json.dumps(info))
    return info


DUCKDB_SQL = """
create table images as select * from read_csv({images}, header=true, all_varchar=true,
    quote='"', escape='"');
create table labels as select * from read_csv({labels}, header=true,
    columns={{'ImageID': 'VARCHAR', 'Source': 'VARCHAR', 'LabelName': 'VARCHAR',
              'Confidence': 'DOUBLE'}});
create table names as select * from read_csv('{classes}', header=false,
    columns={{'LabelName': 'VARCHAR', 'DisplayName': 'VARCHAR'}});
create table joined as
    select l.*, i.Subset from labels l join images i using (ImageID);
copy (
    select LabelName as label, Subset as subset, Source as source, count(*) as rows,
           count(distinct ImageID) filter (where Confidence > 0) as positive_images,
           count(distinct ImageID) filter (where Confidence = 0) as negative_images,
           sum(Confidence) as confidence_sum
    from joined group by all
) to '{out}/label_counts.parquet' (compression zstd);
copy (
    with verdict as (
        select LabelName, ImageID, Subset,
               max(Confidence) filter (where Source = 'machine') as machine,
               max(Confidence) filter (where Source <> 'machine') as human
        from joined group by all)
    select v.LabelName, any_value(n.DisplayName) as DisplayName from verdict v
    left join names n using (LabelName) group by v.LabelName
    having count(*) filter (where Subset = 'validation' and human > 0) >= 50
       and count(*) filter (where Subset = 'train' and machine > 0) >= 20
    order by v.LabelName
) to '{out}/trainable_labels.csv' (header true);
copy (
    select i.*, l.labels from images i left join (
        select ImageID, list({{'label': LabelName, 'display_name': n.DisplayName,
                              'source': Source, 'confidence': Confidence}}
                             order by LabelName, Source) as labels
        from labels left join names n using (LabelName) group by ImageID
    ) l using (ImageID)
) to '{out}/images.parquet' (compression zstd);
"""


def run_duckdb(files: dict, out: str) -> None:
    """The DuckDB side (in its own process): the same tables from the same CSVs."""
    import duckdb

    Path(out).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(
        DUCKDB_SQL.format(
            images=files["images"],
            labels=files["labels"],
            classes=files["classes"],
            out=out,
        )
    )


def compare(ours: Path, theirs: Path) -> dict:
    """Checks both tools produced the same answers; returns what was compared."""
    import duckdb

    con = duckdb.connect()
    mine = {
        r[0]
        for r in con.execute(
            f"select LabelName from read_csv('{ours}/tables/trainable_labels.csv')"
        ).fetchall()
    }
    duck = {
        r[0]
        for r in con.execute(
            f"select LabelName from read_csv('{theirs}/trainable_labels.csv')"
        ).fetchall()
    }
    if mine != duck:
        sys.exit(f"trainable sets differ: ours {len(mine)}, duckdb {len(duck)}")
    differing = con.execute(
        f"""
        select count(*) from (
          select label, subset, source, rows, positive_images, negative_images
          from read_parquet('{ours}/tables/label_counts/*.parquet')
          except
          select label, subset, source, rows, positive_images, negative_images
          from read_parquet('{theirs}/label_counts.parquet'))
        """
    ).fetchone()[0]
    if differing:
        sys.exit(f"{differing} label_counts rows differ between oibeam and DuckDB")
    image_rows = [
        con.execute(f"select count(*) from read_parquet('{p}')").fetchone()[0]
        for p in (f"{ours}/tables/images/*.parquet", f"{theirs}/images.parquet")
    ]
    if image_rows[0] != image_rows[1]:
        sys.exit(f"images rows differ: {image_rows}")
    return {"trainable_labels": len(mine), "images": image_rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", default=str(ROOT / "benchmarks" / "runs" / "tables")
    )
    parser.add_argument(
        "--beam-arg",
        action="append",
        default=[],
        help="extra flag for oibeam tables (repeatable)",
    )
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument(
        "--duckdb-only", nargs=2, metavar=("FILES_JSON", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.duckdb_only:
        run_duckdb(json.loads(args.duckdb_only[0]), args.duckdb_only[1])
        return

    work = Path(args.workdir)
    data = work / f"sample-{args.images}-seed{args.seed}"
    release = sample(data, args.images, args.seed)
    files = release["files"]
    rows = args.images + release["label_rows"]
    print(
        f"release: {args.images:,} images, {release['label_rows']:,} label rows, "
        f"{release['bytes'] / 1e9:.2f} GB of CSV ({data})"
    )

    ours = work / f"oibeam-{args.images}"
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
        str(ours),
        "--overwrite",
        *args.beam_arg,
    ]
    oibeam = measure(cmd)
    results = {"oibeam": oibeam}
    if not args.skip_duckdb:
        theirs = work / f"duckdb-{args.images}"
        results["duckdb"] = measure(
            [sys.executable, __file__, "--duckdb-only", json.dumps(files), str(theirs)]
        )
        results["agree"] = compare(ours, theirs)

    print(f"{'':8} {'wall s':>8} {'cpu s':>8} {'rows/s':>12} {'peak MB':>8}")
    for tool in ("oibeam", "duckdb"):
        if tool in results:
            r = results[tool]
            print(
                f"{tool:8} {r['wall_s']:8.1f} {r['cpu_s']:8.1f} "
                f"{rows / r['wall_s']:12,.0f} {r['peak_mb']:8,}"
            )
    if "duckdb" in results:
        ratio = results["oibeam"]["wall_s"] / results["duckdb"]["wall_s"]
        print(f"oibeam / duckdb wall time: {ratio:.2f}x  (agree: {results['agree']})")
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "images": args.images,
        "label_rows": release["label_rows"],
        **{
            k: {kk: vv for kk, vv in v.items() if kk != "output"}
            if isinstance(v, dict) and "wall_s" in v
            else v
            for k, v in results.items()
        },
    }
    with open(work / "results.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
