"""The report's plots, each drawn once: a chart is named by a digest of its
inputs and of the drawing code (drawing.py, matplotlib's version). `reuse`
offers the charts of an earlier report (a refresh's parent's): a chart whose
name is among them is taken from there, not drawn, and matplotlib is not even
loaded when every chart is (an unchanged refresh's report). The page records
each chart's name beside it (key_of). Also the plain helpers the sections use
for their text: colours, human_bytes.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from oibeam.schemas.fetch import OK, STATUSES

MACHINE = "#3b6ea5"
HUMAN = "#d1495b"
ANY = "#4f9d69"
GREY = "#8c8c8c"
_STATUS_PALETTE = [
    "#8c8c8c",  # gone
    "#f28e2b",  # changed
    "#e15759",  # http_error
    "#b07aa1",  # timeout
    "#9c755f",  # connection_error
    "#ff9da7",  # too_large
    "#bab0ac",  # not_an_image
    "#76b7b2",  # decode_error
    "#59597a",  # refused
    "#000000",  # error
]
STATUS_COLORS = {OK: "#4f9d69"} | dict(
    zip([s for s in STATUSES if s != OK], _STATUS_PALETTE, strict=True)
)


def status_color(status: str) -> str:
    return STATUS_COLORS.get(status, "#d4a6c8")


def human_bytes(n: float, _position=None) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.3g} {unit}"
        n /= 1000
    return f"{n:,.3g} TB"


_EARLIER: dict[str, bytes | None] = {}  # offered by reuse(), by name (None: empty)
_NAMES: dict[bytes, str] = {}  # the name of each chart handed out
_EMPTY: set[str] = set()  # names of charts with nothing to draw
_EMPTY_NOTE = re.compile(r"<!-- charts with nothing to draw: ([0-9a-f ]*) -->")
_EMBEDDED = re.compile(
    r'data-chart="([0-9a-f]{64})"[^>]*?src="data:image/png;base64,([^"]+)"'
)


def _code_version() -> bytes:
    try:
        matplotlib = metadata.version("matplotlib")
    except metadata.PackageNotFoundError:
        matplotlib = "?"
    code = Path(__file__).with_name("drawing.py").read_bytes()
    return hashlib.sha256(code + matplotlib.encode()).digest()


def _feed(digest, value) -> None:
    """Adds `value` (numbers, text, arrays, and containers of them) to digest."""
    if isinstance(value, np.ndarray):
        digest.update(f"a{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):  # Counter too
        digest.update(f"d{len(value)}".encode())
        for k in sorted(value, key=repr):
            _feed(digest, k)
            _feed(digest, value[k])
    elif isinstance(value, (list, tuple)):
        digest.update(f"l{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"v{type(value).__name__}:{value!r};".encode())


def chart_name(function: str, *args) -> str:
    digest = hashlib.sha256(_code_version() + function.encode())
    _feed(digest, list(args))
    return digest.hexdigest()


def _chart(function: str, *args) -> bytes | None:
    name = chart_name(function, *args)
    if name in _EARLIER:
        png = _EARLIER[name]
    else:
        from oibeam.tools.report import drawing  # matplotlib: only to draw

        png = getattr(drawing, function)(*args)
    if png is None:
        _EMPTY.add(name)
    else:
        _NAMES[png] = name
    return png


def reuse(html: str | None) -> None:
    """Offers the charts embedded in an earlier report page (None: none)."""
    _EARLIER.clear()
    _NAMES.clear()
    _EMPTY.clear()
    for name, data in _EMBEDDED.findall(html or ""):
        _EARLIER[name] = base64.b64decode(data)
    for names in _EMPTY_NOTE.findall(html or ""):
        _EARLIER.update(dict.fromkeys(names.split()))


def empty_note() -> str:
    """An HTML comment naming the charts that had nothing to draw, for the
    page's end: the next report need not try them again."""
    return f"<!-- charts with nothing to draw: {' '.join(sorted(_EMPTY))} -->\n"


def key_of(png: bytes) -> str | None:
    """The name of a chart handed out since the last reuse()."""
    return _NAMES.get(png)


def label_frequency(machine: np.ndarray, human: np.ndarray) -> bytes | None:
    return _chart("label_frequency", machine, human)


def precision_scatter(
    images: np.ndarray,
    verified: np.ndarray,
    confirmed: np.ndarray,
    trainable: np.ndarray,
) -> bytes | None:
    return _chart("precision_scatter", images, verified, confirmed, trainable)


def confidence_histogram(counts: np.ndarray) -> bytes | None:
    return _chart("confidence_histogram", counts)


def horizontal_bars(
    names: Sequence[str],
    values: Sequence[int],
    colors: Sequence[str],
    xlabel: str,
    total: int | None = None,
) -> bytes | None:
    return _chart("horizontal_bars", names, values, colors, xlabel, total)


def host_failures(hosts: Sequence[tuple[str, int, dict[str, int]]]) -> bytes | None:
    return _chart("host_failures", hosts)


def bytes_histogram(counts: np.ndarray, log_edges: np.ndarray) -> bytes | None:
    return _chart("bytes_histogram", counts, log_edges)


def size_heatmap(sizes: Counter) -> bytes | None:
    return _chart("size_heatmap", sizes)


def boxes_per_label(boxes: np.ndarray, images: np.ndarray) -> bytes | None:
    return _chart("boxes_per_label", boxes, images)
