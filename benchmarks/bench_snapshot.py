#!/usr/bin/env python3
"""Benchmark `oibeam snapshot`: a full run against refreshes, and img2dataset.

    python benchmarks/bench_snapshot.py [--images 10000] [--processes 2]
        [--concurrency 16] [--mean-kb 460] [--server auto|nginx|python]

1. writes N + 1% synthetic originals (the images of bench_fetch.py, cached and
   shared with it: 100 KB .. 2 MB, mean ~--mean-kb) and serves them on
   127.0.0.1 (nginx if installed, else a Python server);
2. writes release A: images.csv with N of them, labels.csv with 1-4 machine
   labels per image out of 50, dict.csv; and release B: A without its first
   1% of images, with the 1% extra images, and other labels on another 1%;
3. runs, each in its own process tree (CPU, peak memory of the tree):
   - full: `oibeam snapshot` of A (everything fetched), snapshot `full`;
   - no-change refresh: A again with --previous full: nothing may be fetched;
   - changed refresh: B with --previous refresh-same: only the new images;
   - `oibeam verify` of the last snapshot (every byte re-read and MD5-checked);
   - img2dataset downloading A's URL list (what a nightly refresh costs a user
     who re-downloads everything), when installed (see bench_fetch.py);
   and checks each one's counts in its manifest before printing anything;
4. prints wall and CPU seconds, images/s and the ratios to the full run.

A JSON line per run is appended to WORKDIR/results.jsonl. Exits non-zero if a
count is wrong.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
from bench_fetch import (
    ROOT,
    check_img2dataset,
    find_img2dataset,
    img2dataset_command,
    machine,
    make_images,
    measure,
    serve_python,
    start_server,
    stop_server,
    versions,
    write_images_csv,
    write_url_parquet,
)

LABELS = [f"/m/bench{i:02d}" for i in range(50)]


def write_release(
    folder: Path, images: list[dict], base_url: str, relabel: set[str]
) -> list[str]:
    """images.csv, labels.csv, dict.csv in `folder`; the snapshot input flags.
    Labels are drawn from the ImageID, so they are the same in every release
    except for the images in `relabel`."""
    folder.mkdir(parents=True, exist_ok=True)
    write_images_csv(folder / "images.csv", images, base_url)
    lines = ["ImageID,Source,LabelName,Confidence"]
    for image in images:
        rng = np.random.default_rng(int(image["id"], 16) + (image["id"] in relabel))
        for label in rng.choice(len(LABELS), rng.integers(1, 5), replace=False):
            lines.append(
                f"{image['id']},machine,{LABELS[label]},{rng.uniform(0.5, 1):.1f}"
            )
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    (folder / "dict.csv").write_text(
        "".join(f'"{mid}","bench label {i}"\n' for i, mid in enumerate(LABELS))
    )
    return [
        "--images",
        str(folder / "images.csv"),
        "--labels",
        str(folder / "labels.csv"),
        "--classes",
        str(folder / "dict.csv"),
    ]


def snapshot_command(inputs, root: Path, snapshot_id: str, args, *extra) -> list:
    return [
        sys.executable,
        "-m",
        "oibeam.pipelines",
        "snapshot",
        *inputs,
        "--output",
        str(root),
        "--snapshot-id",
        snapshot_id,
        "--allow-private-hosts",
        f"--direct_num_workers={args.processes}",
        "--concurrency",
        str(args.concurrency),
        *extra,
    ]


def check_snapshot(directory: Path, expected: dict) -> str | None:
    """None if the manifest's counts include `expected`; else what they are."""
    path = directory / "manifest.json"
    if not path.exists():
        return "no manifest.json (the run failed)"
    manifest = json.loads(path.read_text())
    counts = {
        **manifest["counts"],
        **{f"change:{k}": v for k, v in manifest.get("changes", {}).items()},
        **{f"action:{k}": v for k, v in manifest.get("actions", {}).items()},
    }
    wrong = {k: counts.get(k, 0) for k, v in expected.items() if counts.get(k, 0) != v}
    return f"expected {expected}, got {wrong}" if wrong else None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mean-kb", type=float, default=460)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--workdir", default=str(ROOT / "benchmarks" / "runs" / "snapshot")
    )
    parser.add_argument(
        "--images-dir",
        default=str(ROOT / "benchmarks" / "runs" / "fetch"),
        help="where the images are cached (shared with bench_fetch.py)",
    )
    parser.add_argument("--server", choices=("auto", "nginx", "python"), default="auto")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.serve:
        serve_python(Path(args.serve[0]), int(args.serve[1]))
        return
    n, extra = args.images, max(1, args.images // 100)
    data = Path(args.images_dir) / (
        f"images-{n + extra}-seed{args.seed}-mean{args.mean_kb:g}kb"
    )
    images = make_images(data, n + extra, args.seed, args.mean_kb)
    release_a = images[:n]
    release_b = images[extra : n + extra]  # first 1% gone, 1% new
    relabel = {image["id"] for image in images[extra : 2 * extra]}
    total_bytes = sum(image["size"] for image in release_a)
    work = Path(args.workdir)
    run_dir, root = work / "run", work / "out"
    shutil.rmtree(root, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"{n:,} images, {total_bytes / 1e9:.2f} GB in {data}", flush=True)

    server, base_url, server_kind = start_server(data, run_dir, args.server)
    try:
        inputs_a = write_release(run_dir / "a", release_a, base_url, set())
        inputs_b = write_release(run_dir / "b", release_b, base_url, relabel)
        runs = {
            "full": (
                snapshot_command(inputs_a, root, "full", args),
                {"status:ok": n, "action:fetch": n},
            ),
            "refresh, no change": (
                snapshot_command(inputs_a, root, "same", args, "--previous", "full"),
                {"status:ok": n, "action:fetch": 0, "action:copy": n},
            ),
            "refresh, 1% new, 1% gone, 1% relabelled": (
                snapshot_command(inputs_b, root, "changed", args, "--previous", "same"),
                {
                    "status:ok": n,
                    "action:fetch": extra,
                    "action:copy": n - extra,
                    "change:added": extra,
                    "change:removed": extra,
                    "change:changed": extra,
                },
            ),
            "verify (every byte)": (
                [
                    sys.executable,
                    "-m",
                    "oibeam.pipelines",
                    "verify",
                    str(root / "changed"),
                ],
                None,
            ),
        }
        i2d = find_img2dataset()
        if i2d:
            urls = run_dir / "urls.parquet"
            write_url_parquet(urls, release_a, base_url)
            runs["img2dataset, full download"] = (
                img2dataset_command(i2d, urls, root / "img2dataset", n, args),
                "img2dataset",
            )
        results = {}
        for name, (cmd, expected) in runs.items():
            log = (
                run_dir
                / f"{len(results) + 1}-{name.split(',')[0].replace(' ', '-')}.log"
            )
            result = measure(cmd, log, server.pid)
            if expected == "img2dataset":
                problem = check_img2dataset(root / "img2dataset", n)
            elif expected is not None:
                snapshot_id = cmd[cmd.index("--snapshot-id") + 1]
                problem = check_snapshot(root / snapshot_id, expected)
            else:
                problem = None
            if result["exit"] != 0:
                problem = f"exit {result['exit']} (see {log}); {problem or ''}"
            result["problem"] = problem
            results[name] = result
            print(
                f"  {name}: {result['wall_s']:.1f} s"
                + (f"  !! {problem}" if problem else ""),
                flush=True,
            )
    finally:
        stop_server(server)
    shutil.rmtree(root, ignore_errors=True)

    full = results["full"]["wall_s"]
    header = ("wall s", "CPU s", "img/s", "peak MB", "/ full")
    print(f"\n{'run':<42} " + " ".join(f"{h:>8}" for h in header))
    for name, r in results.items():
        print(
            f"{name:<42} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} "
            f"{n / r['wall_s']:>8.0f} {r['peak_mb']:>8,} {r['wall_s'] / full:>8.2f}"
        )
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine(),
        "server": server_kind,
        "versions": versions(i2d, server_kind),
        "images": n,
        "bytes": total_bytes,
        "commands": {name: shlex.join(cmd) for name, (cmd, _) in runs.items()},
        "results": results,
    }
    with open(work / "results.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    if any(r["problem"] for r in results.values()):
        sys.exit("a run did not give the expected counts")


if __name__ == "__main__":
    main()
