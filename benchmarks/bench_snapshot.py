#!/usr/bin/env python3
"""Benchmark what a snapshot refresh costs now that snapshots share shards.

    python benchmarks/bench_snapshot.py [--images 10000] [--thumbnails]
        [--mean-kb KB] [--repeat 1] [--processes P] [--concurrency 16]
        [--server auto|nginx|python] [--no-check-targets] [--no-img2dataset]
        [--keep-outputs] [--workdir DIR] [--images-dir DIR]

1. writes N + 1% synthetic originals and serves them on 127.0.0.1 (nginx if
   installed, else a Python server): the images of bench_fetch.py (100 KB ..
   2 MB, mean ~--mean-kb, default 460; cached and shared with it) or, with
   --thumbnails, thumbnail-sized ones (3 .. 64 KB, mean 8 KB by default) so
   that 100,000 of them fit this machine;
2. writes four releases: A (N images, 1-4 machine labels each out of 50); A+
   (A and the 1% extra images); A+ with other labels on 1% of its images; and
   that one without A's first 1% of images;
3. runs, in this order, into one snapshot ROOT, each in its own process tree:
   - full: `oibeam snapshot` of A, every image fetched (snapshot `full`);
   - no change: A again, --previous latest: every image shared, none fetched;
   - 1% new: A+, only the new images fetched, the others shared;
   - 1% relabelled: labels changed only: nothing fetched;
   - 1% removed: nothing fetched, the removed images dropped;
   - `oibeam gc ROOT --keep 1`, if that command exists: what it frees, and the
     removed images' bytes must be in some file under ROOT before it and in
     none after it;
   - `oibeam verify` of the last snapshot (every byte re-read, MD5-checked);
   - img2dataset downloading A again (what a user who re-downloads everything
     pays), when installed (see bench_fetch.py);
   and checks each snapshot's manifest (status:ok, actions, changes);
4. measures wall and CPU seconds and peak memory (bench_fetch.measure), the
   bytes the run wrote (its process tree's block output, from the rusage of
   the children this script reaped: temporary files included) and the bytes it
   added under ROOT (file sizes summed before and after, walked in Python);
   prints a markdown table with each run's share of the full run's bytes and
   wall time against its target.

--repeat R runs the whole sequence R times, each into a fresh ROOT: a run's
best wall time and largest byte counts are reported, and every wall time. A JSON
line per invocation is appended to WORKDIR/results.jsonl. Exits non-zero on a
wrong count, a failed check or (unless --no-check-targets) a missed target,
and says which.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import resource
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
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
    write_images,
    write_images_csv,
    write_url_parquet,
)

LABELS = [f"/m/bench{i:02d}" for i in range(50)]
THUMB_BYTES = (3_000, 64_000)  # thumbnail sizes are clipped to this range
NEEDLES = 5  # removed images whose bytes are searched for after gc
OIBEAM = [sys.executable, "-m", "oibeam.pipelines"]


def time_target(n: int) -> float:
    """The no-change refresh's share of the full run's wall time: the fixed
    cost (start-up, tables) weighs less the more images there are."""
    return 0.05 if n >= 100_000 else 0.15


# --- the images and releases -----------------------------------------------------


def make_thumbnails(folder: Path, n: int, seed: int, mean_kb: float) -> list[dict]:
    """Like bench_fetch.make_images, thumbnail-sized: a real 128x96 JPEG padded
    with random bytes to a log-normal size in THUMB_BYTES. [{id, size, md5}]."""
    from io import BytesIO

    from PIL import Image

    marker = folder / "images.json"
    if marker.exists():
        return json.loads(marker.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    low, high = THUMB_BYTES
    mu, draws = math.log(mean_kb * 1000) - 0.6**2 / 2, rng.standard_normal(n)
    for _ in range(20):  # clipping moves the mean: shift mu until it is back
        sizes = np.clip(np.exp(mu + 0.6 * draws), low, high)
        mu += math.log(mean_kb * 1000 / sizes.mean())
    buffer = BytesIO()
    noise = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(noise).resize((128, 96), Image.BICUBIC).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    return write_images(folder, rng, sizes, [jpeg])


def labels_of(image_id: str, relabelled: bool) -> list[tuple[str, float]]:
    """1-4 labels drawn from the ImageID; a relabelled image has one other
    label instead (always a different set)."""
    rng = np.random.default_rng(int(image_id, 16))
    chosen = rng.choice(len(LABELS), rng.integers(1, 5), replace=False)
    if relabelled:
        return [(LABELS[(chosen[0] + len(LABELS) // 2) % len(LABELS)], 1.0)]
    return [(LABELS[i], round(float(rng.uniform(0.5, 1)), 1)) for i in chosen]


def write_release(
    folder: Path, images: list[dict], base_url: str, relabel: set[str]
) -> list[str]:
    """images.csv, labels.csv, dict.csv in `folder`; the snapshot input flags."""
    folder.mkdir(parents=True, exist_ok=True)
    write_images_csv(folder / "images.csv", images, base_url)
    lines = ["ImageID,Source,LabelName,Confidence"]
    for image in images:
        for label, confidence in labels_of(image["id"], image["id"] in relabel):
            lines.append(f"{image['id']},machine,{label},{confidence:.1f}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    (folder / "dict.csv").write_text(
        "".join(f'"{mid}","bench label {i}"\n' for i, mid in enumerate(LABELS))
    )
    return [
        f"--{kind}={folder / name}"
        for kind, name in (
            ("images", "images.csv"),
            ("labels", "labels.csv"),
            ("classes", "dict.csv"),
        )
    ]


@dataclass
class Bench:
    """What every scenario needs: sizes, images, where things are."""

    args: argparse.Namespace
    n: int
    images: list[dict]  # N + 1%: A's N, then the new ones
    data: Path  # the originals, as served
    work: Path
    root: Path  # the snapshot ROOT
    base_url: str = ""
    server_pid: int = 0
    inputs: dict[str, list[str]] = field(default_factory=dict)  # release -> flags

    @property
    def extra(self) -> int:
        return len(self.images) - self.n

    def write_releases(self) -> None:
        n, e, images = self.n, self.extra, self.images
        relabel = {image["id"] for image in images[e : 2 * e]}
        releases = {
            "a": (images[:n], set()),
            "new": (images, set()),
            "relabel": (images, relabel),
            "removed": (images[e:], relabel),  # A's first 1% gone
        }
        for name, (chosen, changed) in releases.items():
            folder = self.work / "run" / f"release-{name}"
            self.inputs[name] = write_release(folder, chosen, self.base_url, changed)


# --- the scenarios ---------------------------------------------------------------


@dataclass
class Scenario:
    """One measured command; `expected` are the manifest counts of snapshot
    `snapshot_id`; `targets` the largest shares of the full run's 'bytes'
    (added) and 'time' (wall); `check(result)` says what else went wrong,
    and `promise` what it checks (a verdict of its own in the table)."""

    name: str
    cmd: list[str]
    snapshot_id: str | None = None
    expected: dict | None = None
    targets: dict[str, float] = field(default_factory=dict)
    check: Callable[[dict], str | None] | None = None
    promise: str = ""
    out: Path | None = None  # where it writes, if not ROOT


def snapshot(b: Bench, release: str, snapshot_id: str, *extra: str) -> list[str]:
    return [
        *OIBEAM,
        "snapshot",
        *b.inputs[release],
        f"--output={b.root}",
        f"--snapshot-id={snapshot_id}",
        "--allow-private-hosts",
        *(
            [f"--direct_num_workers={b.args.processes}"]
            if b.args.processes
            else []  # oibeam's default: min(cores, 4) local workers
        ),
        f"--concurrency={b.args.concurrency}",
        *extra,
    ]


def refresh(b: Bench, release: str, snapshot_id: str) -> list[str]:
    return snapshot(b, release, snapshot_id, "--previous", "latest")


def full_snapshot(b: Bench) -> Scenario:
    return Scenario(
        "full snapshot",
        snapshot(b, "a", "full"),
        "full",
        {"status:ok": b.n, "actions": {"fetch": b.n}},
    )


def no_change_refresh(b: Bench) -> Scenario:
    return Scenario(
        "refresh, no change",
        refresh(b, "a", "same"),
        "same",
        {"status:ok": b.n, "actions": {"share": b.n}, "changes": {"carried": b.n}},
        {"bytes": 0.01, "time": time_target(b.n)},
    )


def new_images_refresh(b: Bench) -> Scenario:
    n, e = b.n, b.extra
    return Scenario(
        "refresh, 1% new images",
        refresh(b, "new", "new"),
        "new",
        {
            "status:ok": n + e,
            "actions": {"fetch": e, "share": n},
            "changes": {"added": e, "carried": n},
        },
        {"bytes": 0.05},
    )


def relabel_refresh(b: Bench) -> Scenario:
    n, e = b.n, b.extra
    return Scenario(
        "refresh, 1% relabelled",
        refresh(b, "relabel", "relabel"),
        "relabel",
        {
            "status:ok": n + e,
            "actions": {"share": n + e},
            "changes": {"changed": e, "carried": n},
        },
        {"bytes": 0.05},
    )


def removal_refresh(b: Bench) -> Scenario:
    n, e = b.n, b.extra
    return Scenario(
        "refresh, 1% removed",
        refresh(b, "removed", "removed"),
        "removed",
        {
            "status:ok": n,
            "actions": {"share": n, "drop": e},
            "changes": {"removed": e, "carried": n},
        },
        {"bytes": 0.10},
    )


def gc_available() -> bool:
    done = subprocess.run([*OIBEAM, "gc", "--help"], capture_output=True)
    return done.returncode == 0


def gc_keep_one(b: Bench) -> Scenario | None:
    """`oibeam gc ROOT --keep 1` after the removal refresh; its check: the
    removed images' bytes were under ROOT before it and are in no file after."""
    if not gc_available():
        print("  gc: not available", flush=True)
        return None
    removed = b.images[: b.extra]
    picked = removed[:: max(1, len(removed) // NEEDLES)][:NEEDLES]
    # The last 32 bytes of an original are random padding: unique to it.
    needles = {i["id"]: (b.data / f"{i['id']}.jpg").read_bytes()[-32:] for i in picked}
    before = files_holding(b.root, needles)

    def check(result: dict) -> str | None:
        unseen = sorted(i for i, paths in before.items() if not paths)
        if unseen:
            return f"removed images not found under ROOT before gc: {unseen}"
        left = {i: p for i, p in files_holding(b.root, needles).items() if p}
        if left:
            return f"removed images' bytes still under ROOT after gc: {left}"
        if result["added_bytes"] >= 0:
            return "gc freed nothing"
        return None

    return Scenario(
        "gc --keep 1",
        [*OIBEAM, "gc", str(b.root), "--keep", "1"],
        check=check,
        promise="removed images' bytes gone",
    )


def verify_last(b: Bench) -> Scenario:
    return Scenario("verify (every byte)", [*OIBEAM, "verify", str(b.root / "removed")])


def img2dataset_download(b: Bench) -> Scenario | None:
    i2d = find_img2dataset()
    if i2d is None or not b.args.img2dataset:
        print("  img2dataset: not installed or not wanted, skipped", flush=True)
        return None
    urls, out = b.work / "run" / "urls.parquet", b.work / "img2dataset"
    write_url_parquet(urls, b.images[: b.n], b.base_url)
    shutil.rmtree(out, ignore_errors=True)
    return Scenario(
        "img2dataset, full download",
        img2dataset_command(i2d, urls, out, b.n, b.args),
        check=lambda result: check_img2dataset(out, b.n),
        out=out,
    )


SCENARIOS = (
    full_snapshot,
    no_change_refresh,
    new_images_refresh,
    relabel_refresh,
    removal_refresh,
    gc_keep_one,
    verify_last,
    img2dataset_download,
)


# --- measuring -------------------------------------------------------------------


def tree_bytes(folder: Path) -> int:
    """Summed sizes of the files under `folder` (0 if it does not exist), a
    file with several names (hard links) counted once, as du counts it."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                stat = os.lstat(os.path.join(parent, name))
            except FileNotFoundError:
                continue
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def files_holding(folder: Path, needles: dict[str, bytes]) -> dict[str, list[str]]:
    """key -> the files under `folder` holding that needle, read in chunks."""
    found: dict[str, list[str]] = {key: [] for key in needles}
    overlap = max(len(needle) for needle in needles.values()) - 1
    for parent, _, files in os.walk(folder):
        for name in files:
            path, tail = os.path.join(parent, name), b""
            with open(path, "rb") as f:
                while chunk := f.read(1 << 23):
                    window, tail = tail + chunk, chunk[-overlap:]
                    for key, needle in needles.items():
                        if needle in window and path not in found[key]:
                            found[key].append(path)
    return found


def manifest_problem(directory: Path, expected: dict) -> tuple[dict, str | None]:
    """(actions, None if the manifest's status:ok, actions and changes are
    exactly `expected`, else what they are)."""
    path = directory / "manifest.json"
    if not path.exists():
        return {}, "no manifest.json (the run failed)"
    manifest = json.loads(path.read_text())
    got = {
        "status:ok": manifest["counts"].get("status:ok", 0),
        "actions": {k: v for k, v in manifest.get("actions", {}).items() if v},
        "changes": {k: v for k, v in manifest.get("changes", {}).items() if v},
    }
    wrong = {k: got[k] for k, v in expected.items() if got[k] != v}
    return got["actions"], (f"expected {expected}, got {wrong}" if wrong else None)


def run_scenario(b: Bench, s: Scenario, log: Path) -> dict:
    """Measures one scenario and checks it: measure()'s fields plus the bytes
    written and added, the manifest's actions and `problem`."""
    out = s.out or b.root
    os.sync()  # earlier runs' dirty pages are not this run's writes
    before = tree_bytes(out)
    blocks = resource.getrusage(resource.RUSAGE_CHILDREN).ru_oublock
    result = measure(s.cmd, log, b.server_pid)
    # Linux counts block output in 512-byte units; the tree was reaped by
    # measure(), so its count is in this process's children's usage.
    blocks = resource.getrusage(resource.RUSAGE_CHILDREN).ru_oublock - blocks
    result["written_bytes"] = 512 * blocks
    result["bytes_after"] = tree_bytes(out)
    result["added_bytes"] = result["bytes_after"] - before
    result["actions"], problem = {}, None
    if s.expected is not None:
        result["actions"], problem = manifest_problem(
            b.root / s.snapshot_id, s.expected
        )
    if problem is None and s.check is not None:
        problem = s.check(result)
    if result["exit"] != 0:
        problem = f"exit {result['exit']} (see {log}); {problem or ''}"
    result["problem"] = problem
    print(
        f"  {s.name}: {result['wall_s']:.1f} s, "
        f"{result['added_bytes'] / 1e6:+,.1f} MB"
        + (f"  !! {problem}" if problem else ""),
        flush=True,
    )
    return result


def run_sequence(b: Bench, attempt: int) -> tuple[dict[str, Scenario], dict]:
    """Every scenario in order into a fresh ROOT; stops after one that failed
    to run (the next ones would refresh the wrong snapshot)."""
    shutil.rmtree(b.root, ignore_errors=True)
    scenarios, results = {}, {}
    for make in SCENARIOS:
        s = make(b)
        if s is None:
            continue
        log = b.work / "run" / f"{attempt}-{len(results) + 1}-{make.__name__}.log"
        scenarios[s.name], results[s.name] = s, run_scenario(b, s, log)
        if results[s.name]["exit"] != 0:
            break
    return scenarios, results


# --- reporting -------------------------------------------------------------------


def summarize(scenarios: dict, attempts: list[dict]) -> list[dict]:
    """A row per scenario: best wall, largest byte counts, shares of the full
    run and each target's verdict."""

    def runs_of(name: str) -> list[dict]:
        return [a[name] for a in attempts if name in a]

    full = runs_of("full snapshot")
    full_wall = min(r["wall_s"] for r in full)
    full_bytes = max(1, *(r["bytes_after"] for r in full))
    rows = []
    for name, s in scenarios.items():
        runs = runs_of(name)
        best = min(runs, key=lambda r: r["wall_s"])
        added = max(r["added_bytes"] for r in runs)
        share = {"bytes": added / full_bytes, "time": best["wall_s"] / full_wall}
        problems = [r["problem"] for r in runs if r["problem"]]
        missed = [
            f"{what} {100 * share[what]:.1f}% > {100 * limit:g}%"
            for what, limit in s.targets.items()
            if share[what] > limit
        ]
        verdicts = [
            f"<= {100 * limit:g}% {what}: "
            + ("met" if share[what] <= limit else f"MISSED ({100 * share[what]:.1f}%)")
            for what, limit in s.targets.items()
        ]
        if s.promise:
            verdicts.append(f"{s.promise}: " + ("FAILED" if problems else "met"))
        rows.append(
            {
                "name": name,
                "walls_s": [r["wall_s"] for r in runs],
                "cpu_s": best["cpu_s"],
                "peak_mb": best["peak_mb"],
                "written_bytes": max(r["written_bytes"] for r in runs),
                "added_bytes": added,
                "bytes_share": round(share["bytes"], 5),
                "time_share": round(share["time"], 4),
                "actions": best["actions"],
                "targets": s.targets,
                "verdicts": verdicts,
                "missed": missed,
                "problems": problems,
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    print(
        "\n| run | fetch / share / drop | wall s | CPU s | peak MB | written MB "
        "| added MB | % of full bytes | % of full time | target |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        a = r["actions"]
        actions = (
            " / ".join(f"{a.get(k, 0):,}" for k in ("fetch", "share", "drop"))
            if a
            else ""
        )
        print(
            f"| {r['name']} | {actions} | "
            + " / ".join(f"{w:.1f}" for w in r["walls_s"])
            + f" | {r['cpu_s']:.1f} | {r['peak_mb']:,} | "
            f"{r['written_bytes'] / 1e6:,.1f} | {r['added_bytes'] / 1e6:,.1f} | "
            f"{100 * r['bytes_share']:.2f} | {100 * r['time_share']:.1f} | "
            f"{'; '.join(r['verdicts'])} |"
        )
    for r in rows:
        for problem in r["problems"]:
            print(f"!! {r['name']}: {problem}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument(
        "--thumbnails",
        action="store_true",
        help="thumbnail-sized images (3 .. 64 KB, mean --mean-kb, default 8)",
    )
    parser.add_argument(
        "--mean-kb", type=float, help="mean image size (default 460, thumbnails 8)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--processes",
        type=int,
        help="local workers (--direct_num_workers; default: oibeam's, min(cores, 4))",
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--check-targets",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="exit non-zero when a target is missed (counts are always checked)",
    )
    parser.add_argument(
        "--img2dataset", action=argparse.BooleanOptionalAction, default=True
    )
    parser.add_argument(
        "--keep-outputs",
        action="store_true",
        help="keep the last sequence's snapshot ROOT (WORKDIR/out) for inspection",
    )
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
    args = parser.parse_args()
    if args.mean_kb is None:
        args.mean_kb = 8.0 if args.thumbnails else 460.0
    return args


def main() -> None:
    args = parse_args()
    if args.serve:
        serve_python(Path(args.serve[0]), int(args.serve[1]))
        return
    count = args.images + max(1, args.images // 100)
    kind = "thumbs" if args.thumbnails else "images"
    data = (
        Path(args.images_dir) / f"{kind}-{count}-seed{args.seed}-mean{args.mean_kb:g}kb"
    )
    make = make_thumbnails if args.thumbnails else make_images
    images = make(data, count, args.seed, args.mean_kb)
    work = Path(args.workdir)
    b = Bench(args, args.images, images, data, work, work / "out")
    (work / "run").mkdir(parents=True, exist_ok=True)
    total_bytes = sum(image["size"] for image in images[: b.n])
    print(f"{b.n:,} images, {total_bytes / 1e9:.2f} GB in {data}", flush=True)

    server, b.base_url, server_kind = start_server(data, work / "run", args.server)
    b.server_pid = server.pid
    scenarios, attempts = {}, []
    try:
        b.write_releases()
        for attempt in range(1, args.repeat + 1):
            print(f"sequence {attempt} of {args.repeat}:", flush=True)
            ran, results = run_sequence(b, attempt)
            scenarios.update(ran)
            attempts.append(results)
    finally:
        stop_server(server)
    if not args.keep_outputs:
        shutil.rmtree(b.root, ignore_errors=True)
        shutil.rmtree(work / "img2dataset", ignore_errors=True)

    rows = summarize(scenarios, attempts)
    print(
        f"\n{b.n:,} images ({total_bytes / 1e9:.2f} GB of originals); "
        f"full snapshot: {rows[0]['added_bytes'] / 1e6:,.1f} MB under ROOT"
    )
    print_table(rows)
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine(),
        "server": server_kind,
        "versions": versions(find_img2dataset(), server_kind),
        "images": b.n,
        "bytes": total_bytes,
        "commands": {name: shlex.join(s.cmd) for name, s in scenarios.items()},
        "attempts": attempts,
        "rows": rows,
    }
    with open(work / "results.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    failed = [f"{r['name']}: {p}" for r in rows for p in r["problems"]]
    if args.check_targets:
        failed += [f"{r['name']}: missed {m}" for r in rows for m in r["missed"]]
    if failed:
        sys.exit("failed:\n  " + "\n  ".join(failed))


if __name__ == "__main__":
    main()
