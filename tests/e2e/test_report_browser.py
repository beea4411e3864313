"""The report of a real snapshot, opened in headless Chromium: every plot decodes,
every table has rows, nothing is fetched from anywhere, the page renders.

Needs Debian's `chromium` (`.ci/run` installs it); skipped without it, unless
CI is set, where a missing browser fails the test.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oibeam.tools.report.write_report import write_report

from support.report_release import build_snapshot

WIDTH = 1200
# Runs before anything loads (in <head>), reports once the page has loaded.
CHECK = """<script>
window.__errors = [];
window.addEventListener("error", (e) => window.__errors.push(
  String(e.message || (e.target && (e.target.src || e.target.href)))), true);
window.addEventListener("load", () => {
  const images = [...document.images];
  const tables = [...document.querySelectorAll("table")];
  const out = document.createElement("pre");
  out.id = "oibeam-check";
  out.textContent = JSON.stringify({
    images: images.length,
    undecoded: images.filter((i) => !(i.complete && i.naturalWidth > 0))
      .map((i) => i.alt),
    drawn: images.filter((i) => i.getBoundingClientRect().width > 200).length,
    tables: tables.length,
    empty: tables.filter((t) => !t.tBodies[0] || !t.tBodies[0].rows.length)
      .map((t) => t.id),
    sections: document.querySelectorAll("section").length,
    resources: performance.getEntriesByType("resource").map((r) => r.name),
    errors: window.__errors,
    width: document.documentElement.scrollWidth,
  });
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def run_chromium(browser: str, profile: Path, *args: str) -> str:
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},1600",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def report(fault_server, tmp_path_factory) -> Path:
    root = build_snapshot(fault_server, tmp_path_factory.mktemp("browser"))
    return Path(write_report(str(root)))


def test_the_page_renders_its_plots_and_tables(report, tmp_path):
    browser = chromium()
    text = report.read_text(encoding="utf-8")
    # The page's own policy forbids scripts: the checker's copy allows only its
    # inline one (images must still load under img-src data:).
    checked = tmp_path / "checked.html"
    checked.write_text(
        text.replace(
            "default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';"
        ).replace("<head>", "<head>" + CHECK, 1),
        encoding="utf-8",
    )
    dom = run_chromium(
        browser,
        tmp_path / "profile",
        "--virtual-time-budget=10000",
        "--dump-dom",
        checked.as_uri(),
    )
    found = re.search(r'<pre id="oibeam-check">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    check = json.loads(html.unescape(found.group(1)))
    # 8 plots, and the thumbnails of the leakage examples (duplicate detection
    # puts two of the release's images in one group)
    thumbnails = text.count('<img src="data:image/jpeg;base64,')
    assert check["images"] == text.count("<img ") == 8 + thumbnails
    assert check["undecoded"] == []
    assert check["drawn"] == check["images"] - thumbnails  # plots: > 200 px wide
    assert check["tables"] == text.count("<table ") and check["empty"] == []
    assert check["sections"] == text.count("<section ")
    assert [r for r in check["resources"] if not r.startswith("data:")] == []
    assert check["errors"] == []
    assert check["width"] <= WIDTH  # no sideways scrolling at this width


def test_a_screenshot_shows_the_page(report, tmp_path):
    browser = chromium()
    shot = tmp_path / "report.png"
    run_chromium(browser, tmp_path / "profile", f"--screenshot={shot}", report.as_uri())
    image = Image.open(shot).convert("RGB")
    assert image.size == (WIDTH, 1600)
    pixels = np.asarray(image, dtype=np.int64).reshape(-1, 3)
    colours = np.unique(pixels[:, 0] << 16 | pixels[:, 1] << 8 | pixels[:, 2])
    # The dark header band, the white page, and plot colours: a rendered page.
    assert len(colours) > 500
    header = np.asarray(image.crop((0, 0, WIDTH, 40)))
    assert header.mean() < 80
