"""--drop-eval-duplicates at launch: which train images an earlier run's
duplicates table marks (--duplicates-from RUN_DIR, or in a snapshot refresh
the --previous snapshot's table), read once before the pipeline is built, and
what the manifest records about it."""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from oibeam.pipelines.layout import UsageError
from oibeam.schemas.duplicates import DUPLICATES
from oibeam.tools.runs import NotARun, Run, resolve_run
from oibeam.transforms.common.files import absolute
from oibeam.transforms.select.leakage import REASONS, listed_train_ids
from oibeam.transforms.select.selection import Selection

_LOG = logging.getLogger(__name__)
DUPLICATES_TABLE = "duplicates"


def _table_of(path: str, flag: str) -> tuple[str, pa.Table | None]:
    """(run directory, its duplicates table or None); UsageError if `path`
    holds no complete run."""
    try:
        run = Run.load(resolve_run(path))
    except (NotARun, OSError) as e:
        raise UsageError(f"{flag} {path}: {e}") from e
    return run.directory, run.read(DUPLICATES_TABLE, DUPLICATES.names)


def listed_duplicates(
    selection: Selection, previous: str | None = None
) -> tuple[pa.Array | None, dict[str, Any]]:
    """(the ImageIDs of train images to drop as listed duplicates, or None
    without --drop-eval-duplicates; what the manifest records about them).

    --duplicates-from must name a run with a duplicates table (UsageError);
    without it, a snapshot refresh reads the table of its `previous` snapshot
    if that has one (older snapshots do not: then only MD5s decide)."""
    if not selection.drop_eval_duplicates:
        return None, {}
    source = selection.duplicates_from
    if source:
        directory, table = _table_of(absolute(source), "--duplicates-from")
        if table is None:
            raise UsageError(
                f"--duplicates-from {source}: {directory} has no duplicates "
                f"table (tables/{DUPLICATES_TABLE}): a run from before "
                "duplicates were detected; fetch with a newer oibeam first"
            )
    elif previous:
        directory, table = _table_of(previous, "--previous")
        if table is None:
            _LOG.info(
                "--drop-eval-duplicates: the previous snapshot %s has no "
                "duplicates table: train images are dropped by OriginalMD5 only",
                directory,
            )
    else:
        directory, table = None, None
    listed = listed_train_ids(table) if table is not None else pa.array([], pa.string())
    if directory is not None and table is not None:
        _LOG.info(
            "--drop-eval-duplicates: %s lists %d train image(s) in a group with "
            "a validation or test image",
            directory,
            len(listed),
        )
    info: dict[str, Any] = {"drop_vocabulary": REASONS}
    if table is not None:
        info["duplicates_from"] = {"path": directory, "listed": len(listed)}
    return listed, info


def listed_in(selection: Selection, parent: Run) -> str | None:
    """Why a refresh of `parent` would drop images the parent holds: train
    images that the duplicates table (--duplicates-from, else the parent's
    own, written after its selection) lists; None when there are none."""
    listed, _ = listed_duplicates(selection, parent.directory)
    if listed is None or not len(listed):
        return None
    images = parent.read("images", ["ImageID"])
    if images is None or not pc.any(pc.is_in(images["ImageID"], listed)).as_py():
        return None
    return "a duplicates table lists train images the previous snapshot holds"
