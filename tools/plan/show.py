"""plan.json as the table `oibeam plan` prints."""

from __future__ import annotations

import json

from oibeam.transforms.common import files

_TOP_HOSTS = 10


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


def _share(outcomes: dict, name: str) -> str:
    got = outcomes[name]
    if got["share"] is None:
        return "-"
    low, high = got["ci95"]
    return f"{got['share']:.0%} ({low:.0%}-{high:.0%})"


def _rows(title: str, groups: dict) -> list[str]:
    lines = [f"  {title:<28} {'images':>12} {'bytes':>12}"]
    for name, g in list(groups.items())[:_TOP_HOSTS]:
        lines.append(f"  {name[:28]:<28} {g['images']:>12,} {_size(g['bytes']):>12}")
    if len(groups) > _TOP_HOSTS:
        lines.append(f"  ... {len(groups) - _TOP_HOSTS:,} more (plan.json)")
    return lines


def _probe_lines(probe: dict | None) -> list[str]:
    if probe is None:
        return ["probe: not run (--probe 0, or nothing selected)"]
    lines = [
        f"probe: {probe['sample']:,} URLs in {probe['elapsed_s']:.1f} s "
        f"(ranged GETs; share and 95% interval)",
        f"  {'host':<28} {'probed':>6} {'ok':>15} {'gone':>15} {'changed':>15} "
        f"{'failed':>15} {'median ms':>9}",
    ]
    hosts = {"all hosts": probe["overall"], **probe["per_host"]}
    for name, h in list(hosts.items())[: _TOP_HOSTS + 1]:
        o = h["outcomes"]
        median = h["latency_ms"]["median"]
        lines.append(
            f"  {name[:28]:<28} {h['probed']:>6} {_share(o, 'ok'):>15} "
            f"{_share(o, 'gone'):>15} {_share(o, 'changed'):>15} "
            f"{_share(o, 'failed'):>15} {median if median is not None else '-':>9}"
        )
        if h["unfinished"] or h["not_probed"]:
            lines.append(
                f"  {'':<28} unfinished {h['unfinished']:,}, not probed "
                f"(not http) {h['not_probed']:,}"
            )
    return lines


def plan_summary(path: str) -> str:
    """The plan at `path`, for a terminal."""
    with files.open(path) as f:
        plan = json.load(f)
    selection, projection = plan["selection"], plan["projection"]
    cost = projection["cost_usd"]
    return "\n".join(
        [
            f"selected: {selection['images']:,} images, "
            f"{_size(selection['bytes'])} (OriginalSize; "
            f"{selection['unknown_size']:,} without one)",
            *_rows("subset", selection["per_subset"]),
            *_rows("host", selection["per_host"]),
            *_probe_lines(plan["probe"]),
            f"projection: {projection['workers']} workers at "
            f"{projection['images_per_second_per_worker']:,.1f} images/s each: "
            f"{projection['hours']:,.2f} h; writes "
            f"{_size(projection['bytes_written'])} "
            f"(ok share {projection['ok_share_assumed']:.0%})",
            f"cost: ${cost['total']:,.2f} (workers ${cost['workers']:,.2f}, "
            f"storage ${cost['storage']:,.2f} for "
            f"{projection['prices']['months']:g} month(s)); "
            f"prices: {projection['prices']['as_of']}",
            f"plan: {path}",
        ]
    )
