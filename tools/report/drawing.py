"""The report's plots: matplotlib (Agg) figures rendered to PNG bytes (called
through charts, which draws each only when no earlier report has it).

Each function takes plain numbers and returns PNG bytes, or None when there is
nothing to draw. Output is deterministic: matplotlib's default style whatever
the local matplotlibrc says, bundled fonts, and no Software/date metadata.
One module for every plot on purpose: they share that setup and one look.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter

from oibeam.schemas.fetch import OK, STATUSES
from oibeam.tools.report.charts import (
    ANY,
    GREY,
    HUMAN,
    MACHINE,
    human_bytes,
    status_color,
)

DPI = 110
WIDTH = 8.0


def _figure(height: float = 3.6) -> Figure:
    figure = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()


def _style():
    return matplotlib.rc_context(
        {
            **matplotlib.rcParamsDefault,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "font.size": 9.5,
            "legend.frameon": False,
        }
    )


def _thousands(value: float, _position=None) -> str:
    return f"{value:,.0f}"


def _count_axis(ax, low: float, high: float) -> None:
    """y: log scale when the counts span more than a decade, else linear."""
    if high > 10 * max(low, 1):
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.8)
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(0, high * 1.1)
    ax.yaxis.set_major_formatter(FuncFormatter(_thousands))


def label_frequency(machine: np.ndarray, human: np.ndarray) -> bytes | None:
    """Labels ranked by images (x), images of each (y, log): one line per kind."""
    series = [
        (np.sort(values[values > 0])[::-1], name, color)
        for values, name, color in (
            (machine, "machine labels", MACHINE),
            (human, "human-verified labels", HUMAN),
        )
    ]
    if not any(len(s) for s, _, _ in series):
        return None
    with _style():
        figure = _figure()
        ax = figure.add_subplot()
        for values, name, color in series:
            if len(values):
                # Label k spans [k, k + 1): the last label gets a step too.
                edges = np.arange(1, len(values) + 2)
                ax.stairs(values, edges, fill=True, color=color, alpha=0.12)
                ax.stairs(
                    values,
                    edges,
                    color=color,
                    lw=1.6,
                    label=f"{name} ({len(values):,} labels)",
                )
        values = np.concatenate([s for s, _, _ in series])
        _count_axis(ax, float(values.min()), float(values.max()))
        ax.set_xlim(left=1)
        ax.set_xlabel("labels, ranked by images (1 = most images)")
        ax.set_ylabel(
            "images with the label" + (" (log)" if ax.get_yscale() == "log" else "")
        )
        ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
        ax.legend(loc="upper right")
        return _png(figure)


def precision_scatter(
    images: np.ndarray,
    verified: np.ndarray,
    confirmed: np.ndarray,
    trainable: np.ndarray,
) -> bytes | None:
    """Machine precision per label (y) against its machine images (x, log), with
    the pooled precision of each decade of x as a line."""
    checked = verified > 0
    if not checked.any():
        return None
    x = np.maximum(images[checked], 1)
    y = confirmed[checked] / verified[checked]
    picked = trainable[checked]
    with _style():
        figure = _figure(4.0)
        ax = figure.add_subplot()
        for mask, name, color in (
            (~picked, "other labels", GREY),
            (picked, "trainable under the run's rule", MACHINE),
        ):
            if mask.any():
                ax.scatter(
                    x[mask],
                    y[mask],
                    s=10,
                    alpha=0.55,
                    color=color,
                    edgecolors="none",
                    label=f"{name} ({int(mask.sum()):,})",
                )
        decade = np.floor(np.log10(x)).astype(int)
        levels = np.unique(decade)
        pooled = [
            confirmed[checked][decade == d].sum() / verified[checked][decade == d].sum()
            for d in levels
        ]
        ax.plot(
            10.0 ** (levels + 0.5),
            pooled,
            color=HUMAN,
            marker="o",
            lw=1.8,
            label="pooled precision per decade of images",
        )
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.03)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
        ax.set_xlabel("images with a positive machine label (log)")
        ax.set_ylabel("machine precision on validation")
        ax.legend(loc="lower right", frameon=True, framealpha=0.9, edgecolor="none")
        return _png(figure)


def confidence_histogram(counts: np.ndarray) -> bytes | None:
    """Machine labels per confidence bin (equal bins over [0, 1])."""
    if not counts.sum():
        return None
    edges = np.linspace(0.0, 1.0, len(counts) + 1)
    with _style():
        figure = _figure(3.2)
        ax = figure.add_subplot()
        ax.bar(
            edges[:-1],
            counts,
            width=np.diff(edges),
            align="edge",
            color=MACHINE,
            edgecolor="white",
        )
        ax.set_xlim(0, 1)
        ax.set_xticks(edges)
        ax.set_xlabel("machine confidence")
        ax.set_ylabel("(image, label) pairs")
        ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
        return _png(figure)


def horizontal_bars(
    names: Sequence[str],
    values: Sequence[int],
    colors: Sequence[str],
    xlabel: str,
    total: int | None = None,
) -> bytes | None:
    """One bar per name (top to bottom), each annotated with its value."""
    if not len(names):
        return None
    with _style():
        figure = _figure(0.9 + 0.32 * len(names))
        ax = figure.add_subplot()
        y = np.arange(len(names))
        ax.barh(y, values, color=colors)
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        top = max(values) if len(values) else 0
        for i, value in enumerate(values):
            text = f" {value:,}"
            if total:
                text += f" ({100 * value / total:.1f}%)"
            ax.text(value, i, text, va="center", fontsize=8.5)
        ax.set_xlim(0, max(top, 1) * 1.25)
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
        return _png(figure)


def host_failures(hosts: Sequence[tuple[str, int, dict[str, int]]]) -> bytes | None:
    """Per host (top to bottom): failed images as a share of its images,
    stacked by status."""
    failing = sorted({s for _, _, by in hosts for s, n in by.items() if s != OK and n})
    if not hosts or not failing:
        return None
    order = [s for s in STATUSES if s in failing] + [
        s for s in failing if s not in STATUSES
    ]
    with _style():
        figure = _figure(1.1 + 0.3 * len(hosts))
        ax = figure.add_subplot()
        y = np.arange(len(hosts))
        left = np.zeros(len(hosts))
        for status in order:
            share = np.array([by.get(status, 0) / n for _, n, by in hosts])
            ax.barh(y, share, left=left, color=status_color(status), label=status)
            left += share
        for i, rate in enumerate(left):
            ax.text(rate, i, f" {100 * rate:.1f}%", va="center", fontsize=8.5)
        ax.set_yticks(y, [f"{h} ({n:,})" for h, n, _ in hosts])
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_xlim(0, min(1.0, max(left.max(), 0.01) * 1.3))
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("images that failed, share of the host's images")
        ax.legend(loc="lower right", fontsize=8)
        return _png(figure)


def bytes_histogram(counts: np.ndarray, log_edges: np.ndarray) -> bytes | None:
    """Images per size bin, on a log axis of bytes."""
    used = np.flatnonzero(counts)
    if not len(used):
        return None
    lo, hi = max(used[0] - 2, 0), min(used[-1] + 3, len(counts))
    edges = 10.0 ** log_edges[lo : hi + 1]
    with _style():
        figure = _figure(3.2)
        ax = figure.add_subplot()
        ax.stairs(counts[lo:hi], edges, fill=True, color=MACHINE, alpha=0.85)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(human_bytes))
        ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
        ax.set_xlabel("file size (log)")
        ax.set_ylabel("images")
        return _png(figure)


def size_heatmap(sizes: Counter) -> bytes | None:
    """Images per (width, height) cell, colour on a log scale."""
    if not sizes:
        return None
    wh = np.array(list(sizes.keys()), dtype=np.float64)
    weights = np.array(list(sizes.values()), dtype=np.float64)
    # The axes reach the 99.5th percentile of the longer side; larger images
    # are drawn in the last row/column.
    side = wh.max(axis=1)
    order = np.argsort(side, kind="stable")
    cumulative = np.cumsum(weights[order])
    reach = side[order][np.searchsorted(cumulative, 0.995 * cumulative[-1])]
    edges = np.linspace(0, max(float(reach), 1.0) * 1.05, 41)
    grid, _, _ = np.histogram2d(
        np.minimum(wh[:, 0], edges[-1]),
        np.minimum(wh[:, 1], edges[-1]),
        bins=[edges, edges],
        weights=weights,
    )
    grid = np.ma.masked_equal(grid.T, 0)
    with _style():
        figure = _figure(4.6)
        ax = figure.add_subplot()
        mesh = ax.pcolormesh(
            edges,
            edges,
            grid,
            cmap="viridis",
            norm=LogNorm(vmin=1, vmax=max(float(grid.max()), 2.0)),
        )
        bar = figure.colorbar(mesh, ax=ax, label="images (log)")
        bar.ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
        ax.plot([0, edges[-1]], [0, edges[-1]], color=GREY, lw=0.8, ls="--")
        ax.set_aspect("equal")
        ax.grid(False)
        ax.set_xlabel("width (pixels, as stored)")
        ax.set_ylabel("height (pixels)")
        ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
        ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
        return _png(figure)


def boxes_per_label(boxes: np.ndarray, images: np.ndarray) -> bytes | None:
    """Labels ranked by boxes (x), boxes and images with boxes (y, log)."""
    order = np.argsort(-boxes, kind="stable")
    order = order[boxes[order] > 0]
    if not len(order):
        return None
    edges = np.arange(1, len(order) + 2)
    with _style():
        figure = _figure()
        ax = figure.add_subplot()
        ax.stairs(boxes[order], edges, color=MACHINE, lw=1.6, label="boxes")
        ax.stairs(
            images[order],
            edges,
            color=ANY,
            lw=1.2,
            label="images with a box of the label",
        )
        _count_axis(ax, 1.0, float(boxes[order].max()))
        ax.set_xlim(left=1)
        ax.set_xlabel("labels with boxes, ranked by boxes")
        ax.set_ylabel("count" + (" (log)" if ax.get_yscale() == "log" else ""))
        ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
        ax.legend(loc="upper right")
        return _png(figure)
