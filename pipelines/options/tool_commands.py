"""The parsers of the commands that run no Beam pipeline: verify, report,
export, sample and sample-server."""

from __future__ import annotations

import argparse

from oibeam.pipelines.options.flags import at_least_one
from oibeam.schemas.releases import SOURCE_KINDS


def verify_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oibeam verify",
        description="Check a run (tables, fetch or snapshot) offline: its "
        "manifest is intact, every file it lists (a snapshot's pooled shards "
        "included) is there with its size and checksum, nothing else is, and "
        "the counts reconcile; with --deep every ok image's bytes match its "
        "OriginalMD5 too. Exits 1 and lists the problems otherwise.",
    )
    parser.add_argument(
        "snapshot",
        metavar="RUN_DIR",
        help="a run directory (ROOT/ID), or a snapshot ROOT to check ROOT/LATEST",
    )
    depth = parser.add_mutually_exclusive_group()
    depth.add_argument(
        "--quick",
        action="store_true",
        help="sizes and row counts only: do not read every byte",
    )
    depth.add_argument(
        "--deep",
        action="store_true",
        help="also re-hash every ok image against its OriginalMD5 (reads each "
        "image again at its offset in its shard)",
    )
    return parser


def report_parser() -> argparse.ArgumentParser:
    from oibeam.tools.report.write_report import DEFAULT_TOP  # matplotlib: lazily

    parser = argparse.ArgumentParser(
        prog="oibeam report",
        description="Write RUN_DIR/report.html: one self-contained page with the "
        "label frequency, machine precision and confidence, trainable labels per "
        "rule, top and bottom labels and, for fetched runs, statuses, hosts, "
        "sizes, formats and the labels that fetch failures made untrainable.",
    )
    parser.add_argument(
        "run_dir", help="a run directory (ROOT/ID), or a snapshot ROOT (its LATEST)"
    )
    parser.add_argument(
        "--top",
        type=at_least_one,
        default=DEFAULT_TOP,
        help=f"rows in the top/bottom tables (default {DEFAULT_TOP})",
    )
    return parser


def export_parser() -> argparse.ArgumentParser:
    from oibeam.tools.export.reader import BUCKET_ROWS
    from oibeam.tools.export.run_export import COPIES, FORMATS

    parser = argparse.ArgumentParser(
        prog="oibeam export",
        description="Write training lists, per-image JSONL, COCO boxes and "
        "attribution from the fetched and verified (ok) images of a run of "
        "`oibeam fetch` or `oibeam snapshot`, or a self-contained copy of the "
        "run. Each format goes to its own directory under --output; a rerun "
        "replaces its files.",
    )
    parser.add_argument(
        "run",
        metavar="RUN_DIR",
        help="a fetch or snapshot run (ROOT/ID), or a "
        "snapshot ROOT (follows ROOT/LATEST); local or gs://",
    )
    parser.add_argument(
        "--format",
        dest="formats",
        nargs="+",
        action="extend",
        required=True,
        choices=(*FORMATS, *COPIES, "all"),
        metavar="F",
        help="tencent: training lists (<subset>.txt, classes.tsv); jsonl: one "
        "object per image; coco: boxes as COCO JSON per subset (needs a run "
        "made with --boxes); attribution: license and author per image; "
        "files: the images as plain files (below); "
        "webdataset: a self-contained copy of the run (its live samples in new "
        "tars, its tables, a manifest that `oibeam verify` checks), which copies "
        "every image byte; all: every one but files and webdataset (coco only "
        "if the run has boxes). Repeatable",
    )
    parser.add_argument(
        "--output", metavar="DIR", help="where to write (default RUN_DIR/exports)"
    )
    group = parser.add_argument_group(
        "training lists (--format tencent, and files with --layout labels)"
    )
    group.add_argument(
        "--label-source",
        "--source",  # its name before 0.2, as fetch's --label-source
        dest="source",
        choices=SOURCE_KINDS,
        default="any",
        help="labels from machine, human or any source; with any, a human "
        "verdict on a label overrules the machine's (default: any)",
    )
    group.add_argument(
        "--min-confidence",
        dest="min_confidence",
        type=float,
        metavar="X",
        default=0.0,
        help="keep labels with at least this confidence; positives are always "
        "> 0 (a human 0 is a verified negative)",
    )
    group.add_argument(
        "--trainable-only",
        dest="trainable_only",
        action="store_true",
        help="only labels of the run's trainable set (tables/trainable_labels.csv)",
    )
    _files_flags(parser)
    parser.add_argument(
        "--bucket-rows",
        dest="bucket_rows",
        type=int,
        metavar="N",
        default=BUCKET_ROWS,
        help="images sorted in memory at once; the rest waits in a local "
        f"temporary directory ($TMPDIR) (default {BUCKET_ROWS:,})",
    )
    return parser


