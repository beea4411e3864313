"""The host policy's judgement of addresses: which a fetch may connect to.

Pure: no server, no DNS (getaddrinfo of an IP literal only parses it). The
fetches themselves, to servers on these addresses, are in
test_fetcher_non_public_hosts.py.
"""

import ipaddress

import pytest

from oibeam.transforms.fetch.host_policy import (
    Refused,
    check_host,
    embedded_ipv4,
    is_public,
)

# (address, why it must not be fetched from)
REFUSED = [
    # RFC 6598 shared address space (carrier-grade NAT); some clouds' metadata
    # servers live here. Neither is_private nor is_reserved says so.
    ("100.64.0.0", "shared address space, first"),
    ("100.100.100.200", "shared address space, Alibaba Cloud metadata"),
    ("100.127.255.255", "shared address space, last"),
    # Deprecated IPv6 site-local (RFC 3879): is_global is True for it.
    ("fec0::1", "site-local"),
    ("feff:ffff::1", "site-local, last /16"),
    # 6to4 (2002:AABB:CCDD::/48 carries AA.BB.CC.DD): is_global is True on 3.11.
    ("2002:7f00:1::1", "6to4 of 127.0.0.1"),
    ("2002:a9fe:a9fe::1", "6to4 of 169.254.169.254"),
    ("2002:6464:64c8::1", "6to4 of 100.100.100.200"),
    ("2002:a00:1:1::1", "6to4 of 10.0.0.1"),
    # Teredo (2001:0::/32): the client address is stored bit-inverted.
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo, client 127.0.0.1"),
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "Teredo, client 8.8.8.8"),
    # NAT64, RFC 6052 well-known prefix: the translator connects to the IPv4.
    ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254"),
    ("64:ff9b::6464:64c8", "NAT64 of 100.100.100.200"),
    ("64:ff9b::c0a8:101", "NAT64 of 192.168.1.1"),
    # NAT64, RFC 8215 local-use prefix: a translator of the local network.
    ("64:ff9b:1::7f00:1", "local-use NAT64 of 127.0.0.1"),
    ("64:ff9b:1::808:808", "local-use NAT64 of 8.8.8.8"),
    # IPv4-mapped: a dual-stack socket connects to the IPv4 address.
    ("::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1"),
    ("::ffff:100.100.100.200", "IPv4-mapped 100.100.100.200"),
    ("::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254"),
    # IPv4-compatible (deprecated, RFC 4291): in reserved ::/8 whatever it holds.
    ("::127.0.0.1", "IPv4-compatible 127.0.0.1"),
    ("::100.100.100.200", "IPv4-compatible 100.100.100.200"),
    ("::8.8.8.8", "IPv4-compatible 8.8.8.8"),
    # What was refused before and still is.
    ("127.0.0.1", "loopback"),
    ("127.1.2.3", "loopback /8"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local, cloud metadata"),
    ("0.0.0.0", "unspecified"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("224.0.0.1", "multicast (is_global says True)"),
    ("198.18.0.1", "benchmarking"),
    ("192.0.2.1", "documentation"),
    ("192.0.0.170", "NAT64 discovery"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local with a zone"),
    ("fd00:ec2::254", "unique local, AWS metadata"),
    ("fc00::1", "unique local"),
    ("ff02::1", "multicast (is_global says True)"),
    ("ff0e::1", "global-scope multicast"),
    ("2001:db8::1", "documentation"),
    ("100::1", "discard-only"),
    ("5f00::1", "reserved (is_global says True)"),
]

# Globally routable, also when written as another form of a public IPv4 address.
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "142.250.74.46",
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",  # what a dual-stack socket reports for 8.8.8.8
    "64:ff9b::808:808",  # what DNS64 answers on an IPv6-only network
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize(
    "address", [a for a, _ in REFUSED], ids=[f"{a} {why}" for a, why in REFUSED]
)
def test_non_public_addresses_are_refused(address):
    assert not is_public(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address):
    assert is_public(address)


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("::ffff:100.100.100.200", ["100.100.100.200"]),
        ("::127.0.0.1", ["127.0.0.1"]),
        ("64:ff9b::7f00:1", ["127.0.0.1"]),
        ("64:ff9b:1::6464:64c8", ["100.100.100.200"]),
        ("2002:7f00:1::1", ["127.0.0.1"]),
        ("2002:6464:64c8:ffff::1", ["100.100.100.200"]),
        # server 65.54.227.120, client 127.0.0.1 stored inverted (80ff:fffe)
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", ["65.54.227.120", "127.0.0.1"]),
        ("2001:4860:4860::8888", []),
        ("fec0::1", []),
        ("::1", []),  # loopback, not IPv4-compatible 0.0.0.1
        ("::", []),
    ],
)
def test_the_ipv4_address_inside_an_ipv6_one_is_found(address, carried):
    got = embedded_ipv4(ipaddress.IPv6Address(address))
    assert [str(a) for a in got] == carried


@pytest.mark.parametrize(
    "address",
    ["100.100.100.200", "fec0::1", "2002:7f00:1::1", "::ffff:100.100.100.200"],
)
def test_check_host_refuses_an_ip_literal_unless_private_hosts_are_allowed(address):
    with pytest.raises(Refused, match="non-public address"):
        check_host(address, 80, allow_private=False)
    check_host(address, 80, allow_private=True)
