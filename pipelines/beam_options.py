"""Beam pipeline options: the local runner chosen explicitly, typos refused.

Beam's DirectRunner first tries to download the Prism runner binary and falls
back to its in-process Python runner when that fails. Nothing may download at
run time here, so the local default (no --runner, or --runner DirectRunner) is
that in-process Python runner itself: FnApiRunner.
"""

from __future__ import annotations

import logging
import os

from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    StandardOptions,
    _BeamArgumentParser,
)

from oibeam.transforms.common.beam_setup import set_up_beam

LOCAL_RUNNER = "FnApiRunner"
# Bundles run on this many in-process workers (threads; pyarrow and NumPy release
# the GIL): 1.3-1.4x faster on 2 cores. Capped: each worker holds a bucket.
LOCAL_WORKERS = max(1, min(os.cpu_count() or 1, 4))
# A local run that fetches at least this many images runs its workers as
# processes (Beam's multi_processing mode) unless --direct_running_mode says
# otherwise: in one process the fetch threads share the GIL, ~910 images/s
# steady on 2 cores, where two processes fetch ~1,160 images/s but start 2.3 s
# later and use ~2.4x the memory: even at ~10,000 images (benchmarks/README.md).
PROCESSES_FROM_IMAGES = 20_000
_LOG = logging.getLogger(__name__)


class BeamFlagError(ValueError):
    """A flag that neither oibeam nor Beam knows."""


def _runner_flag(args: list[str]) -> tuple[int, str | None]:
    for i, arg in enumerate(args):
        if arg == "--runner" and i + 1 < len(args):
            return i, args[i + 1]
        if arg.startswith("--runner="):
            return i, arg.split("=", 1)[1]
    return -1, None


DASK_RUNNER = "oibeam.pipelines.dask_runner.DaskRunner"


def _with_our_dask_runner(args: list[str]) -> list[str]:
    """--runner DaskRunner means oibeam's fix of Beam's (dask_runner.py),
    imported so that its flags (--dask_client_address ...) are known."""
    index, runner = _runner_flag(args)
    if runner not in ("DaskRunner", DASK_RUNNER):
        return args
    try:
        import oibeam.pipelines.dask_runner  # noqa: F401
    except ImportError as e:
        raise BeamFlagError(
            f"--runner DaskRunner needs dask.distributed ({e}): "
            "pip install 'oibeam[dask]'"
        ) from None
    args = list(args)
    if args[index] == "--runner":
        args[index + 1] = DASK_RUNNER
    else:
        args[index] = f"--runner={DASK_RUNNER}"
    return args


def with_local_default(args: list[str]) -> list[str]:
    """The args with --runner FnApiRunner when none or DirectRunner, and with
    LOCAL_WORKERS workers unless --direct_num_workers says otherwise.

    Workers are threads of this process (Beam's in_memory mode): one process
    fetched 5,000 images as fast as two worker processes (benchmarks/README.md),
    in less memory and without their start; big fetches get processes
    (for_fetching), and `--direct_running_mode` decides when given."""
    args = list(args)
    index, runner = _runner_flag(args)
    if runner is None:
        args.append(f"--runner={LOCAL_RUNNER}")
    elif runner in ("DirectRunner", "direct"):
        _LOG.info("--runner DirectRunner: using its in-process runner, FnApiRunner")
        if args[index] == "--runner":
            args[index + 1] = LOCAL_RUNNER
        else:
            args[index] = f"--runner={LOCAL_RUNNER}"
    elif runner != LOCAL_RUNNER:
        return args
    flags = {a.split("=")[0] for a in args}
    if "--direct_num_workers" not in flags:
        args.append(f"--direct_num_workers={LOCAL_WORKERS}")
    return args


def runner_args(args: list[str]) -> list[str]:
    """The Beam args with the runner oibeam uses for the one asked for."""
    return with_local_default(_with_our_dask_runner(args))


def check_known(args: list[str]) -> None:
    """Raises BeamFlagError for flags no PipelineOptions class defines."""
    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in PipelineOptions.__subclasses__():
        cls._add_argparse_args(parser)  # the same parser Beam builds
    _, unknown = parser.parse_known_args(args)
    flags = [a for a in unknown if a.startswith("-")]
    if flags:
        raise BeamFlagError(
            f"unknown flag(s): {' '.join(flags)} (not an oibeam flag, not a Beam "
            "pipeline option; see --help)"
        )


def pipeline_options(args: list[str]) -> PipelineOptions:
    """PipelineOptions from Beam flags, with the explicit local default runner."""
    set_up_beam()
    args = runner_args(args)
    check_known(args)
    return PipelineOptions(args)


def for_fetching(
    options: PipelineOptions, args: list[str], images: int | None
) -> PipelineOptions:
    """`options` (built from `args`), with worker processes when the run is
    local, has 2+ workers, no --direct_running_mode and fetches at least
    PROCESSES_FROM_IMAGES images (`images`: an upper estimate; None when the
    selection's size cannot be told before it runs: threads, which cost a
    selection of a few hundred images far less than processes' start)."""
    if (
        runner_name(options) != LOCAL_RUNNER
        or options.view_as(DirectOptions).direct_num_workers < 2
        or any(a.startswith("--direct_running_mode") for a in args)
    ):
        return options
    if images is None:
        _LOG.info(
            "the selection's size is known only once it runs: local workers stay "
            "threads (--direct_running_mode multi_processing for 20,000+ images)"
        )
        return options
    if images < PROCESSES_FROM_IMAGES:
        return options
    _LOG.info(
        "up to %d images to fetch: local workers run as processes "
        "(--direct_running_mode in_memory keeps them threads)",
        images,
    )
    return pipeline_options([*args, "--direct_running_mode=multi_processing"])


def runner_name(options: PipelineOptions) -> str:
    runner = options.view_as(StandardOptions).runner
    return runner if isinstance(runner, str) else type(runner).__name__
