#!/usr/bin/env python3
"""Benchmark the duplicates search: the perceptual hash per image, and the
grouping of 100,000 images, against DuckDB where it can do the same.

    python benchmarks/bench_duplicates.py [--images 100000] [--photos DIR]

1. hash: for every decodable photo under --photos (default: the real photos of
   tests/fixtures/images) and for --generated 1024x768 JPEGs cut from the
   large ones (quality 90), the ms per image of our hash as the fetch computes
   it (a JPEG decoded at reduced scale, straight to grayscale), of the same
   hash from a full decode, and of imagehash.phash when it is installed (it
   is not a dependency); the bits by which the reduced decode moves the hash.
2. grouping: --images synthetic images as Parquet parts of an images table
   after a fetch (ImageID, Subset, OriginalMD5, status, md5, phash; cached
   per size and seed) with planted duplicates: exact copies (same
   OriginalMD5, bytes and hash), near copies 1..distance bits away, far
   copies distance+3..distance+6 bits away (must not pair), and a blank image
   under --blank ImageIDs (hash 0: a band value too big to search pair by
   pair). Each of these runs in its own process (wall, CPU, peak RSS):
   - oibeam-exact: FindDuplicates(None) on the local runner, as in `tables`,
   - duckdb-exact: the same groups by OriginalMD5 in DuckDB (checked equal),
   - oibeam-near: FindDuplicates(distance), as after a fetch,
   - oibeam-core: the same search without Beam (pairs.py, groups.py),
   - duckdb-near: DuckDB's pairs by the same bands (a self-join on band
     values, then bit_count(xor) <= distance), without the grouping,
   and the recall of the planted pairs (both members in one group; for
   DuckDB, among its pairs), and the far copies wrongly paired.

A JSON line per run is appended to WORKDIR/results.jsonl.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from bench_tables import ROOT, measure
from PIL import Image

from oibeam.schemas.duplicates import DEFAULT_NEAR_DISTANCE
from oibeam.transforms.dedup.phash import distance, phash_bytes, phash_image

PHOTOS = ROOT / "tests" / "fixtures" / "images"
PARTS = 20


# ---------------------------------------------------------------- hash cost


def _ms_per_image(fn, data: bytes, seconds: float) -> float:
    fn(data)
    runs, start = 0, time.perf_counter()
    times = []
    while time.perf_counter() - start < seconds or runs < 3:
        t = time.perf_counter()
        fn(data)
        times.append(time.perf_counter() - t)
        runs += 1
    return statistics.median(times) * 1000


def _full(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        return phash_image(image, draft=False)


def _imagehash():
    try:
        import imagehash
    except ImportError:
        return None

    def hash_(data: bytes):
        with Image.open(io.BytesIO(data)) as image:
            return imagehash.phash(image)

    return hash_


def _generated(photos: list[tuple[str, bytes]], count: int) -> list[tuple[str, bytes]]:
    """1024x768 JPEGs (q 90) cut at random from the photos at least that big."""
    rng = np.random.default_rng(0)
    large = []
    for name, data in photos:
        image = Image.open(io.BytesIO(data))
        if image.width >= 1024 and image.height >= 768:
            large.append((name, image.convert("RGB")))
    out = []
    for i in range(count if large else 0):
        name, image = large[i % len(large)]
        scale = rng.uniform(1024 / image.width, 1.0) if image.width > 1024 else 1.0
        w, h = round(image.width * scale), round(image.height * scale)
        w, h = max(w, 1024), max(h, 768)
        x, y = rng.integers(0, w - 1024 + 1), rng.integers(0, h - 768 + 1)
        cut = image.resize((w, h)).crop((x, y, x + 1024, y + 768))
        buffer = io.BytesIO()
        cut.save(buffer, "JPEG", quality=90)
        out.append((f"1024px-{i}-{name[:12]}", buffer.getvalue()))
    return out


def bench_hash(args) -> dict:
    photos = []
    for directory in args.photos:
        for path in sorted(Path(directory).iterdir()):
            if not path.is_file() or path.suffix == ".md":
                continue
            data = path.read_bytes()
            try:
                phash_bytes(data)
            except Exception:  # broken, truncated, bombs: not photos
                continue
            photos.append((path.name, data))
    generated = _generated(photos, args.generated)
    reference = _imagehash()
    rows = []
    print(
        f"{'photo':40} {'KB':>6} {'pixels':>11} {'draft ms':>9} {'full ms':>8}"
        f" {'imagehash ms':>12} {'bits moved':>10}"
    )
    for name, data in photos + generated:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
        row = {
            "photo": name,
            "kb": round(len(data) / 1024),
            "pixels": f"{size[0]}x{size[1]}",
            "draft_ms": _ms_per_image(phash_bytes, data, args.seconds),
            "full_ms": _ms_per_image(_full, data, args.seconds),
            "moved_bits": distance(phash_bytes(data), _full(data)),
        }
        if reference is not None:
            row["imagehash_ms"] = _ms_per_image(reference, data, args.seconds)
            ours = _full(data) & (2**64 - 1)
            row["equal_to_imagehash"] = ours == int(str(reference(data)), 16)
        rows.append(row)
        print(
            f"{name[:40]:40} {row['kb']:6,} {row['pixels']:>11} {row['draft_ms']:9.2f}"
            f" {row['full_ms']:8.2f} {row.get('imagehash_ms', float('nan')):12.2f}"
            f" {row['moved_bits']:10}"
        )
    summary = {}
    for label, group in (
        ("photos", rows[: len(photos)]),
        ("1024px", rows[len(photos) :]),
    ):
        if group:
            summary[label] = {
                "images": len(group),
                "draft_ms_mean": round(
                    statistics.mean(r["draft_ms"] for r in group), 2
                ),
                "full_ms_mean": round(statistics.mean(r["full_ms"] for r in group), 2),
                "max_moved_bits": max(r["moved_bits"] for r in group),
            }
            if reference is not None:
                summary[label]["imagehash_ms_mean"] = round(
                    statistics.mean(r["imagehash_ms"] for r in group), 2
                )
                summary[label]["all_equal_to_imagehash"] = all(
                    r["equal_to_imagehash"] for r in group
                )
    print(json.dumps(summary, indent=1))
    return {"hash": summary, "hash_rows": rows}


# ---------------------------------------------------------------- grouping


def _flip(hashes: np.ndarray, bits: np.ndarray, rng) -> np.ndarray:
    """Each hash with bits[i] distinct random bits flipped."""
    out = hashes.view(np.uint64).copy()
    for i, k in enumerate(bits.tolist()):
        for b in rng.choice(64, k, replace=False).tolist():
            out[i] ^= np.uint64(1) << np.uint64(b)
    return out.view(np.int64)


def synthetic(directory: Path, images: int, blank: int, dist: int, seed: int) -> dict:
    """Parquet parts of an images table with planted duplicates; the plan."""
    plan_path = directory / "plan.json"
    if plan_path.exists():
        return json.loads(plan_path.read_text())
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    exact_n, near_n, far_n = images // 100, images // 50, images // 100
    singles = images - blank - 2 * (exact_n + near_n + far_n)
    bases = rng.integers(
        -(2**63), 2**63 - 1, singles + exact_n + near_n + far_n, dtype=np.int64
    )
    hashes = [bases, np.zeros(blank, np.int64)]
    a = singles  # the planted pairs' first members follow the singles
    exact = bases[a : a + exact_n]
    near = bases[a + exact_n : a + exact_n + near_n]
    far = bases[a + exact_n + near_n :]
    hashes += [
        exact,
        _flip(near, rng.integers(1, dist + 1, near_n), rng),
        _flip(far, rng.integers(dist + 3, dist + 7, far_n), rng),
    ]
    phash = np.concatenate(hashes)
    n = len(phash)
    ids = np.array([f"{k:016x}" for k in rng.choice(2**62, n, replace=False)])
    md5 = np.array([f"{i:022d}==" for i in range(n)], dtype=object)
    copies = singles + exact_n + near_n + far_n + blank  # first exact copy
    md5[copies : copies + exact_n] = md5[a : a + exact_n]
    subsets = rng.choice(["train", "validation", "test"], n, p=[0.9, 0.05, 0.05])
    table = pa.table(
        {
            "ImageID": ids,
            "Subset": subsets,
            "OriginalMD5": md5,
            "status": ["ok"] * n,
            "md5": md5,
            "phash": phash,
        }
    )
    table = table.take(pa.array(rng.permutation(n)))  # kinds mixed in every part
    for part in range(PARTS):
        rows = table.slice(
            part * n // PARTS, (part + 1) * n // PARTS - part * n // PARTS
        )
        pq.write_table(rows, directory / f"part-{part:05d}.parquet")
    pair = lambda first, second, k: [  # noqa: E731
        [ids[first + i], ids[second + i]] for i in range(k)
    ]
    plan = {
        "images": n,
        "exact": pair(a, copies, exact_n),
        "near": pair(a + exact_n, copies + exact_n, near_n),
        "far": pair(a + exact_n + near_n, copies + exact_n + near_n, far_n),
        "blank": ids[singles + exact_n + near_n + far_n : copies].tolist(),
    }
    plan_path.write_text(json.dumps(plan))
    return plan


def _parts(directory: Path) -> list[str]:
    return sorted(str(p) for p in directory.glob("part-*.parquet"))


def step_beam(directory: Path, out: Path, dist: int | None) -> None:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    import oibeam.transforms  # noqa: F401 (coders)
    from oibeam.schemas.elements import WrittenFile
    from oibeam.transforms.dedup.find_duplicates import FindDuplicates
    from oibeam.transforms.dedup.written_images import ReadWrittenImages

    written = [WrittenFile("images", p, 1, 0, "") for p in _parts(directory)]
    options = PipelineOptions(
        runner="FnApiRunner", direct_num_workers=2, direct_running_mode="in_memory"
    )
    with beam.Pipeline(options=options) as root:
        _ = (
            root
            | beam.Create(written)
            | ReadWrittenImages()
            | FindDuplicates(dist)
            | beam.Map(pq.write_table, str(out))
        )


def step_core(directory: Path, out: Path, dist: int) -> None:
    from oibeam.transforms.dedup import pairs as search
    from oibeam.transforms.dedup.groups import concat_pairs, duplicate_rows
    from oibeam.transforms.dedup.keys import duplicate_keys

    keys = pa.concat_tables(
        [duplicate_keys(pq.read_table(p)) for p in _parts(directory)]
    )
    found = [
        search.exact_pairs(search.exact_entries(keys)),
        search.near_pairs(search.band_entries(keys, dist), dist).pairs,
    ]
    pq.write_table(duplicate_rows(concat_pairs(found)), str(out))


def step_duckdb(directory: Path, out: Path, dist: int | None) -> None:
    import duckdb

    from oibeam.transforms.dedup.pairs import bands

    source = f"read_parquet('{directory}/part-*.parquet')"
    if dist is None:
        duckdb.sql(
            f"""copy (select list(ImageID order by ImageID) as ids from {source}
                group by OriginalMD5 having count(*) > 1) to '{out}'"""
        )
        return
    values = ", ".join(f"({b}, {s}, {w})" for b, (s, w) in enumerate(bands(dist)))
    duckdb.sql(
        f"""copy (
        with b(band, shift, width) as (values {values}),
        e as (select ImageID, phash, band,
                     (phash >> shift) & ((1::BIGINT << width) - 1) as v
              from {source}, b)
        select distinct x.ImageID as a, y.ImageID as b
        from e x join e y on x.band = y.band and x.v = y.v and x.ImageID < y.ImageID
        where bit_count(xor(x.phash, y.phash)) <= {dist}
        ) to '{out}'"""
    )


def _recall(plan: dict, group_of: dict) -> dict:
    def together(pairs):
        return sum(
            1 for a, b in pairs if a in group_of and group_of.get(b) == group_of[a]
        )

    grouped = [group_of[i] for i in plan["blank"] if i in group_of]
    blank_groups = set(grouped)
    planted = len(plan["exact"]) + len(plan["near"]) + max(0, len(plan["blank"]) - 1)
    found = together(plan["exact"]) + together(plan["near"])
    found += len(grouped) - len(blank_groups)  # links among the blank copies
    return {
        "recall": round(found / planted, 5),
        "exact_found": together(plan["exact"]),
        "near_found": together(plan["near"]),
        "blank_groups": len(blank_groups),
        "far_paired": together(plan["far"]),
    }


def _pair_recall(plan: dict, pairs: pa.Table) -> dict:
    import pyarrow.compute as pc

    total = pairs.num_rows
    planted = pa.array([a for kind in ("exact", "near", "far") for a, _ in plan[kind]])
    pairs = pairs.filter(
        pc.or_(pc.is_in(pairs["a"], planted), pc.is_in(pairs["b"], planted))
    )
    found = {
        tuple(sorted(p))
        for p in zip(pairs["a"].to_pylist(), pairs["b"].to_pylist(), strict=True)
    }
    near = sum(1 for p in plan["near"] if tuple(sorted(p)) in found)
    far = sum(1 for p in plan["far"] if tuple(sorted(p)) in found)
    exact = sum(1 for p in plan["exact"] if tuple(sorted(p)) in found)
    return {"pairs": total, "near_found": near, "exact_found": exact, "far_paired": far}


def bench_grouping(args) -> dict:
    data = (
        args.workdir
        / f"synthetic-{args.images}-{args.blank}-{args.distance}-s{args.seed}"
    )
    plan = synthetic(data, args.images, args.blank, args.distance, args.seed)
    results = {}
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--workdir", str(args.workdir), "--distance", str(args.distance)]
    steps = [
        "oibeam-exact",
        "duckdb-exact",
        "oibeam-near",
        "oibeam-core",
        "duckdb-near",
    ]
    for step in steps:
        out = args.workdir / f"{step}.parquet"
        got = measure(
            [*me, "--step", step, "--data", str(data), "--out", str(out), *common]
        )
        got.pop("output")
        table = pq.read_table(out)
        if step == "duckdb-exact":
            got["groups"] = table.num_rows
        elif step == "duckdb-near":
            got |= _pair_recall(plan, table)
        else:
            group_of = dict(
                zip(
                    table["ImageID"].to_pylist(),
                    table["group"].to_pylist(),
                    strict=True,
                )
            )
            got["rows"] = table.num_rows
            got["groups"] = len(set(group_of.values()))
            got |= _recall(plan, group_of)
        results[step] = got
        print(step, json.dumps(got))
    ours = pq.read_table(args.workdir / "oibeam-exact.parquet")
    theirs = pq.read_table(args.workdir / "duckdb-exact.parquet")
    groups = {}
    for image_id, group in zip(
        ours["ImageID"].to_pylist(), ours["group"].to_pylist(), strict=True
    ):
        groups.setdefault(group, []).append(image_id)
    agree = sorted(sorted(g) for g in groups.values()) == sorted(
        theirs["ids"].to_pylist()
    )
    print(f"exact groups agree with DuckDB: {agree}")
    results["exact_agree"] = agree
    return {
        "grouping": results,
        "planted": {k: len(v) for k, v in plan.items() if k != "images"},
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--blank", type=int, default=3_000)
    parser.add_argument("--distance", type=int, default=DEFAULT_NEAR_DISTANCE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", nargs="+", default=[str(PHOTOS)])
    parser.add_argument("--generated", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=0.3, help="per photo and way")
    parser.add_argument("--skip-hash", action="store_true")
    parser.add_argument("--skip-grouping", action="store_true")
    parser.add_argument(
        "--workdir", type=Path, default=ROOT / "benchmarks" / "runs" / "duplicates"
    )
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        steps = {
            "oibeam-exact": lambda: step_beam(args.data, args.out, None),
            "oibeam-near": lambda: step_beam(args.data, args.out, args.distance),
            "oibeam-core": lambda: step_core(args.data, args.out, args.distance),
            "duckdb-exact": lambda: step_duckdb(args.data, args.out, None),
            "duckdb-near": lambda: step_duckdb(args.data, args.out, args.distance),
        }
        steps[args.step]()
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "python": platform.python_version(),
        "argv": sys.argv[1:],
    }
    if not args.skip_hash:
        result |= bench_hash(args)
    if not args.skip_grouping:
        result |= bench_grouping(args)
    with (args.workdir / "results.jsonl").open("a") as f:
        f.write(json.dumps(result, default=str) + "\n")


if __name__ == "__main__":
    main()
