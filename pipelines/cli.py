"""The `oibeam` command line: `oibeam tables ...`, `oibeam sample ...`."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from apache_beam.io.filesystems import FileSystems

from oibeam.pipelines.beam_options import BeamFlagError, QuietBeamNoise
from oibeam.pipelines.fetch import run_fetch
from oibeam.pipelines.layout import OutputExists, UsageError
from oibeam.pipelines.options import (
    FetchRunConfig,
    SnapshotConfig,
    TablesConfig,
    fetch_parser,
    snapshot_parser,
    tables_parser,
)
from oibeam.pipelines.tables import run_tables
from oibeam.transforms.read.csv_inputs import InputError
from oibeam.transforms.read.read_csv import CsvStructureError

# Errors that are the user's to fix: a message, exit status 2, no traceback.
USER_ERRORS = (InputError, OutputExists, BeamFlagError, UsageError, CsvStructureError)

_USAGE = """usage: oibeam COMMAND [flags]

commands:
  tables   read Open Images CSVs into Parquet tables, label statistics and the
           trainable label set (oibeam tables --help)
  fetch    select images, fetch and verify them, write WebDataset shards with a
           status for every image (oibeam fetch --help)
  snapshot build a versioned snapshot (tables, selection, fetch, shards) and
           publish it atomically; --previous refreshes incrementally
  verify   check a snapshot offline: files, checksums, counts
  report   write report.html for a run: plots and tables of labels and fetches
  export   training lists, per-image JSONL, COCO boxes, attribution (ok images)
  sample   write a synthetic release in the real V1 shape (oibeam sample --help)
  sample-server
           serve a sample release's images on loopback, faults included
