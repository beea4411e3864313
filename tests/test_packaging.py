"""The installed package holds every module: a non-editable install (the
Dataflow worker image, --setup_file) must not lose a subpackage."""

from __future__ import annotations

import json
import re
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_packaged():
    pyproject = (ROOT / "pyproject.toml").read_text()  # tomllib is 3.11+
    section = pyproject.split("[tool.setuptools.packages.find]", 1)[1]
    include = json.loads(re.search(r"include\s*=\s*(\[.*?\])", section).group(1))
    packaged = set(find_packages(str(ROOT), include=include))
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("pipelines", "transforms", "schemas")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert {
        "pipelines.sample",
        "pipelines.report_parts",
        "transforms.exports",
    } <= on_disk
    assert on_disk == packaged
