"""The versions a run records in its manifest (no Beam import: read from the
installed distributions' metadata)."""

from __future__ import annotations

import platform
from importlib import metadata


def versions() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {
        "oibeam": version("oibeam"),
        "apache-beam": version("apache-beam"),
        "pyarrow": version("pyarrow"),
        "python": platform.python_version(),
    }
