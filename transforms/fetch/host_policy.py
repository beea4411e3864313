"""What a fetch may touch: schemes, addresses, and how URLs appear in logs
(how many requests a host gets: host_limits).

Only http, https (and gs for mirrors) are fetched. A host that resolves to an
address that is not public (is_public) is refused unless allowed (a CSV row
must not make a worker read its cloud metadata server or an internal service):
the fetch loop judges the address libcurl is about to connect to (so a name
that resolves elsewhere later, DNS rebinding, is judged again), and through a
proxy the target's addresses by name (check_host). URLs in errors and logs
lose credentials.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

FETCH_SCHEMES = ("http", "https")
MIRROR_SCHEMES = ("gs",)


class Refused(Exception):
    """A URL or address the policy does not allow; the message says why."""


def redact(url: str) -> str:
    """The URL without user:password@ and without query values."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if port:
        netloc = f"{netloc}:{port}"
    query = "&".join(p.split("=", 1)[0] + "=…" for p in parts.query.split("&") if p)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def check_scheme(url: str, schemes: tuple[str, ...] = FETCH_SCHEMES) -> str:
    """The URL's scheme, or Refused if it is not one of `schemes` or has no host."""
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise Refused(f"unparseable URL: {e}") from e
    if parts.scheme.lower() not in schemes:
        raise Refused(f"scheme {parts.scheme or '(none)'!r} is not allowed")
    if not parts.hostname:
        raise Refused("URL has no host")
    return parts.scheme.lower()


# RFC 6052 well-known NAT64 prefix: the translator connects to the IPv4 address
# in the last 32 bits. (The local-use prefix 64:ff9b:1::/48 is not global.)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped ::ffff:a.b.c.d,
    IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::a.b.c.d (and 64:ff9b:1::a.b.c.d),
    6to4 2002:AABB:CCDD:: and Teredo (server, then the de-obfuscated client)."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return [low32]
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # not :: or ::1
        return [low32]
    return []


def is_public(address: str) -> bool:
    """Whether a fetch may connect to `address` (an IP, maybe with a %zone):
    it is globally routable unicast, and so is every IPv4 address it carries.

    IPv4-mapped, NAT64 (well-known prefix) and 6to4 addresses are only other
    ways to reach their IPv4 address, so that address decides alone (a 6to4
    of a public address is allowed on every Python, whatever is_global says
    of 2002::/16). Teredo, local-use NAT64 and IPv4-compatible addresses are
    refused whatever they carry: their prefixes are not globally routable.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return _routable(ip)
    carried = embedded_ipv4(ip)
    if ip.ipv4_mapped is not None or ip.sixtofour is not None or ip in _NAT64:
        return _routable(carried[0])
    return _routable(ip) and all(_routable(v4) for v4 in carried)


def _routable(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """ipaddress's is_global, less what it calls global but is no unicast host
    on the internet: multicast, and in IPv6 the reserved space outside
    2000::/3 (which holds ::a.b.c.d and 64:ff9b::/96) and deprecated
    site-local fec0::/10. It already refuses 100.64.0.0/10 (shared address
    space) with the private, loopback, link-local and special ranges."""
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        return False
    return not (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)


def check_host(host: str, port: int, allow_private: bool) -> None:
    """Refused if `host` resolves to any non-public address (unless allowed)."""
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return  # the request itself will fail with a connection error
    for info in infos:
        address = info[4][0]
        if not is_public(address):
            raise Refused(f"{host} resolves to non-public address {address}")


def check_peer(sock, allow_private: bool) -> None:
    """Refused if the connected socket's peer is not a public address."""
    if allow_private or sock is None:
        return
    address = sock.getpeername()[0]
    if not is_public(address):
        raise Refused(f"connected to non-public address {address}")
