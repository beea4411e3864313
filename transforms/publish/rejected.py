"""CheckRejected: the step that stops a run whose input files rejected too
many of their rows, as soon as every input count is in, so that nothing is
fetched or published for a file of the wrong kind or release."""

from __future__ import annotations

import apache_beam as beam

from oibeam.schemas.elements import FileCount
from oibeam.transforms.publish.reconcile import check_rejected, reconcile
from oibeam.transforms.read.csv_inputs import InputPlan


def _check(counts: list[FileCount], plan: InputPlan, max_share: float) -> int:
    check_rejected(plan, reconcile(plan, counts), max_share)
    return len(plan.files)


class CheckRejected(beam.PTransform):
    """PCollection[FileCount] of every input file -> one int (the files
    checked), or TooManyRejected (see reconcile.check_rejected). Steps that
    must not start before the inputs are known good take the result as a side
    input: fetching, and writing the manifest."""

    def __init__(self, plan: InputPlan, max_share: float) -> None:
        super().__init__()
        self._plan = plan
        self._max_share = max_share

    def expand(self, counts: beam.PCollection[FileCount]) -> beam.PCollection[int]:
        return (
            counts
            | "AllInputCounts" >> beam.combiners.ToList()
            | "CheckRejectedShare"
            >> beam.Map(_check, self._plan, self._max_share).with_output_types(int)
        )
