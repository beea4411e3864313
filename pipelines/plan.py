"""`oibeam plan`: what a fetch with the same flags would select, how much of
it still answers, and what it would cost, before anything is fetched.

    the fetch's own selection (pipelines/fetch.py select_for_fetch)
    -> PlanRows -> DIR/tables/selected/*.parquet (ImageID, Subset, OriginalSize,
       OriginalMD5, url)
then, in the launcher, one part at a time: counts per subset and host and a
random sample; a probe of the sample (tools/plan/probe.py), a projection
(tools/plan/projection.py) -> plan.json.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from oibeam.pipelines import stages
from oibeam.pipelines.eval_duplicates import listed_duplicates
from oibeam.pipelines.fetch import prepare, select_for_fetch
from oibeam.pipelines.launch import launched
from oibeam.pipelines.layout import RunLayout
from oibeam.pipelines.options.plan_command import PlanConfig
from oibeam.schemas.plan import PLAN_JSON, PLAN_VERSION, SELECTED, SELECTED_ROWS
from oibeam.tools.plan import probe as probing
from oibeam.tools.plan.projection import project
from oibeam.tools.plan.selected_rows import selected_rows
from oibeam.tools.plan.selection_summary import Summary, with_hosts
from oibeam.transforms.common import files
from oibeam.transforms.fetch.fetch_config import FetchConfig


def _rows(element: tuple[int, pa.Table], fetch: FetchConfig) -> tuple[str, pa.Table]:
    bucket, table = element  # one table a bucket, as the images table's parts
    return f"part-{bucket:05d}", selected_rows(table, fetch)


def build_plan(root: beam.Pipeline, config: PlanConfig, source, listed) -> None:
    """The fetch's selection, written as DIR/tables/selected/*.parquet."""
    layout = RunLayout(config.output.output)
    chosen = select_for_fetch(root, config, source, layout, None, listed)
    parts = chosen.selected | "PlanRows" >> beam.Map(
        _rows, fetch=config.fetch
    ).with_output_types(stages.PART)
    stages.write_table(
        SELECTED, parts, layout, SELECTED_ROWS, config.output.parquet_compression
    )


def _selected_parts(layout: RunLayout) -> Iterator[pa.Table]:
    """DIR/tables/selected, local or gs://, one part at a time."""
    found = FileSystems.match([f"{layout.table_dir(SELECTED)}/*.parquet"])[0]
    for path in sorted(m.path for m in found.metadata_list):
        with files.open(path) as f:
            yield pq.read_table(f, schema=SELECTED_ROWS)


def _summary_and_sample(layout: RunLayout, config: PlanConfig):
    """(the selection's Summary result, the probe's sample), read part by
    part: the launcher holds one part and the counts, not the selection."""
    summary, candidates = Summary(), []
    size, seed = config.plan.probe, config.plan.probe_seed
    for part in _selected_parts(layout):
        part = with_hosts(part)
        summary.add(part)
        if size:
            candidates.append(probing.sample(part, size, seed))
    rows = SELECTED_ROWS.empty_table()
    if candidates:
        rows = probing.sample(pa.concat_tables(candidates), size, seed)
    return summary.result(), rows


def run_plan(config: PlanConfig, beam_args: list[str]) -> str:
    """Selects as a fetch would, probes, projects; returns plan.json's path."""
    config, _, options, source, _ = prepare(config, beam_args)
    layout = RunLayout(config.output.output)
    listed, _ = listed_duplicates(config.selection)
    layout.claim(overwrite=config.output.overwrite)
    with launched(options, layout):
        with beam.Pipeline(options=options) as root:
            build_plan(root, config, source, listed)
    selection, sampled = _summary_and_sample(layout, config)
    plan = {
        "version": PLAN_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "options": config.as_json(),
        "selection": selection,
        "probe": _probe(sampled, config),
    }
    ok_share = None
    if plan["probe"] and plan["probe"]["overall"]["probed"]:
        ok_share = plan["probe"]["overall"]["outcomes"]["ok"]["share"]
    plan["projection"] = project(
        selection["images"],
        selection["images"] - selection["unknown_size"],
        selection["bytes"],
        ok_share,
        config.plan.workers,
        config.plan.throughput,
        config.plan.prices,
    )
    path = f"{layout.root}/{PLAN_JSON}"
    with files.create(path) as out:
        out.write(json.dumps(plan, indent=2, default=str).encode())
    return path


def _probe(rows: pa.Table, config: PlanConfig) -> dict[str, Any] | None:
    options = config.plan
    if not options.probe or not rows.num_rows:
        return None
    started = time.monotonic()
    hosts = probing.probe(rows, config.fetch.policy, options.probe_timeout)
    return {
        "sample": rows.num_rows,
        "seed": options.probe_seed,
        "timeout_s": options.probe_timeout,
        "elapsed_s": round(time.monotonic() - started, 2),
        "method": "GET with Range: bytes=0-0 (206: size from Content-Range)",
        "overall": probing.overall(hosts).as_json(),
        "per_host": {name: host.as_json() for name, host in sorted(hosts.items())},
    }
