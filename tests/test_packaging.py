"""The package installs under one namespace, oibeam.*, with every module: a
non-editable install (the worker image, --setup_file) must not lose a
subpackage; and what is installed comes from the lock."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("pipelines", "schemas", "tools", "transforms")


def _pyproject_list(name: str) -> list[str]:
    text = (ROOT / "pyproject.toml").read_text()  # tomllib is 3.11+
    block = re.search(rf"^{name} = \[(.*?)\]", text, re.M | re.S).group(1)
    return re.findall(r'"([^"]+)"', block)


def test_every_package_directory_is_packaged_under_oibeam():
    text = (ROOT / "pyproject.toml").read_text()
    mapped = dict(re.findall(r'^"(oibeam\.\w+)" = "(\w+)"$', text, re.M))
    assert mapped == {f"oibeam.{top}": top for top in FOLDERS}
    on_disk = {
        "oibeam." + ".".join(p.parent.relative_to(ROOT).parts)
        for top in FOLDERS
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert {"oibeam.transforms.fetch", "oibeam.tools.report"} <= on_disk
    assert set(_pyproject_list("packages")) == on_disk


def test_the_wheel_holds_every_module_under_oibeam(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        + ["--quiet", "--wheel-dir", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("oibeam-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {
        f"oibeam/{p.relative_to(ROOT).as_posix()}"
        for top in FOLDERS
        for p in (ROOT / top).rglob("*.py")
    }
    assert {"oibeam/transforms/fetch/fetcher.py", "oibeam/tools/sample/release.py"} <= (
        modules
    )
    assert modules - names == set()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"oibeam", wheel.name.split("-")[0] + "-0.1.0.dist-info"}


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
