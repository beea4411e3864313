"""Download one URL the way a polite, hard-to-fool crawler does (no Beam here).

HttpFetcher.fetch(url) follows redirects itself (only to http/https, at most
`max_redirects`, every hop checked against the host policy), reads the body
under the byte cap, and hashes it. The per-image deadline bounds everything,
retries included: socket timeouts bound each read, and a watchdog (deadlines)
shuts the socket down when the deadline passes, so a trickling server cannot
hold a fetch longer. Transient failures (connection errors, timeouts, 5xx, 429)
are retried with exponential backoff and full jitter, or after the server's
Retry-After; a kept-alive connection the server had closed is replaced at once.
Each thread keeps its own connections per host (http_connections); a HostGate
caps connections per host and spaces requests to one host (host_policy); how a
failed attempt is told is failures.py.

Longer than most modules on purpose: one exchange, from the request through
redirects to the last byte of the body, and when its connection may be kept,
reads best in one place.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import threading
import time
import zlib
from dataclasses import dataclass
from urllib.parse import SplitResult, urljoin, urlsplit

from oibeam.transforms.fetch import host_policy
from oibeam.transforms.fetch.deadlines import DEADLINES
from oibeam.transforms.fetch.failures import (
    Attempt,
    classify,
    retry_after,
    stale,
)
from oibeam.transforms.fetch.host_policy import HostGate, Refused, redact
from oibeam.transforms.fetch.http_connections import (
    Connections,
    environment_proxies,
    tls_context,
)

_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 256 << 10  # reads of bodies without a Content-Length
# Error and redirect bodies up to this size are read, so the connection stays usable.
_DRAIN = 64 << 10
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 15}


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of one fetch (flag names in brackets)."""

    timeout: float = 10.0  # connect and per-read timeout, seconds [--timeout]
    deadline: float = 60.0  # whole fetch incl. retries, seconds [--deadline]
    retries: int = 3  # extra attempts after a transient failure [--retries]
    max_bytes: int = 64 << 20  # [--max-bytes]
    max_per_host: int = 8  # concurrent connections to one host [--max-per-host]
    host_delay: float = 0.0  # min seconds between request starts per host
    max_redirects: int = 5
    allow_private_hosts: bool = False
    backoff: float = 0.5  # first retry waits up to this, doubling each time
    max_backoff: float = 20.0
    placeholders: tuple[str, ...] = ("photo_unavailable",)
    user_agent: str = "oibeam/0.1 (Open Images snapshot tool)"

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.deadline <= 0:
            raise ValueError("--timeout and --deadline must be > 0")
        if self.retries < 0 or self.max_bytes < 1 or self.max_per_host < 1:
            raise ValueError("--retries >= 0, --max-bytes >= 1, --max-per-host >= 1")


@dataclass
class Download:
    """The outcome of fetching one URL (status None: the body was read whole)."""

    status: str | None = None
    error: str | None = None
    retryable: bool = False
    http_status: int | None = None
    attempts: int = 0
    elapsed_ms: int = 0
    data: bytes | None = None
    md5: bytes | None = None  # digest of `data`
    final_url: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is None


