"""What a fetch may touch, and how politely: schemes, addresses, connections
and request spacing per host, and how URLs appear in logs.

Only http, https (and gs for mirrors) are fetched. A host that resolves to a
private, loopback, link-local, multicast or reserved address is refused unless
allowed (a CSV row must not make a worker read its cloud metadata server or an
internal service), both before connecting and, against DNS rebinding, for the
address actually connected to. URLs in errors and logs lose credentials.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

FETCH_SCHEMES = ("http", "https")
MIRROR_SCHEMES = ("gs",)


class Refused(Exception):
    """A URL or address the policy does not allow; the message says why."""


def redact(url: str) -> str:
    """The URL without user:password@ and without query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
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


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


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


class HostGate:
    """At most `limit` concurrent requests per host, starts `delay` s apart."""

    def __init__(self, limit: int, delay: float) -> None:
        self._limit = limit
        self._delay = delay
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._next_start: dict[str, float] = {}

    @contextlib.contextmanager
    def slot(self, host: str):
        with self._lock:
            semaphore = self._slots.setdefault(
                host, threading.BoundedSemaphore(self._limit)
            )
        with semaphore:
            if self._delay > 0:
                with self._lock:
                    now = time.monotonic()
                    start = max(now, self._next_start.get(host, now))
                    self._next_start[host] = start + self._delay
                time.sleep(max(0.0, start - now))
            yield
