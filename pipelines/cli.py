"""The `oibeam` command line: parse, build the config, run, print a summary.

A mistake that is the user's to fix (a wrong flag, a missing input, an output
that already holds a run) is one line on stderr and exit status 2, never a
traceback; `verify` exits 1 when the snapshot has problems.
"""

from __future__ import annotations

import errno
import functools
import importlib
import logging
import re
import shlex
import signal
import sys
from collections.abc import Callable

from oibeam.pipelines.log_filters import QuietBeamNoise
from oibeam.pipelines.options import gc_command, tool_commands
from oibeam.pipelines.options.beam_commands import (
    FetchRunConfig,
    SnapshotConfig,
    TablesConfig,
    fetch_parser,
    snapshot_parser,
    tables_parser,
)
from oibeam.pipelines.options.plan_command import PlanConfig, plan_parser
from oibeam.pipelines.versions import versions
from oibeam.transforms.publish.claim import SnapshotClaimed
from oibeam.transforms.publish.publish_snapshot import LatestMoved


@functools.cache
def user_errors() -> tuple[type, ...]:
    """Errors that are the user's to fix: a message, exit status 2, no
    traceback. (Imported when first asked: most of them come with Beam.)"""
    from oibeam.pipelines.beam_options import BeamFlagError
    from oibeam.pipelines.layout import OutputExists, UsageError
    from oibeam.transforms.publish.reconcile import TooManyRejected
    from oibeam.transforms.read.csv_blocks import CsvStructureError
    from oibeam.transforms.read.csv_inputs import InputError

    return (
        InputError,
        OutputExists,
        BeamFlagError,
        UsageError,
        CsvStructureError,
        TooManyRejected,
    )


def _and_subclasses(classes) -> list[type]:
    found = []
    for cls in classes:
        found += [cls, *_and_subclasses(cls.__subclasses__())]
    return found


# A user error raised in a worker process reaches the launcher as text: the
# last line of a traceback, `module.Class: message`, maybe with Beam's
# ` [while running 'Step']` after it.
_WHILE_RUNNING = re.compile(r" \[while running '[^\n]*?'\]$")


@functools.cache
def _user_error_text() -> re.Pattern:
    names = "|".join(sorted({c.__name__ for c in _and_subclasses(user_errors())}))
    return re.compile(rf"\b(?:{names}): ([^\n]+?)(?: \[while running [^\n]*)?$", re.M)


_USAGE = """usage: oibeam COMMAND [flags]    (oibeam --version)

commands:
  tables   read Open Images CSVs into Parquet tables, label statistics and the
           trainable label set (oibeam tables --help)
  fetch    select images, fetch and verify them, write WebDataset shards with a
           status for every image (oibeam fetch --help)
  plan     before a fetch: what it would select (images, bytes per subset and
           host), a probe of a sample of its URLs, hours and cost on N workers
  snapshot build a versioned snapshot (tables, selection, fetch, shards) and
           publish it atomically; --previous refreshes incrementally
  verify   check a run (tables, fetch or snapshot) offline: files, checksums, counts
  report   write report.html for a run: plots and tables of labels and fetches
  export   training lists, per-image JSONL, COCO boxes, attribution (ok images)
  gc       expire old snapshots of a root, delete unused pooled shards, erase
           the bytes of images no kept snapshot has (oibeam gc --help)
  download-metadata
           download a release's official CSVs (v1-v7), checked, laid out for
           tables/snapshot (oibeam download-metadata --help)
  sample   write a synthetic release in the real V1 shape (oibeam sample --help)
  sample-server
           serve a sample release's images on loopback, faults included
"""


def _fail(command: str, error: Exception | str, code: int = 2) -> int:
    message = _WHILE_RUNNING.sub("", str(error))
    print(f"oibeam {command}: error: {message}", file=sys.stderr)
    return code


def _chain(error: BaseException | None):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _user_error(error: BaseException) -> str | None:
    """The message of a user error in `error`'s chain, raised in this process
    or in a worker whose error reached us as text."""
    for cause in _chain(error):
        if isinstance(cause, user_errors()):
            return str(cause)
        found = _user_error_text().search(str(cause))
        if found:
            return found.group(1)
    return None


