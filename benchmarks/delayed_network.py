#!/usr/bin/env python3
"""A delayed test network on one machine: two namespaces, a veth pair, a delay.

    with DelayedNetwork(rtt_ms=80, hosts=16, workdir=Path("/tmp/w")) as net:
        net.set_congestion("cubic")            # the server's TCP congestion control
        subprocess.Popen([*net.server_prefix, "nginx", ...])    # on net.addresses
        subprocess.run([*net.client_prefix, "curl", f"http://{net.addresses[0]}/"])

The client namespace holds vcli (SUBNET.1/24), the server namespace vsrv with
`hosts` addresses (SUBNET.11, .12, ...); both ends of the veth pair are created
inside the namespaces, so the root namespace, its routes and its interfaces are
never touched and no packet leaves the two namespaces. This kernel has no
netem: every packet entering either namespace waits half the RTT (+- a jitter,
FIFO, no reordering) in an NFQUEUE held by `netdelay/nfqdelay.c`, compiled
with gcc into the work dir on first use (kernel headers only). With rtt_ms=0
the namespaces and the veth pair are built without a delay.

Everything is removed on exit, also after an exception, Ctrl-C or SIGTERM
(turned into KeyboardInterrupt while the network is up): the delay programs
and any process left inside the namespaces (all started by this code, killed
by pid), then the namespaces, which takes the veth pair and the iptables rules
with them. Only a SIGKILL leaves them behind: `delayed_network.py --remove-stale`
removes the namespaces of creators that are gone (their names say the pid).

Refuses with NetworkUnavailable (a clear message) when it cannot build the
network: not root, no `ip`, `iptables`, `gcc` or `chrt`, no NFQUEUE support.
`delayed_network.py --check --rtt 80` builds one, times TCP handshakes across
it and removes it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DELAY_SOURCE = HERE / "netdelay" / "nfqdelay.c"
NAME_PREFIX = "oibench-"
CONGESTION = ("bbr", "cubic")


class NetworkUnavailable(RuntimeError):
    """This machine or user cannot build the delayed network (the why inside)."""


def missing_requirements(delayed: bool) -> list[str]:
    """What keeps this process from building the network (empty: nothing)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root (network namespaces need CAP_NET_ADMIN)")
    needed = ["ip"] + (["iptables", "gcc", "chrt"] if delayed else [])
    path = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
    for tool in needed:
        if shutil.which(tool, path=path) is None:
            hint = {"ip": "iproute2", "chrt": "util-linux"}.get(tool, tool)
            problems.append(f"no `{tool}` (apt-get install -y {hint})")
    if delayed and not DELAY_SOURCE.exists():
        problems.append(f"no {DELAY_SOURCE}")
    return problems


