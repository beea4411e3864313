"""Run a command in a network namespace of its own that has no way out.

`run_isolated(argv, addresses=..., hosts=...)` starts `argv` under
`unshare --net --mount`: a fresh network namespace whose only interface is
`lo` (brought up, with the extra `addresses` added to it, so servers can bind
to e.g. 100.100.100.200 or 2002:7f00:1::1) and no route anywhere else, and a
private mount namespace in which `hosts` (name -> address) is bind-mounted
over /etc/hosts, so those names resolve through the ordinary getaddrinfo
without DNS. Whatever the command connects to, nothing can leave the machine.

Nothing is left behind to clean up: unshare creates no named namespace (unlike
`ip netns add`); the namespaces die with the last process in them, and unshare
execs the command rather than forking, so killing that one process (as
subprocess.run does on timeout) removes them.

Needs root (or CAP_SYS_ADMIN and CAP_NET_ADMIN), `unshare` and `ip`;
`unavailable()` says why a namespace cannot be made here, for pytest.skip.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence

# Runs inside the new namespaces, then execs the command ("$@").
_SETUP = """
set -eu
ip link set lo up
for address in $NETNS_ADDRESSES; do ip addr add "$address" dev lo; done
if [ -n "$NETNS_HOSTS" ]; then mount --bind "$NETNS_HOSTS" /etc/hosts; fi
exec "$@"
"""

# Proxy settings would send the command's requests to a proxy it cannot reach.
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@functools.cache
def unavailable() -> str | None:
    """Why an isolated namespace cannot be made here, or None if it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("unshare", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"no `{tool}` command"
    try:
        trial = run_isolated(
            ["true"],
            addresses=["100.100.100.200/32", "2002:7f00:1::1/128"],
            hosts={"probe.test": "100.100.100.200"},
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot create a network namespace: {e}"
    if trial.returncode != 0:
        return f"cannot create a network namespace: {trial.stderr.strip()[-300:]}"
    return None


def run_isolated(
    argv: Sequence[str],
    *,
    addresses: Sequence[str] = (),
    hosts: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Runs `argv` isolated (see the module docstring); its stdout and stderr
    come back as text. `addresses` are `ip addr add` arguments ("a.b.c.d/32",
    "x::y/128"); `hosts` maps names to addresses for /etc/hosts."""
    environment = {
        k: v
        for k, v in (os.environ if env is None else env).items()
        if k.lower() not in _PROXY_VARIABLES
    }
    environment["NETNS_ADDRESSES"] = " ".join(addresses)
    with tempfile.TemporaryDirectory(prefix="netns-") as scratch:
        environment["NETNS_HOSTS"] = ""
        if hosts is not None:
            path = os.path.join(scratch, "hosts")
            with open(path, "w") as f:
                f.write("127.0.0.1 localhost\n::1 localhost\n")
                f.writelines(f"{address} {name}\n" for name, address in hosts.items())
            environment["NETNS_HOSTS"] = path
        return subprocess.run(
            [
                "unshare",
                "--net",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                _SETUP,
                "sh",
                *argv,
            ],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=environment,
        )
