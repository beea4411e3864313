"""WriteManifest: the last step of a run, so a manifest means a complete run.

It waits for every written file and every count, checks that each input file's
rows reconcile (rows read == rows kept in tables + rows in errors), writes an
empty file for any table that got no rows (so every table has a schema to
read), and writes `manifest.json` atomically. A count that does not reconcile
fails the run loudly: it would mean a row was lost or counted twice.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.elements import (
    ACTION,
    CHANGE,
    DROPPED,
    LABEL,
    SELECTED,
    STATUS,
    Count,
    FileCount,
    RangeLines,
    WrittenFile,
)
from oibeam.schemas.snapshot import MANIFEST, POOL
from oibeam.transforms.common.exchange import remove_exchange
from oibeam.transforms.common.write_files import write_parquet, write_text
from oibeam.transforms.publish.reconcile import (
    check_tallies,
    reconcile,
    tally,
)
from oibeam.transforms.read.csv_inputs import InputPlan
from oibeam.transforms.shard.locations import parent

_LOG = logging.getLogger(__name__)


def relative(path: str, root: str) -> str:
    """`path` relative to the run directory `root`; a shard of the snapshot
    root's pool as `../pool/ID/NAME.tar` (see shard/locations)."""
    root = root.rstrip("/") + "/"
    if path.startswith(root):
        return path[len(root) :]
    pool = f"{parent(root)}/{POOL}/"
    if path.startswith(pool):
        return f"../{path[len(parent(root)) + 1 :]}"
    return path


# info key: inputs read where the pipeline is built (a hierarchy file), listed
# after the CSV inputs as {"path", "kind", "bytes", "md5"}.
EXTRA_INPUTS = "extra_inputs"


def input_checksums(plan: InputPlan, ranges: list[RangeLines]) -> dict[int, dict]:
    """Per input file: its MD5 when read in one piece, else one per byte range."""
    md5 = {r.range_id: r.md5 for r in ranges}
    out: dict[int, dict] = {}
    for f in plan.files:
        pieces = sorted(
            (r for r in plan.ranges if r.file_id == f.file_id), key=lambda r: r.start
        )
        if len(pieces) == 1:
            out[f.file_id] = {"md5": md5.get(pieces[0].range_id)}
        else:
            out[f.file_id] = {
                "md5_ranges": [
                    {"start": r.start, "end": r.end, "md5": md5.get(r.range_id)}
                    for r in pieces
                ]
            }
    return out


def build_manifest(
    plan: InputPlan,
    written: list[WrittenFile],
    counts: list[FileCount],
    root: str,
    info: dict[str, Any],
    ranges: list[RangeLines] = (),
) -> dict[str, Any]:
    """The manifest document (pure): inputs, tables, totals and `info`."""
    per_file = reconcile(plan, counts)
    checksums = input_checksums(plan, list(ranges))
    tables: dict[str, dict[str, Any]] = defaultdict(lambda: {"rows": 0, "files": []})
    for w in sorted(written, key=lambda w: (w.table, w.path)):
        entry = tables[w.table]
        entry["rows"] += w.rows
        entry["files"].append(
            {
                "path": relative(w.path, root),
                "rows": w.rows,
                "bytes": w.bytes,
                "md5": w.md5,
            }
        )
    errors_by_code: dict[str, int] = defaultdict(int)
    inputs = []
    for f in plan.files:
        totals = per_file[f.file_id]
        for code, n in totals["errors_by_code"].items():
            errors_by_code[code] += n
        inputs.append(
            {
                "path": f.path,
                "kind": f.kind,
                "bytes": f.size,
                **checksums[f.file_id],
                "release": f.layout.release if f.layout else None,
                "columns": list(f.layout.columns) if f.layout else None,
                "rows_read": totals["read"],
                "rows_kept": totals["rows"],
                "rows_rejected": totals["errors"],
                "rejected_by_code": dict(sorted(totals["errors_by_code"].items())),
            }
        )
    inputs += info.get(EXTRA_INPUTS, [])
    return {
        **{k: v for k, v in info.items() if k != EXTRA_INPUTS},
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "inputs": inputs,
        "rows": {name: t["rows"] for name, t in sorted(tables.items())},
        "rejected_by_code": dict(sorted(errors_by_code.items())),
        "tables": dict(sorted(tables.items())),
    }


