"""The installed package holds every module: a non-editable install (the
Dataflow worker image, --setup_file) must not lose a subpackage."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
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


def _pins(lock: str) -> dict[str, str]:
    """name -> version of the lock's lines whose markers hold here."""
    pins = {}
    for line in lock.splitlines():
        if not line or line[0] in "# ":
            continue
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate():
            pins[canonicalize_name(requirement.name)] = str(
                requirement.specifier
            ).removeprefix("==")
    return pins


def test_everything_installed_comes_from_the_lock():
    """Every distribution oibeam[test] needs, transitively, is pinned by
    constraints.txt and installed at that version (./run_local.sh installs
    from it, as the worker image does)."""
    pins = _pins((ROOT / "constraints.txt").read_text())
    seen, todo = set(), [("oibeam", frozenset({"test"}))]
    while todo:
        name, extras = todo.pop()
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker and not any(
                marker.evaluate({"extra": extra}) for extra in extras or {""}
            ):
                continue
            key = canonicalize_name(requirement.name)
            if (key, frozenset(requirement.extras)) in seen:
                continue
            seen.add((key, frozenset(requirement.extras)))
            todo.append((key, frozenset(requirement.extras)))
    needed = {key for key, _ in seen}
    assert {"apache-beam", "pyarrow", "pytest"} <= needed
    assert needed - set(pins) == set()
    wrong = {
        key: (metadata.version(key), pins[key])
        for key in needed
        if metadata.version(key) != pins[key]
    }
    assert wrong == {}
