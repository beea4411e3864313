"""Run a command whose output directory is on a tiny filesystem, to see what a
full disk does: `run_on_tiny_fs(argv, mountpoint, size)` starts `argv` under
`unshare --mount` with a tmpfs of `size` mounted at `mountpoint`, seen only by
that process tree and gone with it (nothing to unmount, nothing left behind).

Needs root (or CAP_SYS_ADMIN), `unshare` and `mount`; `unavailable()` says why
not, for pytest.skip.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

_SETUP = 'set -eu; mount -t tmpfs -o "size=$TINY_SIZE" tmpfs "$TINY_AT"; exec "$@"'


def run_on_tiny_fs(
    argv: Sequence[str], mountpoint: Path, size: str, timeout: float = 300, **kwargs
) -> subprocess.CompletedProcess:
    """`argv` with a `size` tmpfs at `mountpoint` (created if missing)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TINY_SIZE": size, "TINY_AT": str(mountpoint)}
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", _SETUP, "sh", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


@functools.cache
def unavailable() -> str | None:
    """Why a private tmpfs cannot be mounted here, or None if it can."""
    if os.geteuid() != 0:
        return "mounting a filesystem needs root"
    for tool in ("unshare", "mount"):
        if shutil.which(tool) is None:
            return f"no `{tool}` command"
    trial = run_on_tiny_fs(["true"], Path("/tmp/oibeam-tiny-fs-probe"), "64k", 30)
    if trial.returncode != 0:
        return f"cannot mount a tmpfs: {trial.stderr.strip()[-300:]}"
    return None
