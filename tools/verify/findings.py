"""Report: what verify found in a run (problems, notes, what it checked)."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field


@dataclass
class Report:
    directory: str
    kind: str | None = None  # tables, fetch or snapshot; None: no manifest to say
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: collections.Counter = field(default_factory=collections.Counter)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        what = ", ".join(f"{n:,} {k}" for k, n in sorted(self.checked.items()))
        what = f"{self.kind} run: {what}" if self.kind else what
        what = f" ({what})" if what else ""
        notes = [f"  note: {n}" for n in self.notes]
        if self.ok:
            return "\n".join([f"{self.directory}: OK{what}", *notes])
        shown = self.problems[:50]
        more = len(self.problems) - len(shown)
        return "\n".join(
            [f"{self.directory}: {len(self.problems)} problem(s){what}"]
            + [f"  - {p}" for p in shown]
            + ([f"  ... and {more} more"] if more > 0 else [])
            + notes
        )
