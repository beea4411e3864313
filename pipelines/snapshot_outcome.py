"""What `oibeam snapshot` returns, and the report it writes last."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a snapshot run did: the published directory, or a dry run's job."""

    directory: str
    dry_run: bool
    result: Any
    report: str | None = None  # report.html, when written


def write_report(directory: str) -> str | None:
    """report.html of a published snapshot; a failure is logged, not raised:
    the snapshot is complete without it and `oibeam report` can redo it."""
    from oibeam.tools.report.write_report import write_report as write

    try:
        return write(directory)
    except Exception as e:
        _LOG.warning(
            "no report.html (%s: %s); run `oibeam report %s`",
            type(e).__name__,
            e,
            directory,
        )
        return None
