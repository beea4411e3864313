"""Charts are named by their inputs and drawing code; a report reuses the
charts of the report it refreshes instead of drawing them again."""

from __future__ import annotations

import base64

import numpy as np

from oibeam.tools.report import charts
from oibeam.tools.report.page import Figure, Section, render_page


def _page(png: bytes) -> str:
    section = Section("s", "S", [Figure(png, "alt", "caption")])
    return render_page("t", "sub", [section], "now")


def test_a_chart_in_an_earlier_page_is_taken_from_it_not_drawn():
    machine, human = np.array([5, 3, 1]), np.array([2, 2, 0])
    drawn = charts.label_frequency(machine, human)
    assert drawn.startswith(b"\x89PNG")
    name = charts.chart_name("label_frequency", machine, human)
    assert charts.key_of(drawn) == name
    page = _page(drawn)
    assert f'data-chart="{name}"' in page
    # An earlier page whose chart of these inputs is a stand-in: the stand-in
    # comes back, so nothing was drawn.
    earlier = page.replace(
        base64.b64encode(drawn).decode(), base64.b64encode(b"stand-in").decode()
    )
    charts.reuse(earlier)
    try:
        assert charts.label_frequency(machine.copy(), human.copy()) == b"stand-in"
        other = charts.label_frequency(np.array([5, 3, 2]), human)
        assert other.startswith(b"\x89PNG")  # other inputs: drawn
    finally:
        charts.reuse(None)
    assert charts.label_frequency(machine, human) == drawn  # deterministic


def test_names_tell_inputs_apart():
    name = charts.chart_name
    assert name("f", np.array([1, 2])) != name("f", np.array([1, 2], dtype=np.int32))
    assert name("f", np.array([1, 2])) != name("g", np.array([1, 2]))
    assert name("f", [("a", 1, {"ok": 2})]) != name("f", [("a", 1, {"ok": 3})])
    assert name("f", {"x": 1, "y": 2}) == name("f", {"y": 2, "x": 1})