def _files_flags(parser: argparse.ArgumentParser) -> None:
    from oibeam.tools.export.files import IMAGE_PATHS, LABEL_FILES, LAYOUTS
    from oibeam.tools.export.files_image import DEFAULT_QUALITY

    group = parser.add_argument_group("plain files (--format files)")
    group.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="flat",
        help="flat: files/<subset>/<ImageID>.<ext>; labels: also one folder "
        "per positive label, files/<subset>/<label>/ (default: flat)",
    )
    group.add_argument(
        "--label-files",
        dest="label_files",
        choices=LABEL_FILES,
        default="symlink",
        help="with --layout labels: a relative symlink to the flat file, or a "
        "copy in each label folder (gs:// holds no symlinks) (default: symlink)",
    )
    size = group.add_mutually_exclusive_group()
    size.add_argument(
        "--resize-longest",
        dest="resize_longest",
        type=at_least_one,
        metavar="N",
        help="shrink each image so its longest side is at most N pixels (aspect "
        "kept, never enlarged; resized images are written as JPEG)",
    )
    size.add_argument(
        "--resize-shortest",
        dest="resize_shortest",
        type=at_least_one,
        metavar="N",
        help="shrink each image so its shortest side is at most N pixels",
    )
    group.add_argument(
        "--jpeg-quality",
        dest="jpeg_quality",
        type=int,
        metavar="Q",
        default=DEFAULT_QUALITY,
        help=f"quality of the JPEGs written (default {DEFAULT_QUALITY})",
    )
    group.add_argument(
        "--image-paths",
        dest="image_paths",
        choices=IMAGE_PATHS,
        default="members",
        help="what COCO file_name and the JSONL path name: the member of a "
        "shard, or the file --format files writes in the same command "
        "(default: members)",
    )


def download_metadata_parser() -> argparse.ArgumentParser:
    from oibeam.tools.metadata.official_files import RELEASES, SPLITS

    parser = argparse.ArgumentParser(
        prog="oibeam download-metadata",
        description="Download a release's official metadata CSVs (images, "
        "image-level labels, class descriptions, boxes and the box hierarchy "
        "where the release has them) from their official locations, check "
        "each is whole (bytes "
        "against Content-Length, archives read through, sizes and MD5s where "
        "published), extract archives, and print the flags that give them to "
        "`oibeam tables` or `oibeam snapshot`. A rerun skips what is there.",
    )
    parser.add_argument(
        "--release",
        required=True,
        choices=tuple(RELEASES),
        help="the Open Images release, v1 (2016) to v7 (2022)",
    )
    parser.add_argument(
        "--split",
        dest="splits",
        nargs="+",
        choices=SPLITS,
        default=list(SPLITS),
        help="the splits whose CSVs the printed flags name; v4-v7 fetch only "
        "these splits' files (default: all)",
    )
    parser.add_argument("--output", required=True, metavar="DIR")
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="fetch the same paths from a mirror (URL/openimages/2016_08/...)",
    )
    return parser


def sample_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oibeam sample",
        description="Write a synthetic Open Images release in the real V1 layout.",
    )
    parser.add_argument("--output", required=True, help="directory to write")
    parser.add_argument(
        "--images", type=int, required=True, help="number of images to write"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the random seed: the same seed and sizes give byte-identical "
        "files (default: 0)",
    )
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=0.018,
        help="share of images in the validation subset, as in V1 (default: 0.018)",
    )
    parser.add_argument(
        "--num-labels",
        type=int,
        default=7844,
        help="labels the images draw from, as V1's 7,844 (default: 7844)",
    )
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
    return parser


def sample_server_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oibeam sample-server",
        description="Serve the images of a sample release written with "
        "--serve-base, with the faults of the real thing (404s, placeholder "
        "redirects, changed bytes, a 500 before success). Runs until stopped.",
    )
    parser.add_argument("--root", required=True, help="the sample release directory")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, required=True, help="the port its --serve-base URL names"
    )
    return parser
