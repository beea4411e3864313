"""One thread's keep-alive HTTP/1.1 connections (http.client), proxies and TLS.

The fetch hot path talks http.client directly rather than through requests:
a request costs ~0.15 ms of CPU here, ~0.45 ms through a requests Session
(~0.25 ms through urllib3 alone), and the difference is a fifth of all the
CPU a verified image needs (benchmarks/README.md). What requests did for us
is kept here: connections reused per (scheme, host, port), proxies from the
environment (HTTP(S)_PROXY, NO_PROXY; https through CONNECT), certificate
checks against REQUESTS_CA_BUNDLE / SSL_CERT_FILE or else certifi's bundle,
and credentials in a URL sent as Basic auth. Not thread-safe: one per thread.
"""

from __future__ import annotations

import base64
import http.client
import os
import ssl
import urllib.request
from urllib.parse import SplitResult, quote, unquote, urlsplit

from oibeam.transforms.fetch import host_policy

_SAFE_PATH = "/%:@!$&'()*+,;=-._~?"


def tls_context() -> ssl.SSLContext:
    """Verifying TLS context: the CA bundle requests would use."""
    cafile = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    if not cafile:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:  # the system's store
            cafile = None
    return ssl.create_default_context(cafile=cafile)


def environment_proxies() -> dict[str, str]:
    """scheme -> proxy URL for http/https, and "no" (NO_PROXY), read once."""
    return {
        scheme: url
        for scheme, url in urllib.request.getproxies().items()
        if scheme in ("http", "https", "no")
    }


def request_target(parts: SplitResult, absolute: bool) -> str:
    """What follows GET: the path and query (the whole URL through a proxy),
    percent-encoding what http.client would refuse."""
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    if not path.isascii() or " " in path:
        path = quote(path, safe=_SAFE_PATH)
    if not absolute:
        return path
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{netloc}{path}"


def basic_auth(parts: SplitResult) -> str | None:
    if parts.username is None:
        return None
    token = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(token.encode()).decode("ascii")


class _PeerCheckedHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection that judges the address it reached before the TLS
    handshake: a name that resolved elsewhere than when it was checked (DNS
    rebinding) is refused before it is sent anything, not even a ClientHello."""

    def __init__(self, *args, check_peer=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._check_peer = check_peer

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # TCP (and a proxy's tunnel)
        if self._check_peer is not None:
            self._check_peer(self.sock)
        host = self._tunnel_host or self.host
        self.sock = self._context.wrap_socket(self.sock, server_hostname=host)


class Connections:
    """Open connections of one thread, at most one per (scheme, host, port)."""

    def __init__(
        self,
        tls: ssl.SSLContext,
        proxies: dict[str, str],
        allow_private_hosts: bool,
        max_open: int = 32,
    ) -> None:
        self._tls = tls
        self._proxies = proxies
        self._allow_private = allow_private_hosts
        self._max_open = max_open
        self._idle: dict[tuple, http.client.HTTPConnection] = {}

    def proxy_for(self, parts: SplitResult) -> SplitResult | None:
        url = self._proxies.get(parts.scheme)
        if not url or urllib.request.proxy_bypass_environment(
            parts.hostname, self._proxies
        ):
            return None
        return urlsplit(url if "://" in url else f"http://{url}")

    def take(
        self, parts: SplitResult, timeout: float, fresh: bool = False
    ) -> tuple[http.client.HTTPConnection, tuple, bool]:
        """(connection, key, reused): an idle one for the URL's origin unless
        `fresh`, else a new one, connected (host policy checked: Refused)."""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname, port)
        conn = None if fresh else self._idle.pop(key, None)
        if conn is not None:
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
                return conn, key, True
            conn.close()
        host_policy.check_host(parts.hostname, port, self._allow_private)
        conn = self._connect(parts, port, timeout)
        return conn, key, False

    def _check_peer(self, sock) -> None:
        """The address actually connected to (DNS rebinding): Refused."""
        host_policy.check_peer(sock, self._allow_private)

    def _connect(self, parts: SplitResult, port: int, timeout: float):
        proxy = self.proxy_for(parts)
        https = parts.scheme == "https"
        if proxy is None:
            conn = (
                _PeerCheckedHTTPS(
                    parts.hostname,
                    port,
                    timeout=timeout,
                    context=self._tls,
                    check_peer=self._check_peer,
                )
                if https
                else http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
            )
        else:
            proxy_port = proxy.port or (443 if proxy.scheme == "https" else 80)
            if https:
                conn = http.client.HTTPSConnection(
                    proxy.hostname, proxy_port, timeout=timeout, context=self._tls
                )
                auth = basic_auth(proxy)
                conn.set_tunnel(
                    parts.hostname,
                    port,
                    headers={"Proxy-Authorization": auth} if auth else None,
                )
            else:
                conn = http.client.HTTPConnection(
                    proxy.hostname, proxy_port, timeout=timeout
                )
            conn.oibeam_proxy = proxy
        try:
            conn.connect()  # https: the peer was judged before the handshake
            if proxy is None and not https:  # nothing was sent yet either
                self._check_peer(conn.sock)
        except BaseException:
            conn.close()
            raise
        return conn

    def headers(self, conn, parts: SplitResult, base: dict[str, str]) -> dict:
        headers = dict(base)
        auth = basic_auth(parts)
        if auth:
            headers["Authorization"] = auth
        proxy = getattr(conn, "oibeam_proxy", None)
        if proxy is not None and parts.scheme == "http":
            auth = basic_auth(proxy)
            if auth:
                headers["Proxy-Authorization"] = auth
        return headers

    def target(self, conn, parts: SplitResult) -> str:
        proxied = getattr(conn, "oibeam_proxy", None) is not None
        return request_target(parts, proxied and parts.scheme == "http")

    def give_back(self, key: tuple, conn: http.client.HTTPConnection) -> None:
        """Keeps a connection whose response was read to the end."""
        old = self._idle.pop(key, None)
        if old is not None:
            old.close()
        self._idle[key] = conn
        while len(self._idle) > self._max_open:
            self._idle.pop(next(iter(self._idle))).close()

    def close(self) -> None:
        for conn in self._idle.values():
            conn.close()
        self._idle.clear()
