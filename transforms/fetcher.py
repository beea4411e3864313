"""Download one URL the way a polite, hard-to-fool crawler does (no Beam here).

HttpFetcher.fetch(url) follows redirects itself (only to http/https, at most
`max_redirects`, every hop checked against the host policy), streams the body
while hashing it, and stops at `max_bytes` or at the per-image deadline, which
bounds everything including retries. Transient failures (connection errors,
timeouts, 5xx, 429) are retried with exponential backoff and full jitter, or
after the server's Retry-After. Each thread has its own requests.Session, so
connections are pooled and reused per host; a HostGate caps connections per
host and spaces requests to one host.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import random
import threading
import time
import urllib.request
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from transforms import host_policy
from transforms.host_policy import Refused, redact

_REDIRECTS = (301, 302, 303, 307, 308)
_CHUNK = 1 << 20


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


class _Attempt(Exception):
    """One attempt failed; `transient` says whether to try again."""

    def __init__(self, status, error, transient=False, http_status=None, wait=None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.transient = transient
        self.http_status = http_status
        self.wait = wait  # the server's Retry-After, seconds


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


class HttpFetcher:
    """Fetches http(s) URLs under a FetchPolicy; safe to share between threads."""

    def __init__(self, policy: FetchPolicy, seed: int | None = None) -> None:
        self.policy = policy
        self._gate = HostGate(policy.max_per_host, policy.host_delay)
        self._local = threading.local()
        self._random = random.Random(seed)
        # Proxies from the environment, read once: with trust_env off, requests
        # skips its per-request netrc and proxy lookups (30% of its CPU here).
        self._proxies = {
            scheme: url
            for scheme, url in urllib.request.getproxies().items()
            if scheme in ("http", "https")
        }

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            session.proxies.update(self._proxies)
            adapter = requests.adapters.HTTPAdapter(
                pool_connections=16,
                pool_maxsize=self.policy.max_per_host,
                max_retries=0,
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update(
                {"User-Agent": self.policy.user_agent, "Accept-Encoding": "identity"}
            )
            self._local.session = session
        return session

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()

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
            except _Attempt as failure:
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
                port = parts.port or (443 if parts.scheme == "https" else 80)
                host_policy.check_host(
                    parts.hostname, port, self.policy.allow_private_hosts
                )
            except Refused as e:
                raise _Attempt("refused", f"{e}: {redact(current)}") from None
            with self._gate.slot(parts.hostname):
                response = self._request(current, deadline)
                try:
                    location = self._check_response(response, current)
                    if location is None:
                        data, md5 = self._read_body(response, deadline)
                        return Download(
                            http_status=response.status_code,
                            data=data,
                            md5=md5,
                            final_url=current,
                        )
                finally:
                    response.close()
            if any(p in location for p in self.policy.placeholders):
                raise _Attempt(
                    "gone",
                    f"redirected to a placeholder: {redact(location)}",
                    http_status=response.status_code,
                )
            current = location
        raise _Attempt(
            "http_error",
            f"more than {self.policy.max_redirects} redirects",
            http_status=response.status_code,
        )

    def _request(self, url: str, deadline: float) -> requests.Response:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Attempt("timeout", f"deadline of {self.policy.deadline:g}s passed")
        timeout = min(self.policy.timeout, remaining)
        try:
            return self._session().get(
                url, stream=True, allow_redirects=False, timeout=(timeout, timeout)
            )
        except requests.exceptions.Timeout as e:
            raise _Attempt("timeout", _describe(e), transient=True) from None
        except requests.exceptions.ConnectionError as e:
            raise _Attempt("connection_error", _describe(e), transient=True) from None
        except requests.exceptions.RequestException as e:
            raise _Attempt("refused", f"{type(e).__name__}: {redact(url)}") from None

    def _check_response(self, response: requests.Response, url: str) -> str | None:
        """None for a 200 to read; the next URL for a redirect; else _Attempt."""
        connection = response.raw.connection
        try:
            host_policy.check_peer(
                getattr(connection, "sock", None), self.policy.allow_private_hosts
            )
        except Refused as e:
            raise _Attempt("refused", f"{e}: {redact(url)}") from None
        code = response.status_code
        if code == 200:
            return None
        if code in _REDIRECTS:
            location = response.headers.get("Location")
            if not location:
                raise _Attempt(
                    "http_error", f"HTTP {code} without Location", http_status=code
                )
            return urljoin(url, location)
        if code in (404, 410):
            raise _Attempt("gone", f"HTTP {code}", http_status=code)
        if code == 429 or code >= 500:
            wait = _retry_after(response.headers.get("Retry-After"))
            raise _Attempt(
                "http_error",
                f"HTTP {code}",
                transient=True,
                http_status=code,
                wait=wait,
            )
        raise _Attempt("http_error", f"HTTP {code}", http_status=code)

    def _read_body(self, response: requests.Response, deadline: float):
        """(bytes, md5 digest), read in chunks under the byte cap and deadline."""
        limit = self.policy.max_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _Attempt(
                "too_large",
                f"Content-Length {declared} > --max-bytes {limit}",
                http_status=response.status_code,
            )
        encoded = response.headers.get("Content-Encoding", "identity") != "identity"
        raw = response.raw
        sock = getattr(raw.connection, "sock", None)
        digest = hashlib.md5()
        chunks: list[bytes] = []
        total = 0
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _Attempt(
                        "timeout",
                        f"deadline of {self.policy.deadline:g}s passed after "
                        f"{total} bytes",
                        transient=True,
                        http_status=response.status_code,
                    )
                if sock is not None:
                    sock.settimeout(min(self.policy.timeout, remaining))
                chunk = raw.read1(_CHUNK, decode_content=encoded)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    raise _Attempt(
                        "too_large",
                        f"more than --max-bytes {limit}",
                        http_status=response.status_code,
                    )
                digest.update(chunk)
                chunks.append(chunk)
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as e:
            raise _Attempt(
                "timeout",
                _describe(e),
                transient=True,
                http_status=response.status_code,
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _Attempt(
                "connection_error",
                _describe(e),
                transient=True,
                http_status=response.status_code,
            ) from None
        return b"".join(chunks), digest.digest()


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe(error: Exception) -> str:
    """A short, credential-free description of a network error."""
    text = str(error)
    for marker in ("Caused by ", "(Caused by "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return f"{type(error).__name__}: {text[:200]}"
