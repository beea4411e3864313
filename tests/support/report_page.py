"""report.html read back: sections, their texts, tables, image sources."""

from __future__ import annotations

import collections
from html.parser import HTMLParser


def number(text: str) -> int:
    """A count cell as printed (1,234) -> 1234."""
    return int(text.replace(",", ""))


class Page(HTMLParser):
    """Section ids and texts, tables (id -> rows of cell texts), img srcs,
    hrefs, tag counts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.tags: collections.Counter = collections.Counter()
        self.texts: dict[str, str] = {}  # section id -> its text
        self._section: str | None = None
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in_head = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags[tag] += 1
        if tag == "section":
            self.sections.append(attrs["id"])
            self._section = attrs["id"]
            self.texts[self._section] = ""
        elif tag == "table":
            self._table = attrs["id"]
            self.tables[self._table] = []
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr" and self._table and not self._in_head:
            self.tables[self._table].append([])
        elif tag == "td" and self._table:
            self._cell = []
        elif tag == "img":
            self.srcs.append(attrs.get("src", ""))
        if "href" in attrs:
            self.hrefs.append(attrs["href"])
        if "src" in attrs and tag != "img":
            self.srcs.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        elif tag == "table":
            self._table = None
        elif tag == "thead":
            self._in_head = False
        elif tag == "td" and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._section is not None:
            self.texts[self._section] += data

    def keyed(self, table: str, value: int = 1) -> dict[str, int]:
        """First cell -> a count cell, as an int."""
        return {row[0]: number(row[value]) for row in self.tables[table]}