class HttpFetcher:
    """Fetches http(s) URLs under a FetchPolicy; safe to share between threads."""

    def __init__(self, policy: FetchPolicy, seed: int | None = None) -> None:
        self.policy = policy
        self._gate = HostGate(policy.max_per_host, policy.host_delay)
        self._local = threading.local()
        self._random = random.Random(seed)
        self._tls = tls_context()
        self._proxies = environment_proxies()  # read once, not per request
        self._headers = {
            "User-Agent": policy.user_agent,
            "Accept-Encoding": "identity",
            "Accept": "*/*",
        }
        self._all: list[Connections] = []
        self._all_lock = threading.Lock()

    def _connections(self) -> Connections:
        connections = getattr(self._local, "connections", None)
        if connections is None:
            connections = Connections(
                self._tls, self._proxies, self.policy.allow_private_hosts
            )
            self._local.connections = connections
            with self._all_lock:
                self._all.append(connections)
        return connections

    def close(self) -> None:
        """Closes every thread's idle connections (call when no fetch runs)."""
        with self._all_lock:
            for connections in self._all:
                connections.close()

    def fetch(self, url: str) -> Download:
        """Downloads `url`; never raises for network or server trouble."""
        policy = self.policy
        start = time.monotonic()
        deadline = start + policy.deadline
        attempts = 0
        while True:
            attempts += 1
            try:
                result = self._attempt(url, deadline)
                break
            except Attempt as failure:
                if failure.transient and attempts <= policy.retries:
                    wait = failure.wait
                    if wait is None:  # exponential backoff with full jitter
                        cap = min(
                            policy.max_backoff, policy.backoff * 2 ** (attempts - 1)
                        )
                        wait = self._random.uniform(0, cap)
                    if time.monotonic() + wait < deadline:
                        time.sleep(wait)
                        continue
                    failure.error += " (no time left before the deadline to retry)"
                result = Download(
                    status=failure.status,
                    error=failure.error,
                    retryable=failure.transient,
                    http_status=failure.http_status,
                )
                break
        result.attempts = attempts
        result.elapsed_ms = int((time.monotonic() - start) * 1000)
        return result

    def _attempt(self, url: str, deadline: float) -> Download:
        current = url
        for _ in range(self.policy.max_redirects + 1):
            try:
                host_policy.check_scheme(current)
                parts = urlsplit(current)
                parts.port  # noqa: B018 - raises ValueError for a bad port
            except (Refused, ValueError) as e:
                raise Attempt("refused", f"{e}: {redact(current)}") from None
            with self._gate.slot(parts.hostname):
                outcome = self._exchange(parts, current, deadline)
            if isinstance(outcome, Download):
                return outcome
            code, location = outcome
            if any(p in location for p in self.policy.placeholders):
                raise Attempt(
                    "gone",
                    f"redirected to a placeholder: {redact(location)}",
                    http_status=code,
                )
            current = location
        raise Attempt(
            "http_error",
            f"more than {self.policy.max_redirects} redirects",
            http_status=code,
        )

    def _exchange(self, parts: SplitResult, url: str, deadline: float):
        """One request on a kept-alive connection (a new one if the server had
        closed it): a Download, or (status, next URL) for a redirect."""
        connections = self._connections()
        for fresh in (False, True):
            timeout = self._timeout(deadline)
            try:
                conn, key, reused = connections.take(parts, timeout, fresh)
            except Refused as e:
                raise Attempt("refused", f"{e}: {redact(url)}") from None
            except Exception as e:
                raise classify(e, url) from None
            alarm = DEADLINES.arm(deadline, conn.sock)
            outcome = error = response = None
            try:
                conn.request(
                    "GET",
                    connections.target(conn, parts),
                    headers=connections.headers(conn, parts, self._headers),
                )
                response = conn.getresponse()
                outcome = self._handle(response, url)
            except Exception as e:
                error = e
            fired = alarm.disarm()
            if not fired and _read_whole(response, error, outcome):
                connections.give_back(key, conn)
            else:
                conn.close()
            if error is None:
                return outcome
            if fired:
                raise Attempt(
                    "timeout",
                    f"deadline of {self.policy.deadline:g}s passed",
                    transient=True,
                ) from None
            if reused and stale(error):
                continue  # the server closed the idle connection: a new one
            raise classify(error, url) from None
        raise AssertionError("unreachable")

    def _timeout(self, deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Attempt("timeout", f"deadline of {self.policy.deadline:g}s passed")
        return min(self.policy.timeout, remaining)

    def _handle(self, response: http.client.HTTPResponse, url: str):
        """A Download for a 200, (code, next URL) for a redirect, else Attempt."""
        code = response.status
        if code == 200:
            data = self._read_body(response)
            return Download(
                http_status=code,
                data=data,
                md5=hashlib.md5(data).digest(),
                final_url=url,
            )
        _drain(response)
        if code in _REDIRECTS:
            location = response.getheader("Location")
            if not location:
                raise Attempt(
                    "http_error", f"HTTP {code} without Location", http_status=code
                )
            return code, urljoin(url, location)
        if code in (404, 410):
            raise Attempt("gone", f"HTTP {code}", http_status=code)
        if code == 429 or code >= 500:
            wait = retry_after(response.getheader("Retry-After"))
            raise Attempt(
                "http_error",
                f"HTTP {code}",
                transient=True,
                http_status=code,
                wait=wait,
            )
        raise Attempt("http_error", f"HTTP {code}", http_status=code)

    def _read_body(self, response: http.client.HTTPResponse) -> bytes:
        """The body under the byte cap: one read straight into the result
        when its length is known (the deadline watchdog bounds it)."""
        limit = self.policy.max_bytes
        length = response.length  # None: chunked or until the server closes
        if length is not None and length > limit:
            response.close()
            raise Attempt(
                "too_large",
                f"Content-Length {length} > --max-bytes {limit}",
                http_status=200,
            )
        encoding = (response.getheader("Content-Encoding") or "identity").lower()
        if encoding == "identity" and length is not None:
            data = response.read(length)
            if len(data) != length:
                raise Attempt(
                    "connection_error",
                    f"truncated body: {len(data)} of {length} bytes",
                    transient=True,
                    http_status=200,
                )
            return data
        if encoding != "identity" and encoding not in _DECODERS:
            response.close()
            raise Attempt(
                "http_error",
                f"unsupported Content-Encoding {encoding!r}",
                http_status=200,
            )
        decoder = (
            zlib.decompressobj(_DECODERS[encoding]) if encoding in _DECODERS else None
        )
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = response.read1(_CHUNK)
            if not chunk:
                break
            if decoder is not None:
                chunk = decoder.decompress(chunk, limit + 1 - total)
            total += len(chunk)
            if total > limit:
                response.close()
                raise Attempt(
                    "too_large", f"more than --max-bytes {limit}", http_status=200
                )
            chunks.append(chunk)
        # read1() does not mark a body of known length done when it reaches
        # its end (read() does): without this its connection would be closed.
        response.read()
        if decoder is not None:
            if not decoder.eof:
                raise Attempt(
                    "connection_error",
                    f"truncated {encoding} body",
                    transient=True,
                    http_status=200,
                )
            chunks.append(decoder.flush())
        return b"".join(chunks)


def _read_whole(response: http.client.HTTPResponse | None, error, outcome) -> bool:
    """Whether the server's whole answer was read, so the connection may carry
    the next request: an image body read to its end, or the small body of an
    error or redirect that _drain read (one it closed unread is not: its
    bytes still wait on the socket)."""
    if response is None or not response.isclosed() or response.will_close:
        return False
    if error is None and isinstance(outcome, Download):
        return True
    # _drain reads only bodies of known length, and a body read to its end
    # leaves no length to read; a chunked or long body was closed unread.
    drained = response.length == 0
    return drained and (error is None or isinstance(error, Attempt))


def _drain(response: http.client.HTTPResponse) -> None:
    """Reads a small unwanted body (the connection stays usable) or closes it."""
    if response.length is not None and response.length <= _DRAIN:
        response.read()
    else:
        response.close()
