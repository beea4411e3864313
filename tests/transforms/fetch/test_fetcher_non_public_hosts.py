"""Fetches to non-public addresses that no 127.0.0.1 server can stand in for
(shared address space, site-local, IPv4 inside IPv6) are refused, and nothing
reaches a server listening there: by IP literal, by hostname, by a redirect
from an allowed host and through a --url-template field.

The servers really listen on 100.100.100.200, fec0::1, 2002:7f00:1::1 and the
rest, so a failing guard would really connect. That only happens inside a
network namespace made for the test (support.netns): its only interface is
`lo`, which carries these addresses and a stand-in public host (8.8.8.8), and
it has no route out, so nothing can leave the machine whatever the fetcher
does. Hostnames resolve through the ordinary getaddrinfo, which the product
calls unchanged: the namespace has its own /etc/hosts (a bind mount in its
own mount namespace) naming each address, so no DNS server and no patched
resolver are involved, and the machine's /etc/hosts is untouched.

One namespace run does every fetch (support/netns_fetch_probe.py, ~4 s); the
tests read its report. Skipped where a namespace cannot be made (not root, no
`unshare` or `ip`).
"""

import json
import sys

import pytest

from support import netns
from support.paths import FIXTURES

# (id, address in the URL, address the server binds to)
TARGETS = [
    ("cgnat-metadata", "100.100.100.200", "100.100.100.200"),
    ("site-local", "fec0::1", "fec0::1"),
    ("6to4-loopback", "2002:7f00:1::1", "2002:7f00:1::1"),
    ("6to4-metadata", "2002:6464:64c8::1", "2002:6464:64c8::1"),
    ("teredo-loopback", "2001:0:4136:e378:8000:63bf:80ff:fffe", None),
    ("nat64-loopback", "64:ff9b::7f00:1", None),
    ("nat64-local-use-metadata", "64:ff9b:1::6464:64c8", None),
    # A dual-stack socket connects to ::ffff:a.b.c.d at a.b.c.d.
    ("mapped-metadata", "::ffff:100.100.100.200", "100.100.100.200"),
    ("compat-loopback", "::127.0.0.1", None),
]
PUBLIC = "8.8.8.8"  # only ever the namespace's own lo
REFUSED_WAYS = ("direct", "hostname", "redirect", "template")


def _plan() -> tuple[dict, list[str], dict[str, str]]:
    """(probe plan, addresses for lo, /etc/hosts entries)."""
    targets = [
        {"id": i, "address": a, "bind": bind or a, "name": f"{i}.test"}
        for i, a, bind in TARGETS
    ]
    binds = {t["bind"] for t in targets} | {PUBLIC}
    addresses = [f"{b}/128" if ":" in b else f"{b}/32" for b in sorted(binds)]
    hosts = {t["name"]: t["address"] for t in targets} | {"public.test": PUBLIC}
    plan = {"public": {"address": PUBLIC, "name": "public.test"}, "targets": targets}
    return plan, addresses, hosts


@pytest.fixture(scope="module")
def report():
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)
    plan, addresses, hosts = _plan()
    run = netns.run_isolated(
        [sys.executable, "-m", "support.netns_fetch_probe"],
        addresses=addresses,
        hosts=hosts,
        input=json.dumps(plan),
        cwd=str(FIXTURES.parent),  # tests/, where `support` is
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def test_the_namespace_has_no_route_out(report):
    for address, error in report["isolated"].items():
        assert "Network is unreachable" in error, (address, error)


@pytest.mark.parametrize("way", ["direct", "hostname", "peer"])
def test_a_public_host_is_allowed(report, way):
    assert report["public"][way] == {"status": "ok", "error": None}


@pytest.mark.parametrize("target", [t[0] for t in TARGETS])
def test_each_server_is_reachable_with_allow_private_hosts(report, target):
    """Without this a refusal below could be a server nobody can reach."""
    got = report["targets"][target]["allowed"]
    assert (got["status"], got["error"]) == ("ok", None)
    assert (got["connections"], got["requests"]) == (1, ["/0123456789abcdef.jpg"])


@pytest.mark.parametrize("way", REFUSED_WAYS)
@pytest.mark.parametrize("target", [t[0] for t in TARGETS])
def test_a_fetch_to_a_non_public_address_is_refused_and_sends_nothing(
    report, target, way
):
    got = report["targets"][target][way]
    assert got["status"] == "refused", got
    assert "non-public address" in got["error"]
    assert (got["connections"], got["requests"]) == (0, [])
    # The redirect came from the allowed host; the refusal was of its target.
    assert got["redirects"] == (1 if way == "redirect" else 0)


@pytest.mark.parametrize("target", [t[0] for t in TARGETS])
def test_the_address_actually_connected_to_is_judged_too(report, target):
    """What HttpFetcher checks after connecting, against DNS rebinding: the
    peer address as the socket reports it (::ffff:a.b.c.d from a dual-stack
    socket, a 4-tuple for IPv6)."""
    got = report["targets"][target]["peer"]
    assert got["status"] == "refused", got
    assert "connected to non-public address" in got["error"]
    assert got["requests"] == []
