"""One self-contained HTML page from sections of blocks (figures, tables, text).

Every piece of text is escaped here (display names and hosts are free text);
plots are PNG data: URIs (thumbnails small JPEG ones), the CSS is inline,
there is no script, and a Content-Security-Policy forbids loading anything
else.
"""

from __future__ import annotations

import base64
import html
import struct
from dataclasses import dataclass, field

from oibeam.tools.report import charts

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #dde1e8; --band: #f5f7fa;
  --accent: #3b6ea5; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial,
  sans-serif; }
header { background: #1f3550; color: #fff; padding: 22px 0 18px; }
header h1 { margin: 0 0 4px; font-size: 24px; font-weight: 600; }
header p { margin: 0; color: #c9d6e6; font-size: 14px; }
.wrap { max-width: 1040px; margin: 0 auto; padding: 0 24px; }
nav { border-bottom: 1px solid var(--line); background: var(--band);
  padding: 8px 0; font-size: 14px; }
nav .wrap { display: flex; flex-wrap: wrap; gap: 2px 16px; }
nav a { color: var(--accent); text-decoration: none; white-space: nowrap; }
section { padding: 10px 0 18px; border-bottom: 1px solid var(--line); }
h2 { font-size: 20px; margin: 18px 0 6px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
p { margin: 6px 0 10px; overflow-wrap: anywhere; }
.lead { color: var(--muted); }
.facts { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0 14px; }
.fact { background: var(--band); border: 1px solid var(--line); border-radius: 6px;
  padding: 8px 14px; min-width: 140px; }
.fact b { display: block; font-size: 20px; font-weight: 600; }
.fact span { color: var(--muted); font-size: 13px; }
figure { margin: 14px 0 18px; }
figure img { display: block; max-width: 100%; height: auto;
  border: 1px solid var(--line); border-radius: 4px; }
figcaption, .caption { color: var(--muted); font-size: 13.5px; margin-top: 6px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13.5px; margin: 8px 0 4px;
  min-width: 50%; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums;
  white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
code { font-size: 12.5px; background: var(--band); padding: 0 3px;
  border-radius: 3px; }
td code { white-space: nowrap; }
.note { background: #fff8e5; border-left: 3px solid #e0b000; padding: 6px 12px; }
footer { color: var(--muted); font-size: 13px; padding: 16px 0 30px; }
.pairs { display: flex; flex-wrap: wrap; gap: 12px 24px; margin: 10px 0 4px; }
.pair { display: flex; align-items: center; gap: 8px; padding: 8px;
  border: 1px solid var(--line); border-radius: 6px; }
.pair figure { margin: 0; width: 164px; text-align: center; }
.pair figure img { margin: 0 auto; }
.pair figcaption { font-size: 12.5px; margin-top: 4px; }
.noimg { width: 160px; height: 120px; background: var(--band); color: var(--muted);
  display: flex; align-items: center; justify-content: center; font-size: 13px;
  border-radius: 4px; }
.join { color: var(--muted); font-size: 13px; text-align: center; width: 110px; }
"""


@dataclass(frozen=True)
class Percent:
    """A share in [0, 1], shown as a percentage and aligned as a number."""

    value: float | None


@dataclass(frozen=True)
class Code:
    """Text shown as code (mids, paths, status names)."""

    text: str


@dataclass(frozen=True)
class Change:
    """A count before and after, shown as "before → after"."""

    before: int
    after: int


Cell = str | int | float | Percent | Code | Change | None


@dataclass(frozen=True)
class Paragraph:
    text: str
    kind: str = ""  # "", "lead" or "note"


@dataclass(frozen=True)
class Facts:
    """Headline numbers: (value, what it is)."""

    items: list[tuple[Cell, str]]


@dataclass(frozen=True)
class Figure:
    png: bytes
    alt: str
    caption: str


@dataclass(frozen=True)
class Table:
    id: str
    headers: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    title: str = ""


@dataclass(frozen=True)
class Heading:
    text: str


@dataclass(frozen=True)
class Picture:
    """A small JPEG (None: nothing to show, `missing` says why) with lines of
    caption under it."""

    jpeg: bytes | None
    width: int
    height: int
    alt: str
    lines: tuple[str, ...] = ()
    missing: str = "no image"


@dataclass(frozen=True)
class Pairs:
    """Pictures two by two, side by side, with what joins each pair."""

    id: str
    pairs: list[tuple[Picture, Picture, str]]
    caption: str = ""


Block = Paragraph | Facts | Figure | Table | Heading | Pairs


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _is_number(cell: Cell) -> bool:
    return isinstance(cell, (int, float, Percent, Change)) and not isinstance(
        cell, bool
    )


def cell_text(cell: Cell) -> str:
    """How a cell reads on the page (before escaping)."""
    if cell is None:
        return "–"
    if isinstance(cell, bool):
        return "yes" if cell else "no"
    if isinstance(cell, int):
        return f"{cell:,}"
    if isinstance(cell, float):
        return "–" if cell != cell else f"{cell:,.3g}"
    if isinstance(cell, Percent):
        return "–" if cell.value is None else f"{100 * cell.value:.1f}%"
    if isinstance(cell, Code):
        return cell.text
    if isinstance(cell, Change):
        return f"{cell.before:,} → {cell.after:,}"
    return str(cell)


def _cell(cell: Cell, tag: str = "td") -> str:
    text = _e(cell_text(cell))
    if isinstance(cell, Code):
        text = f"<code>{text}</code>"
    klass = ' class="num"' if _is_number(cell) else ""
    return f"<{tag}{klass}>{text}</{tag}>"


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    return struct.unpack(">II", png[16:24])


def _figure(block: Figure) -> str:
    width, height = png_size(block.png)
    data = base64.b64encode(block.png).decode("ascii")
    name = charts.key_of(block.png)
    named = f' data-chart="{name}"' if name else ""
    return (
        f'<figure><img{named} src="data:image/png;base64,{data}" alt="{_e(block.alt)}" '
        f'width="{width}" height="{height}">'
        f"<figcaption>{_e(block.caption)}</figcaption></figure>"
    )


def _table(block: Table) -> str:
    numeric = [
        any(_is_number(row[i]) for row in block.rows if i < len(row))
        for i in range(len(block.headers))
    ]
    head = "".join(
        ('<th class="num">' if numeric[i] else "<th>") + f"{_e(h)}</th>"
        for i, h in enumerate(block.headers)
    )
    thead = f"<thead><tr>{head}</tr></thead>" if block.headers else ""
    body = "".join(
        "<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in block.rows
    )
    title = f"<h3>{_e(block.title)}</h3>" if block.title else ""
    caption = f'<p class="caption">{_e(block.caption)}</p>' if block.caption else ""
    return (
        f'{title}<div class="scroll"><table id="{_e(block.id)}">{thead}'
        f"<tbody>{body}</tbody></table></div>{caption}"
    )


def _picture(picture: Picture) -> str:
    if picture.jpeg is None:
        shown = f'<div class="noimg">{_e(picture.missing)}</div>'
    else:
        data = base64.b64encode(picture.jpeg).decode("ascii")
        shown = (
            f'<img src="data:image/jpeg;base64,{data}" alt="{_e(picture.alt)}" '
            f'width="{picture.width}" height="{picture.height}">'
        )
    lines = "<br>".join(_e(line) for line in picture.lines)
    return f"<figure>{shown}<figcaption>{lines}</figcaption></figure>"


def _pairs(block: Pairs) -> str:
    pairs = "".join(
        f'<div class="pair">{_picture(left)}<div class="join">{_e(join)}</div>'
        f"{_picture(right)}</div>"
        for left, right, join in block.pairs
    )
    caption = f'<p class="caption">{_e(block.caption)}</p>' if block.caption else ""
    return f'<div class="pairs" id="{_e(block.id)}">{pairs}</div>{caption}'


def _block(block: Block) -> str:
    if isinstance(block, Paragraph):
        klass = f' class="{block.kind}"' if block.kind else ""
        return f"<p{klass}>{_e(block.text)}</p>"
    if isinstance(block, Heading):
        return f"<h3>{_e(block.text)}</h3>"
    if isinstance(block, Facts):
        items = "".join(
            f'<div class="fact"><b>{_e(cell_text(v))}</b><span>{_e(what)}</span></div>'
            for v, what in block.items
        )
        return f'<div class="facts">{items}</div>'
    if isinstance(block, Figure):
        return _figure(block)
    if isinstance(block, Pairs):
        return _pairs(block)
    return _table(block)


def render_page(
    title: str, subtitle: str, sections: list[Section], generated: str
) -> str:
    """The whole page. `generated` (the time) is its only varying text."""
    nav = "".join(f'<a href="#{_e(s.id)}">{_e(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{_e(s.id)}"><h2>{_e(s.title)}</h2>'
        + "".join(_block(b) for b in s.blocks)
        + "</section>"
        for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f'<header><div class="wrap"><h1>{_e(title)}</h1><p>{_e(subtitle)}</p>'
        f'</div></header><nav><div class="wrap">{nav}</div></nav>'
        f'<main class="wrap">{body}</main>'
        '<footer><div class="wrap">Written by <code>oibeam report</code> at '
        f'<time id="generated">{_e(generated)}</time>. Self-contained: no script, '
        "nothing loaded from elsewhere.</div></footer></body></html>\n"
    )