def _stopped_by(error: BaseException, output: str) -> tuple[str, int] | None:
    """(message, exit status) when the run stopped on something that is not a
    bug: a user error (2), or a full disk (1); in this process or in a worker
    whose error reached us as text."""
    message = _user_error(error)
    if message is not None:
        return message, 2
    if any(
        (isinstance(cause, OSError) and cause.errno == errno.ENOSPC)
        or "[Errno 28]" in str(cause)
        for cause in _chain(error)
    ):
        return (
            f"no space left on the filesystem of {output}: free some space, "
            "then run the same command again",
            1,
        )
    return None


class _OneLineErrors(logging.Filter):
    """Drops the traceback a Beam step logs for an error the command reports
    itself, in one line (a damaged input, a full disk, too many rejected
    rows...): the user sees it once. Worker processes log theirs as text."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            return _stopped_by(error, "") is None
        return (
            record.levelno < logging.ERROR
            or _user_error_text().search(record.getMessage()) is None
        )


def _load(name: str) -> Callable:
    """`module:function`, imported when first called (Beam comes with it)."""
    module, function = name.split(":")
    return getattr(importlib.import_module(module), function)


def _beam_command(name, parser, config_type, runs, summary, errors=()) -> Callable:
    """A Beam command's main: its flags -> its config (a ValueError is the
    user's to fix) -> the first of `runs` (`module:function` names) that gives
    an outcome, with the rest as Beam flags -> the summary."""

    def main(argv: list[str]) -> int:
        args, beam_args = parser().parse_known_args(argv)
        try:
            config = config_type.from_args(args)
        except ValueError as e:
            return _fail(name, e)
        try:
            outcome = None
            for run in runs:
                outcome = _load(run)(config, beam_args)
                if outcome is not None:
                    break
        except (*user_errors(), *errors) as e:
            return _fail(name, e)
        except Exception as e:
            stopped = _stopped_by(e, config.output.output)
            if stopped is None:
                raise
            return _fail(name, *stopped)
        print(_load(summary)(outcome))
        return 0

    return main


_SUMMARIES = "oibeam.pipelines.summaries"
tables_main = _beam_command(
    "tables",
    tables_parser,
    TablesConfig,
    ["oibeam.pipelines.tables:run_tables"],
    f"{_SUMMARIES}:tables_summary",
)
fetch_main = _beam_command(
    "fetch",
    fetch_parser,
    FetchRunConfig,
    ["oibeam.pipelines.fetch:run_fetch"],
    f"{_SUMMARIES}:fetch_summary",
)
plan_main = _beam_command(
    "plan",
    plan_parser,
    PlanConfig,
    ["oibeam.pipelines.plan:run_plan"],
    "oibeam.tools.plan.show:plan_summary",
)
# An unchanged refresh is written without a pipeline (or Beam, ~1.5 s to load);
# any other snapshot runs one.
snapshot_main = _beam_command(
    "snapshot",
    snapshot_parser,
    SnapshotConfig,
    [
        "oibeam.pipelines.unchanged_refresh:refresh_if_unchanged",
        "oibeam.pipelines.snapshot:run_snapshot",
    ],
    f"{_SUMMARIES}:snapshot_summary",
    errors=(LatestMoved, SnapshotClaimed),
)


def verify_main(argv: list[str]) -> int:
    from oibeam.tools.verify.verify_run import verify_snapshot

    args = tool_commands.verify_parser().parse_args(argv)
    report = verify_snapshot(args.snapshot, quick=args.quick, deep=args.deep)
    print(report.summary())
    return 0 if report.ok else 1


def report_main(argv: list[str]) -> int:
    from oibeam.tools.report.write_report import write_report
    from oibeam.tools.runs import NotARun

    args = tool_commands.report_parser().parse_args(argv)
    try:
        path = write_report(args.run_dir, args.top)
    except NotARun as e:
        return _fail("report", e)
    print(f"report: {path}")
    return 0


def export_main(argv: list[str]) -> int:
    from oibeam.tools.export.base import ExportError
    from oibeam.tools.export.files import FilesOptions
    from oibeam.tools.export.run_export import ExportConfig, run_export

    args = tool_commands.export_parser().parse_args(argv)
    try:
        config = ExportConfig.asked(
            args.run,
            args.formats,
            args.output,
            source=args.source,
            min_confidence=args.min_confidence,
            trainable_only=args.trainable_only,
            bucket_rows=args.bucket_rows,
            files=FilesOptions.from_flags(args),
        )
    except ValueError as e:
        return _fail("export", e)
    try:
        outcome = run_export(config)
    except ExportError as e:
        return _fail("export", e)
    print(outcome.summary())
    return 0


def gc_main(argv: list[str]) -> int:
    from oibeam.tools.gc.run_gc import GcConfig, GcError, NotARoot, RootBusy, run_gc

    args = gc_command.gc_parser().parse_args(argv)
    if args.keep is None and args.keep_days is None:
        return _fail("gc", "give --keep N, --keep-days D or both")
    config = GcConfig(args.root, args.keep, args.keep_days, args.dry_run)
    try:
        outcome = run_gc(config, lambda line: print(line, flush=True))
    except (NotARoot, RootBusy) as e:
        return _fail("gc", e)
    except GcError as e:
        return _fail("gc", e, 1)
    print(outcome.total(config.dry_run))
    if outcome.failures:
        return _fail("gc", f"{len(outcome.failures)} shard(s) not erased, see above", 1)
    return 0


def sample_main(argv: list[str]) -> int:
    from oibeam.tools.sample import write_sample_release

    args = tool_commands.sample_parser().parse_args(argv)
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
        return _fail("sample", e)
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

    args = tool_commands.sample_server_parser().parse_args(argv)
    try:
        server = SampleServer(served_dir(args.root), args.host, args.port)
    except (ValueError, OSError) as e:
        return _fail("sample-server", e)
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


def download_metadata_main(argv: list[str]) -> int:
    from oibeam.tools.metadata.download import DownloadError, download_metadata

    args = tool_commands.download_metadata_parser().parse_args(argv)
    try:
        layout = download_metadata(
            args.release, tuple(args.splits), args.output, args.base_url
        )
    except (DownloadError, OSError) as e:
        return _fail("download-metadata", e, 1)
    print(
        f"{len(layout.downloaded)} file(s) downloaded, {len(layout.kept)} already "
        f"there, in {args.output}; give them to oibeam tables or snapshot:"
    )
    print("  " + " ".join(shlex.quote(a) for a in layout.flags()))
    return 0


COMMANDS = {
    "tables": tables_main,
    "fetch": fetch_main,
    "plan": plan_main,
    "snapshot": snapshot_main,
    "verify": verify_main,
    "report": report_main,
    "export": export_main,
    "gc": gc_main,
    "download-metadata": download_metadata_main,
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
        handler.addFilter(_OneLineErrors())
    if argv and argv[0] in ("-h", "--help"):
        print(_USAGE)
        return 0
    if argv and argv[0] == "--version":
        print(
            f"oibeam {versions()['oibeam']} (apache-beam {versions()['apache-beam']})"
        )
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(_USAGE, file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, _quiet_interrupt)
    try:
        return COMMANDS[argv[0]](argv[1:])
    except KeyboardInterrupt:
        return _interrupted(argv[0])


def _quiet_interrupt(signum, frame) -> None:
    """Ctrl-C: from now on workers winding down say nothing (Beam would log an
    error with a traceback for each), then the usual KeyboardInterrupt."""
    logging.disable(logging.CRITICAL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise KeyboardInterrupt


_AFTER_INTERRUPT = {
    "fetch": "run the same command again to resume it: its committed shards are kept",
    "snapshot": "run the same command (same --snapshot-id) again to resume it: its "
    "committed shards are kept",
    "tables": "run the same command again: an unfinished tables run starts over",
}


def _interrupted(command: str) -> int:
    """One line for Ctrl-C, instead of Beam's errors from every worker."""
    logging.disable(logging.CRITICAL)
    hint = _AFTER_INTERRUPT.get(command)
    print(
        f"\noibeam {command}: interrupted" + (f"; {hint}" if hint else ""),
        file=sys.stderr,
        flush=True,
    )
    return 130


if __name__ == "__main__":
    sys.exit(main())