"""


def _summary(manifest_path: str) -> str:
    with FileSystems.open(manifest_path) as f:
        manifest = json.loads(f.read())
    rows = manifest["rows"]
    lines = [
        f"images: {rows.get('images', 0):,}   labels: {rows.get('labels', 0):,}   "
        f"labels with statistics: {rows.get('label_stats', 0):,}",
        f"trainable labels ({manifest['trainable_rule']['name']}: "
        f"{manifest['trainable_rule']['description']}): "
        f"{rows.get('trainable_labels', 0):,}",
        f"rejected rows: {rows.get('errors', 0):,}"
        + (
            " ("
            + ", ".join(f"{k} {v:,}" for k, v in manifest["rejected_by_code"].items())
            + ")"
            if manifest["rejected_by_code"]
            else ""
        ),
        f"outputs: {manifest_path.rsplit('/', 1)[0]}/tables/ "
        "(images, labels, label_counts, label_stats, errors, trainable_labels.csv)",
        f"manifest: {manifest_path}",
    ]
    return "\n".join(lines)


def tables_main(argv: list[str]) -> int:
    args, beam_args = tables_parser().parse_known_args(argv)
    try:
        config = TablesConfig.from_args(args)
    except ValueError as e:
        print(f"oibeam tables: error: {e}", file=sys.stderr)
        return 2
    try:
        manifest = run_tables(config, beam_args)
    except USER_ERRORS as e:
        print(f"oibeam tables: error: {e}", file=sys.stderr)
        return 2
    print(_summary(manifest))
    return 0


def _fetch_summary(manifest_path: str) -> str:
    with FileSystems.open(manifest_path) as f:
        manifest = json.loads(f.read())
    counts = manifest.get("counts", {})
    statuses = {k.removeprefix("status:"): v for k, v in counts.items() if ":" in k}
    ok = statuses.get("ok", 0)
    failed = ", ".join(f"{k} {v:,}" for k, v in statuses.items() if k != "ok")
    root = manifest_path.rsplit("/", 1)[0]
    return "\n".join(
        [
            f"selected images: {counts.get('selected', 0):,}   ok: {ok:,}"
            + (f"   not fetched: {failed}" if failed else ""),
            f"shards: {len(manifest['tables'].get('shards', {}).get('files', [])):,} "
            f"in {root}/shards/ (WebDataset tar, index in shards/index/)",
            f"images table with a status per image: {root}/tables/images/",
            f"manifest: {manifest_path}",
        ]
    )


def fetch_main(argv: list[str]) -> int:
    args, beam_args = fetch_parser().parse_known_args(argv)
    try:
        config = FetchRunConfig.from_args(args)
    except ValueError as e:
        print(f"oibeam fetch: error: {e}", file=sys.stderr)
        return 2
    try:
        manifest = run_fetch(config, beam_args)
    except USER_ERRORS as e:
        print(f"oibeam fetch: error: {e}", file=sys.stderr)
        return 2
    print(_fetch_summary(manifest))
    return 0


def _snapshot_summary(outcome) -> str:
    if outcome.dry_run:
        job = getattr(outcome.result, "job", None)
        steps = []
        if job is not None:
            root = job.proto_pipeline.root_transform_ids
            transforms = job.proto_pipeline.components.transforms
            for transform_id in root:
                steps += [
                    transforms[s].unique_name
                    for s in transforms[transform_id].subtransforms
                ]
        proto = getattr(job, "proto", None)
        named = f"job {proto.name} " if getattr(proto, "name", "") else "the job "
        labels = dict(proto.labels) if getattr(proto, "labels", None) else {}
        if labels:
            named += "(labels " + ", ".join(f"{k}={v}" for k, v in labels.items())
            named += ") "
        return f"dry run: {named}was built, nothing ran" + (
            "; its steps: " + ", ".join(steps) if steps else ""
        )
    manifest_path = f"{outcome.directory}/manifest.json"
    with FileSystems.open(manifest_path) as f:
        manifest = json.loads(f.read())
    parent = manifest["snapshot"]["parent"]
    rows, rule = manifest["rows"], manifest["trainable_rule"]
    lines = [
        f"labels with statistics: {rows.get('label_stats', 0):,}   trainable labels "
        f"({rule['name']}: {rule['description']}): {rows.get('trainable_labels', 0):,}"
        f"   rejected rows: {rows.get('errors', 0):,}",
        _fetch_summary(manifest_path),
    ]
    if manifest.get("changes"):
        lines.append(
            "since "
            + (parent["id"] if parent else "nothing")
            + ": "
            + ", ".join(f"{k} {v:,}" for k, v in manifest["changes"].items())
            + "   actions: "
            + ", ".join(f"{k} {v:,}" for k, v in manifest["actions"].items())
        )
    lines.append(
        f"published {manifest['snapshot']['id']}: {outcome.directory} "
        f"(_SUCCESS written, {manifest['snapshot']['root']}/LATEST points at it)"
    )
    if outcome.report:
        lines.append(f"report: {outcome.report}")
    return "\n".join(lines)


def snapshot_main(argv: list[str]) -> int:
    from oibeam.pipelines.snapshot import run_snapshot
    from oibeam.transforms.publish.publish_snapshot import LatestMoved

    args, beam_args = snapshot_parser().parse_known_args(argv)
    try:
        config = SnapshotConfig.from_args(args)
    except ValueError as e:
        print(f"oibeam snapshot: error: {e}", file=sys.stderr)
        return 2
    try:
        outcome = run_snapshot(config, beam_args)
    except (*USER_ERRORS, LatestMoved) as e:
        print(f"oibeam snapshot: error: {e}", file=sys.stderr)
        return 2
    print(_snapshot_summary(outcome))
    return 0


def verify_main(argv: list[str]) -> int:
    from oibeam.tools.verify import verify_snapshot

    parser = argparse.ArgumentParser(
        prog="oibeam verify",
        description="Check a snapshot offline: every file its manifest lists is "
        "there with its size and checksum, nothing else is, the counts "
        "reconcile and every ok image's bytes match its OriginalMD5. Exits 1 "
        "and lists the problems otherwise.",
    )
    parser.add_argument("snapshot", help="ROOT/ID, or ROOT to check ROOT/LATEST")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="sizes and row counts only: do not read every byte",
    )
    args = parser.parse_args(argv)
    report = verify_snapshot(args.snapshot, quick=args.quick)
    print(report.summary())
    return 0 if report.ok else 1


def report_main(argv: list[str]) -> int:
    from oibeam.tools.report.write_report import report_main as run

    return run(argv)


def export_main(argv: list[str]) -> int:
    from oibeam.tools.export.run_export import export_main as run

    return run(argv)


def sample_main(argv: list[str]) -> int:
    from oibeam.tools.sample import write_sample_release

    parser = argparse.ArgumentParser(
        prog="oibeam sample",
        description="Write a synthetic Open Images release in the real V1 layout.",
    )
    parser.add_argument("--output", required=True, help="directory to write")
    parser.add_argument("--images", type=int, required=True, help="number of images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation-fraction", type=float, default=0.018)
    parser.add_argument("--num-labels", type=int, default=7844)
    parser.add_argument(
        "--thumbnails",
        action="store_true",
        help="add the Thumbnail300KURL column (V2/V3 style)",
    )
    parser.add_argument(
        "--serve-base",
        dest="serve_base",
        metavar="URL",
        help="point OriginalURL at URL{ImageID}.jpg and write real images under "
        "served/ for `oibeam sample-server` (try `oibeam fetch` offline)",
    )
    args = parser.parse_args(argv)
    try:
        release = write_sample_release(
            args.output,
            args.images,
            seed=args.seed,
            validation_fraction=args.validation_fraction,
            num_labels=args.num_labels,
            thumbnails=args.thumbnails,
            serve_base=args.serve_base,
        )
    except ValueError as e:
        print(f"oibeam sample: error: {e}", file=sys.stderr)
        return 2
    print(
        f"wrote {release.images:,} images and {release.label_rows:,} label rows "
        f"to {release.root}"
    )
    print("  --images " + " ".join(release.images_files))
    print("  --labels " + " ".join(release.labels_files))
    print("  --classes " + release.classes_file)
    return 0


def sample_server_main(argv: list[str]) -> int:
    from oibeam.tools.sample import SampleServer, served_dir

    parser = argparse.ArgumentParser(
        prog="oibeam sample-server",
        description="Serve the images of a sample release written with "
        "--serve-base, with the faults of the real thing (404s, placeholder "
        "redirects, changed bytes, a 500 before success). Runs until stopped.",
    )
    parser.add_argument("--root", required=True, help="the sample release directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    server = SampleServer(served_dir(args.root), args.host, args.port)
    print(
        f"serving {served_dir(args.root)} on http://{args.host}:{args.port}/",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


COMMANDS = {
    "tables": tables_main,
    "fetch": fetch_main,
    "snapshot": snapshot_main,
    "verify": verify_main,
    "report": report_main,
    "export": export_main,
    "sample": sample_main,
    "sample-server": sample_server_main,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("apache_beam", "google"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(QuietBeamNoise())
    if argv and argv[0] in ("-h", "--help"):
        print(_USAGE)
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(_USAGE, file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