def with_tallies(manifest: dict, tallies: dict[str, dict[str, int]]) -> dict:
    """The manifest with the run's image counts: `counts` (selected, and
    status:<status> per status, as every manifest has had them), `statuses`,
    for a refresh `changes` and `actions`, and with --label the images each
    label selected (`images_per_label`), and with --drop-eval-duplicates
    the images the selection dropped per reason (`dropped`, and
    dropped:<reason> in `counts`)."""
    if not tallies:
        return manifest
    statuses = tallies.get(STATUS, {})
    dropped = tallies.get(DROPPED, {})
    manifest["counts"] = {
        **({SELECTED: tallies[SELECTED][""]} if SELECTED in tallies else {}),
        **{f"{STATUS}:{status}": n for status, n in statuses.items()},
        **{f"{DROPPED}:{reason}": n for reason, n in dropped.items()},
    }
    if DROPPED in tallies:
        manifest["dropped"] = dropped
    manifest["statuses"] = statuses
    if tallies.get(CHANGE):
        manifest["changes"] = tallies[CHANGE]
        manifest["actions"] = tallies.get(ACTION, {})
    if LABEL in tallies:
        manifest["images_per_label"] = tallies[LABEL]
    return manifest


def remove_strays(directories: list[str], keep: set[str]) -> None:
    """Deletes the files directly in `directories` that are not in `keep`."""
    for directory in directories:
        directory = directory.rstrip("/")
        found = set()
        for pattern in (f"{directory}/*", f"{directory}/.*"):  # local glob skips .*
            for result in FileSystems.match([pattern]):
                found.update(m.path for m in result.metadata_list)
        stray = sorted(
            p
            for p in found
            if p not in keep
            and "/" not in p[len(directory) + 1 :]  # gs:// `*` also matches '/'
            and not ("://" not in p and os.path.isdir(p))
        )
        if stray:
            _LOG.info(
                "removing %d file(s) an earlier attempt left in %s",
                len(stray),
                directory,
            )
            FileSystems.delete(stray)


@dataclass(frozen=True)
class _Finish:
    """The last step of a run, once every file is written and every count is
    in: check, tidy up, write the manifest (see WriteManifest)."""

    plan: InputPlan
    root: str
    empty_tables: dict[str, tuple[str, pa.Schema]]
    info: dict[str, Any]
    cleanup: tuple[str, ...]
    sweep: tuple[str, ...]

    def __call__(
        self,
        _unused,
        written: list[WrittenFile],
        counts: list[FileCount],
        tallies: list[Count],
        ranges: list[RangeLines],
        _checked: list[int],
    ) -> str:
        for path in self.cleanup:
            remove_exchange(path)
        written = list(written)
        present = {w.table for w in written}
        for table, (path, schema) in sorted(self.empty_tables.items()):
            if table not in present:
                size, md5 = write_parquet(path, schema.empty_table())
                written.append(WrittenFile(table, path, 0, size, md5))
        remove_strays(list(self.sweep), {w.path for w in written})
        manifest = build_manifest(
            self.plan, written, list(counts), self.root, self.info, list(ranges)
        )
        totals = tally(list(tallies))
        check_tallies(totals, manifest["rows"])
        manifest = with_tallies(manifest, totals)
        path = f"{self.root.rstrip('/')}/{MANIFEST}"
        write_text(path, json.dumps(manifest, indent=2, sort_keys=False) + "\n")
        return path


class WriteManifest(beam.PTransform):
    """{"written": PCollection[WrittenFile], "counts": PCollection[FileCount],
    "tallies": PCollection[Count], "ranges": PCollection[RangeLines], "checked":
    the output of CheckRejected (the last three optional)} -> the manifest path.

    `empty_tables` maps a table name to (path, schema) of the empty file to
    write when that table got no file at all. `info` is copied into the
    manifest (command, options, versions, start time). `cleanup` paths
    (temporary files of the run) are deleted before the manifest is written,
    and so is every file in a `sweep` directory that this run did not write
    (what an interrupted earlier attempt left behind). Nothing is touched
    before "checked" is complete: a run CheckRejected stops writes no manifest.
    """

    def __init__(
        self,
        plan: InputPlan,
        root: str,
        empty_tables: dict[str, tuple[str, pa.Schema]],
        info: dict[str, Any],
        cleanup: list[str] = (),
        sweep: list[str] = (),
    ) -> None:
        super().__init__()
        self._finish = _Finish(
            plan, root, empty_tables, info, tuple(cleanup), tuple(sweep)
        )

    def expand(self, inputs: dict[str, beam.PCollection]) -> beam.PCollection[str]:
        root = inputs["written"].pipeline
        tallies = inputs.get("tallies")
        if tallies is None:
            tallies = root | "NoTallies" >> beam.Create([]).with_output_types(Count)
        ranges = inputs.get("ranges")
        if ranges is None:
            ranges = root | "NoRanges" >> beam.Create([]).with_output_types(RangeLines)
        checked = inputs.get("checked")
        if checked is None:
            checked = root | "NoInputCheck" >> beam.Create([]).with_output_types(int)
        return (
            root
            | "Once" >> beam.Create([None])
            | "WriteManifestJson"
            >> beam.Map(
                self._finish,
                beam.pvalue.AsList(inputs["written"]),
                beam.pvalue.AsList(inputs["counts"]),
                beam.pvalue.AsList(tallies),
                beam.pvalue.AsList(ranges),
                beam.pvalue.AsList(checked),
            )
        )
