"""What every Beam command does where it is launched, before and around its
pipeline: plan the CSV inputs, resolve --label names to mids, describe the run
for its manifest, and the run's lifecycle (a live progress line for local
fetches; exchange files removed afterwards, whatever happened)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any, TypeVar

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from oibeam.pipelines.beam_options import LOCAL_RUNNER, runner_name
from oibeam.pipelines.layout import RunLayout, UsageError
from oibeam.pipelines.options.beam_commands import FetchRunConfig, TablesConfig
from oibeam.pipelines.options.inputs import Inputs
from oibeam.pipelines.stages import join_buckets
from oibeam.pipelines.versions import versions
from oibeam.schemas import fetch as fetch_schema
from oibeam.transforms.common.exchange import remove_exchange
from oibeam.transforms.common.files import is_uri
from oibeam.transforms.common.progress import ProgressPrinter
from oibeam.transforms.publish.manifest import EXTRA_INPUTS
from oibeam.transforms.read.classes import (
    ParsedClasses,
    parse_classes,
    read_class_file,
)
from oibeam.transforms.read.csv_inputs import InputPlan, plan_inputs
from oibeam.transforms.read.hierarchy import load_hierarchy, with_descendants
from oibeam.transforms.read.input_files import InputError, is_compressed
from oibeam.transforms.select.select_images import resolve_labels

_LOG = logging.getLogger(__name__)
C = TypeVar("C", bound=FetchRunConfig)


def plan_csv_inputs(inputs: Inputs) -> InputPlan:
    """The read plan of a command's CSV inputs (InputError if one is wrong),
    logged."""
    plan = plan_inputs(
        inputs.images,
        inputs.labels,
        inputs.classes,
        inputs.split_bytes,
        boxes=inputs.boxes,
    )
    _LOG.info(
        "reading %d images file(s), %d labels file(s), %d box file(s), "
        "%d class file(s) in %d ranges",
        len(plan.of_kind("images")),
        len(plan.of_kind("labels")),
        len(plan.of_kind("boxes")),
        len(plan.of_kind("classes")),
        len(plan.ranges),
    )
    return plan


def load_class_names(paths: tuple[str, ...]) -> dict[str, str]:
    """mid -> display name from class description files (read where we launch,
    as the pipeline reads them: DamagedInput or InputError names a file that
    is cut short or too big)."""
    parsed = ParsedClasses()
    for file_id, path in enumerate(paths):
        for match in FileSystems.match([path])[0].metadata_list:
            data, _ = read_class_file(match.path, is_compressed(match.path))
            parse_classes(data, file_id, file_id, parsed)
    return parsed.names


def resolve_labels_of(config: C) -> C:
    """The config with its --label names turned into mids in its selection and,
    with --with-descendants, every label under them added (UsageError for a
    name that is unknown or ambiguous, InputError for a class file that
    cannot be read)."""
    names = config.labels.names
    try:
        mids = names
        if not all(v.startswith("/") for v in names):
            if not config.inputs.classes:
                raise ValueError(
                    "--label by display name needs --classes (or give the mid)"
                )
            mids = resolve_labels(names, load_class_names(config.inputs.classes))
        if config.labels.with_descendants:
            mids = with_descendants(mids, load_hierarchy(config.inputs.hierarchy))
    except InputError:
        raise  # a ValueError too, but the input's, not the flags'
    except ValueError as e:
        raise UsageError(str(e)) from e
    return dataclasses.replace(
        config, selection=dataclasses.replace(config.selection, labels=mids)
    )


def _hierarchy_input(path: str | None) -> dict[str, Any]:
    """The manifest entry (under EXTRA_INPUTS) of the --hierarchy file."""
    if not path:
        return {}
    with FileSystems.open(path) as f:
        data = f.read()
    entry = {
        "path": path,
        "kind": "hierarchy",
        "bytes": len(data),
        "md5": hashlib.md5(data).hexdigest(),
        "labels": len(load_hierarchy(path).labels),
    }
    return {EXTRA_INPUTS: [entry]}


def check_workers_see_paths(options: PipelineOptions, config: TablesConfig) -> None:
    """UsageError when a runner whose workers run elsewhere is given local
    paths (--output, inputs) that nothing says every worker can see: workers
    read the inputs and write the run (exchange files, tables, shards)."""
    runner = runner_name(options)
    if runner == LOCAL_RUNNER or config.output.shared_paths:
        return
    paths = [config.output.output, *config.inputs.paths()]
    local = [p for p in paths if not is_uri(p)]
    if local:
        raise UsageError(
            f"--runner {runner} runs its workers elsewhere, where local paths "
            f"such as {local[0]} are not there: put --output and the inputs on "
            "storage every worker reaches (gs://...), or, for a shared mount "
            "seen at the same path by every worker (NFS, or a cluster on this "
            "machine), say so with --shared-paths"
        )


def run_info(
    command: str,
    options: PipelineOptions,
    config: TablesConfig,
    plan: InputPlan | None,
) -> dict[str, Any]:
    """The manifest's description of the run (its end time is added last):
    command, runner, versions, options, the trainable rule, the join's buckets
    (when CSVs are read), the status vocabulary (when images are fetched) and
    the --hierarchy file."""
    info = {
        "command": command,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "runner": runner_name(options),
        "versions": versions(),
        "options": config.as_json(),
        "trainable_rule": {
            "name": config.rule.name,
            "description": config.rule.describe(),
        },
    }
    if plan is not None:
        info["join_buckets"] = join_buckets(config.inputs, plan)
    if isinstance(config, FetchRunConfig):
        info["status_vocabulary"] = {
            name: meaning for name, (_, meaning) in fetch_schema.STATUSES.items()
        }
    info.update(_hierarchy_input(config.inputs.hierarchy))
    return info


@contextlib.contextmanager
def launched(
    options: PipelineOptions,
    layout: RunLayout,
    *,
    keep_exchange: bool = False,
    totals: dict[str, int] | None = None,
) -> Iterator[str | None]:
    """Around a run: yields the progress directory that a local run's workers
    publish their counts in (None on other runners) while a progress line is
    printed (`totals`: those known before the run); afterwards removes it and
    the run's exchange files (unless `keep_exchange`: a dry run has none)."""
    local = runner_name(options) == LOCAL_RUNNER
    progress_dir = tempfile.mkdtemp(prefix="oibeam-progress-") if local else None
    try:
        printer = ProgressPrinter(progress_dir, totals) if local else None
        with printer or contextlib.nullcontext():
            yield progress_dir
    finally:
        if not keep_exchange:
            try:
                remove_exchange(layout.exchange)
            except Exception as e:  # never in place of the run's own error
                _LOG.warning("could not remove %s: %s", layout.exchange, e)
        if progress_dir:
            shutil.rmtree(progress_dir, ignore_errors=True)