def build_delay_program(workdir: Path) -> Path:
    """Compiles nfqdelay.c into workdir (again only when the source is newer)."""
    binary = workdir / "nfqdelay"
    if binary.exists() and binary.stat().st_mtime >= DELAY_SOURCE.stat().st_mtime:
        return binary
    workdir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["gcc", "-O2", "-Wall", "-o", str(binary), str(DELAY_SOURCE)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise NetworkUnavailable(f"gcc could not build nfqdelay:\n{done.stderr}")
    return binary


def run(*cmd: str) -> None:
    """Runs a set-up command; raises NetworkUnavailable with its stderr."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise NetworkUnavailable(f"`{' '.join(cmd)}` failed: {done.stderr.strip()}")


class DelayedNetwork:
    """Context manager: the client and server namespaces, their veth pair, the
    delay, `hosts` server addresses; see the module docstring."""

    def __init__(
        self,
        rtt_ms: float,
        hosts: int,
        workdir: Path,
        jitter_ms: float | None = None,
        subnet: str = "10.213.0",
    ) -> None:
        if not 1 <= hosts <= 200:
            raise ValueError("hosts: 1..200")
        self.rtt_ms, self.hosts, self.workdir = rtt_ms, hosts, Path(workdir)
        # one way: half the RTT, +- a quarter of it (the spread of real paths)
        self.delay_ms = rtt_ms / 2
        self.jitter_ms = self.delay_ms / 4 if jitter_ms is None else jitter_ms
        self.subnet = subnet
        tag = f"{NAME_PREFIX}{os.getpid()}-{secrets.token_hex(2)}"
        self.client, self.server = f"{tag}-cli", f"{tag}-srv"
        self.client_prefix = ["ip", "netns", "exec", self.client]
        self.server_prefix = ["ip", "netns", "exec", self.server]
        self.addresses = [f"{subnet}.{11 + i}" for i in range(hosts)]
        self.client_address = f"{subnet}.1"
        self.congestion: str | None = None
        self._delays: list[subprocess.Popen] = []
        self._created: list[str] = []
        self._old_sigterm = None

    # --- up and down -----------------------------------------------------------

    def __enter__(self) -> DelayedNetwork:
        problems = missing_requirements(self.rtt_ms > 0)
        if problems:
            raise NetworkUnavailable(
                "cannot build the delayed network: " + "; ".join(problems)
            )
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, _interrupt)
        try:
            self._up()
        except BaseException:
            self._down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._down()

    def _up(self) -> None:
        delay = build_delay_program(self.workdir) if self.rtt_ms > 0 else None
        for name in (self.server, self.client):
            run("ip", "netns", "add", name)
            self._created.append(name)
        cli, srv = self.client, self.server
        # both ends are born inside the namespaces: none ever is in the root one
        veth = ["link", "add", "vcli", "type", "veth", "peer", "name", "vsrv"]
        run("ip", "-n", cli, *veth, "netns", srv)
        run("ip", "-n", cli, "addr", "add", f"{self.client_address}/24", "dev", "vcli")
        for address in self.addresses:
            run("ip", "-n", srv, "addr", "add", f"{address}/24", "dev", "vsrv")
        for ns, dev in ((cli, "vcli"), (srv, "vsrv")):
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", ns, "link", "set", dev, "up")
        if delay is not None:
            for seed, (ns, dev) in enumerate(((cli, "vcli"), (srv, "vsrv")), 1):
                self._start_delay(delay, ns, dev, seed)

    def _start_delay(self, binary: Path, ns: str, dev: str, seed: int) -> None:
        """nfqdelay on queue 0 of `ns` (queues are per namespace), at real-time
        priority so the emulated wire never waits for a CPU; then the rule that
        sends every packet entering `dev` to it."""
        log = open(self.workdir / f"nfqdelay-{ns}.log", "wb")
        cmd = ["ip", "netns", "exec", ns, "chrt", "-f", "50", str(binary), "0"]
        cmd += [f"{self.delay_ms:g}", f"{self.jitter_ms:g}", str(seed)]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self._delays.append(proc)
        time.sleep(0.3)  # bound to the queue, or failed
        if proc.poll() is not None:
            text = (self.workdir / f"nfqdelay-{ns}.log").read_text().strip()
            raise NetworkUnavailable(f"nfqdelay exited ({text}): no NFQUEUE support?")
        rule = ["-t", "raw", "-A", "PREROUTING", "-i", dev, "-j", "NFQUEUE"]
        run("ip", "netns", "exec", ns, "iptables", *rule, "--queue-num", "0")

    def _down(self) -> None:
        """Removes all this object made; safe to call twice, never raises."""
        old_sigint = None
        if threading.current_thread() is threading.main_thread():
            old_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish it
        try:
            for proc in self._delays:
                with contextlib.suppress(OSError):
                    proc.terminate()
            for proc in self._delays:
                try:
                    proc.wait(3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self._delays = []
            for name in reversed(self._created):
                remove_namespace(name)
            self._created = []
        finally:
            if old_sigint is not None:
                signal.signal(signal.SIGINT, old_sigint)
            if self._old_sigterm is not None:
                signal.signal(signal.SIGTERM, self._old_sigterm)
                self._old_sigterm = None

    # --- while up --------------------------------------------------------------

    def set_congestion(self, algorithm: str) -> None:
        """The server's TCP congestion control for connections to the client
        (per route, so new connections only; the sysctl stays untouched)."""
        if algorithm not in CONGESTION:
            raise ValueError(f"congestion: one of {CONGESTION}")
        route = [f"{self.subnet}.0/24", "dev", "vsrv", "proto", "kernel"]
        route += ["scope", "link", "src", self.addresses[0], "congctl", algorithm]
        run("ip", "-n", self.server, "route", "replace", *route)
        shown = subprocess.run(
            ["ip", "-n", self.server, "route", "show", "dev", "vsrv"],
            capture_output=True,
            text=True,
        ).stdout
        if f"congctl {algorithm}" not in shown:
            raise NetworkUnavailable(f"congctl {algorithm} not set: {shown!r}")
        self.congestion = algorithm

    def handshake_ms(self, address: str, port: int, count: int = 10) -> list[float]:
        """Times `count` TCP handshakes client -> address:port (one RTT each)."""
        probe = (
            "import socket,sys,time\n"
            "for _ in range(int(sys.argv[3])):\n"
            "    t=time.perf_counter()\n"
            "    s=socket.create_connection((sys.argv[1],int(sys.argv[2])),5)\n"
            "    print(round(1000*(time.perf_counter()-t),1)); s.close()\n"
        )
        out = subprocess.run(
            [*self.client_prefix, sys.executable, "-c", probe, address, str(port)]
            + [str(count)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [float(x) for x in out.split()]


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def namespace_pids(name: str) -> list[int]:
    out = subprocess.run(
        ["ip", "netns", "pids", name], capture_output=True, text=True
    ).stdout
    return [int(p) for p in out.split()]


def remove_namespace(name: str) -> None:
    """Kills what still runs inside `name` (our own children: nginx, clients)
    by pid, then deletes it; a deleted namespace takes its veth end and its
    iptables rules with it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = namespace_pids(name)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 3
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = namespace_pids(name)
        if not pids:
            break
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def remove_stale() -> list[str]:
    """Removes the namespaces of this module whose creating process is gone."""
    removed = []
    for name in sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []:
        match = re.fullmatch(rf"{NAME_PREFIX}(\d+)-[0-9a-f]+-(cli|srv)", name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            remove_namespace(name)
            removed.append(name)
    return removed


def parse_rtt(text: str) -> float:
    """'80ms', '80', '0.2s', '0' -> milliseconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not an RTT: {text!r} (e.g. 80ms)")
    value = float(match.group(1))
    return value * 1000 if match.group(2) == "s" else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="build, time, remove")
    parser.add_argument("--remove-stale", action="store_true")
    parser.add_argument("--rtt", type=parse_rtt, default=80.0)
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--workdir", default="/tmp/delayed-network")
    args = parser.parse_args()
    if args.remove_stale:
        print("removed:", " ".join(remove_stale()) or "nothing")
    if not args.check:
        return
    try:
        with DelayedNetwork(args.rtt, args.hosts, Path(args.workdir)) as net:
            listen = (
                "import socket,time;s=socket.socket();"
                "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
                "s.bind(('0.0.0.0',9));s.listen(64);time.sleep(3600)"
            )
            subprocess.Popen([*net.server_prefix, sys.executable, "-c", listen])
            time.sleep(0.5)
            for address in net.addresses:
                times = net.handshake_ms(address, 9)
                print(f"{net.client} -> {address}: handshake ms {times}")
    except NetworkUnavailable as e:
        sys.exit(str(e))
    print("removed:", net.client, net.server, "left:", os.listdir("/run/netns"))


if __name__ == "__main__":
    main()
