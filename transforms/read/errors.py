"""ResolveErrorLines: give every rejected row its file and line number.

A range knows lines only relative to its own start; once every range has
reported how many lines it held, a line in range r of file f is the lines of
f's earlier ranges plus its line within r. Errors are grouped by the range
they come from and written one part per range, sorted by line.
"""

from __future__ import annotations

import itertools

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.elements import FileCount, RangeLines
from oibeam.schemas.tables import ERRORS, LINE, REF_LINE, REF_SRC, SRC
from oibeam.transforms.read.csv_inputs import InputPlan


def line_offsets(plan: InputPlan, lines: list[RangeLines]) -> dict[int, int]:
    """range_id -> lines in the earlier ranges of the same file."""
    count = {r.range_id: r.lines for r in lines}
    offsets: dict[int, int] = {}
    ranges = sorted(plan.ranges, key=lambda r: (r.file_id, r.start))
    for _, group in itertools.groupby(ranges, key=lambda r: r.file_id):
        total = 0
        for r in group:
            offsets[r.range_id] = total
            total += count.get(r.range_id, 0)
    return offsets


def resolve(table: pa.Table, plan: InputPlan, offsets: dict[int, int]) -> pa.Table:
    """ERRORS_INTERNAL rows -> ERRORS rows (file, line, kind, code, reason, raw)."""
    files = {f.file_id: f for f in plan.files}
    range_file = {r.range_id: r.file_id for r in plan.ranges}
    src = table[SRC].to_numpy()
    file_of = np.array([range_file[s] for s in src.tolist()], dtype=np.int64)
    line = table[LINE].to_numpy() + np.array(
        [offsets.get(s, 0) for s in src.tolist()], dtype=np.int64
    )
    reason = table["reason"]
    ref_src, ref_line = table[REF_SRC].to_pylist(), table[REF_LINE].to_pylist()
    if any(r is not None for r in ref_src):
        suffixes = [
            ""
            if rs is None
            else f" (kept {files[range_file[rs]].path}:{offsets.get(rs, 0) + rl})"
            for rs, rl in zip(ref_src, ref_line, strict=True)
        ]
        reason = pc.binary_join_element_wise(reason, pa.array(suffixes), "")
    out = pa.table(
        {
            "file": pa.array([files[f].path for f in file_of.tolist()], pa.string()),
            "line": pa.array(line, pa.int64()),
            "kind": pa.array([files[f].kind for f in file_of.tolist()], pa.string()),
            "code": table["code"],
            "reason": reason,
            "raw": table["raw"],
        },
        schema=ERRORS,
    )
    return out.sort_by([("file", "ascending"), ("line", "ascending")])


def _split_by_range(table: pa.Table):
    src = table[SRC].to_numpy()
    for value in np.unique(src).tolist():
        yield int(value), table.filter(pa.array(src == value))


class _ResolvePartFn(beam.DoFn):
    """(range_id, [tables]) -> (part name, ERRORS table); 'counts' per file."""

    def __init__(self, plan: InputPlan) -> None:
        self._plan = plan
        self._range_file = {r.range_id: r.file_id for r in plan.ranges}

    def process(self, element, lines: list[RangeLines]):
        range_id, tables = element
        table = resolve(
            pa.concat_tables(list(tables)), self._plan, line_offsets(self._plan, lines)
        )
        file_id = self._range_file[range_id]
        yield f"part-{file_id:05d}-{range_id:05d}", table
        yield beam.pvalue.TaggedOutput(
            "counts", FileCount(file_id, "errors", table.num_rows)
        )
        codes, n = np.unique(
            table["code"].to_numpy(zero_copy_only=False), return_counts=True
        )
        for code, count in zip(codes.tolist(), n.tolist(), strict=True):
            yield beam.pvalue.TaggedOutput(
                "counts", FileCount(file_id, "rejected", count, code)
            )


class ResolveErrorLines(beam.PTransform):
    """PCollection[pa.Table] (ERRORS_INTERNAL) + RangeLines ->
    dict: parts = PCollection[(part name, pa.Table ERRORS)], counts = FileCount."""

    def __init__(self, plan: InputPlan, lines) -> None:
        super().__init__()
        self._plan = plan
        self._lines = lines

    def expand(self, errors: beam.PCollection[pa.Table]) -> dict[str, beam.PCollection]:
        resolved = (
            errors
            | "SplitByRange"
            >> beam.FlatMap(_split_by_range).with_output_types(tuple[int, pa.Table])
            | "GroupByRange" >> beam.GroupByKey()
            | "ResolveLines"
            >> beam.ParDo(_ResolvePartFn(self._plan), beam.pvalue.AsList(self._lines))
            .with_output_types(tuple[str, pa.Table], counts=FileCount)
            .with_outputs("counts", main="parts")
        )
        return {"parts": resolved.parts, "counts": resolved.counts}
