"""Fetch many URLs at once from one thread, on libcurl's multi interface (no
Beam here).

HttpFetcher.submit(url) returns a Future of the Download, and any thread may
call it; one loop thread drives every transfer: libcurl multiplexes the
sockets (keep-alive connections and TLS sessions shared by all transfers,
bodies streamed into MD5 as they arrive), and this loop decides what starts
when. Per host, HostLimits says how many requests may be in flight (it grows
while the host copes, halves on 429/503/timeouts, pauses on Retry-After) and
--host-delay spaces their starts. Each URL's fetch keeps to one contract: every
redirect hop judged here (http/https only, at most --max-redirects, a
placeholder target is `gone`), transient failures retried with exponential
backoff and full jitter or after Retry-After, a request stalled longer than
--timeout dropped, and the per-image --deadline bounding it all. Why libcurl
and not asyncio + aiohttp: benchmarks/README.md ("Fetch engines").

Longer than most modules on purpose: the loop, the schedule and a URL's life
from first attempt to last read best in one place; one exchange is in
curl_transfer.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import queue
import random
import selectors
import socket
import threading
import time
import urllib.request
from collections import deque
from concurrent.futures import Future
from urllib.parse import SplitResult, quote, urlsplit

import pycurl

from oibeam.transforms.fetch import host_policy
from oibeam.transforms.fetch.curl_transfer import Transfer
from oibeam.transforms.fetch.download import Download
from oibeam.transforms.fetch.failures import Attempt, describe
from oibeam.transforms.fetch.fetch_config import FetchPolicy
from oibeam.transforms.fetch.host_limits import ANSWER, PUSH_BACK, HostLimits
from oibeam.transforms.fetch.host_policy import Refused, redact

_LOG = logging.getLogger(__name__)
START_PER_HOST = 8  # requests in flight to a new host, before it has answered
# The fewest a host gets however often it pushes back: one stalled transfer
# must not hold every image of a host behind it.
FLOOR_PER_HOST = 2
_STALL_CHECK = 0.05  # s between looks for stalled transfers
_MAX_WAIT = 0.5  # s the loop sleeps at most
_SAFE_PATH = "/%:@!$&'()*+,;=-._~?"


def _pushed_back(failure: Attempt) -> bool:
    """Whether a failure says the host has too much of us: 429 or 503, a
    refused or reset connection, a stall (not the deadline of a trickle)."""
    if failure.http_status in (429, 503) or failure.status == "connection_error":
        return True
    return failure.status == "timeout" and "deadline" not in failure.error


class _Request:
    """One URL's life: its attempts, redirect hops, deadline and future."""

    __slots__ = ("url", "current", "future", "attempts", "hops", "start", "deadline")

    def __init__(self, url: str) -> None:
        self.url = self.current = url
        self.future: Future = Future()
        self.attempts = 0
        self.hops = 0
        self.start: float | None = None  # the first attempt's start
        self.deadline = 0.0


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


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


def curl_url(url: str) -> str:
    """The URL as libcurl is given it: path and query encoded as
    request_target encodes them, the rest (user:password@, [IPv6], port) as
    written."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{request_target(parts, False)}"


def _ca_bundle() -> str | None:
    found = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    if found:
        return found
    try:
        import certifi

        return certifi.where()
    except ImportError:
        return None


class HttpFetcher:
    """Fetches http(s) URLs under a FetchPolicy, many at once; thread-safe.
    close() it when done (it owns a thread and libcurl handles)."""

    def __init__(
        self,
        policy: FetchPolicy,
        seed: int | None = None,
        limits: HostLimits | None = None,
        headers: tuple[str, ...] = (),
    ) -> None:
        self.policy = policy
        ceiling = policy.max_per_host
        self._limits = limits or HostLimits(
            min(START_PER_HOST, ceiling), ceiling, min(FLOOR_PER_HOST, ceiling)
        )
        self._random = random.Random(seed)
        self._headers = [
            "User-Agent: " + policy.user_agent,
            "Accept: */*",
            *headers,  # e.g. a probe's "Range: bytes=0-0"
        ]
        self._proxies = {
            scheme: url
            for scheme, url in urllib.request.getproxies().items()
            if scheme in ("http", "https", "no")
        }
        self._cainfo = _ca_bundle()
        self._incoming: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._abandoning = False
        self._checked_hosts: dict[str, float] = {}  # proxied hosts judged public

    # -- the caller's side ------------------------------------------------------

    def submit(self, url: str) -> Future:
        """A Future of url's Download; never fails for network trouble."""
        request = _Request(url)
        with self._lock:
            if self._closing:
                raise RuntimeError("HttpFetcher is closed")
            if self._thread is None:
                self._set_up()
            self._incoming.put(request)
        self._wake()
        return request.future

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):  # a wake is pending, or the loop ended
            pass

    def fetch(self, url: str) -> Download:
        return self.submit(url).result()

    def host_limit(self, host: str) -> int:
        """Requests `host` may have in flight now (as HostLimits learned)."""
        return self._limits.limit(host)

    def close(self) -> None:
        """Lets what was submitted finish, then stops the loop."""
        with self._lock:
            self._closing = True
            thread = self._thread
        if thread is not None:
            self._wake()
            thread.join()

    def abandon(self) -> None:
        """Ends what is in flight or waiting now (status `error`), then stops
        the loop: for a caller with a bound on its time, such as a probe."""
        with self._lock:
            self._abandoning = True
        self.close()

    # -- the loop ---------------------------------------------------------------

    def _set_up(self) -> None:
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._watched: dict[int, int] = {}
        self._curl_due: float | None = None
        multi = self._multi = pycurl.CurlMulti()
        multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        multi.setopt(pycurl.M_MAXCONNECTS, 1024)
        self._share = pycurl.CurlShare()
        self._share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_DNS)
        self._share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_SSL_SESSION)
        self._free: list[pycurl.Curl] = []
        self._active: dict[pycurl.Curl, tuple[_Request, Transfer]] = {}
        self._waiting: dict[str, deque[_Request]] = {}
        self._next_start: dict[str, float] = {}
        self._timers: list[tuple[float, int, _Request]] = []
        self._sequence = itertools.count()
        self._next_stall_check = 0.0
        self._thread = threading.Thread(
            target=self._run, name="oibeam-curl", daemon=True
        )
        self._thread.start()

    def _on_socket(self, event: int, fd: int, multi, data) -> None:
        if event == pycurl.POLL_REMOVE:
            if fd in self._watched:
                self._selector.unregister(fd)
                del self._watched[fd]
            return
        mask = (selectors.EVENT_READ if event in (1, 3) else 0) | (
            selectors.EVENT_WRITE if event in (2, 3) else 0
        )
        if fd in self._watched:
            self._selector.modify(fd, mask)
        else:
            self._selector.register(fd, mask)
        self._watched[fd] = mask

    def _on_timer(self, milliseconds: int) -> None:
        self._curl_due = (
            None if milliseconds < 0 else time.monotonic() + milliseconds / 1000
        )

    def _run(self) -> None:
        while True:
            self._take_incoming()
            now = time.monotonic()
            if self._abandoning:
                self._abandon_all(now)
            self._fire_timers(now)
            self._start_ready(now)
            with self._lock:
                idle = not (self._active or self._timers or self._waiting)
                if idle and self._closing and self._incoming.empty():
                    break
            for key, mask in self._selector.select(self._wait(now)):
                if key.fileobj is self._wake_r:
                    self._drain_wake()
                    continue
                action = (pycurl.CSELECT_IN if mask & selectors.EVENT_READ else 0) | (
                    pycurl.CSELECT_OUT if mask & selectors.EVENT_WRITE else 0
                )
                self._multi.socket_action(key.fd, action)
            now = time.monotonic()
            if self._curl_due is not None and now >= self._curl_due:
                self._curl_due = None
                self._multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
            self._collect()
            if now >= self._next_stall_check:
                self._next_stall_check = now + _STALL_CHECK
                self._end_stalled(now)
        self._multi.close()
        for easy in self._free:
            easy.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _wait(self, now: float) -> float:
        due = [now + _MAX_WAIT]
        if self._curl_due is not None:
            due.append(self._curl_due)
        if self._timers:
            due.append(self._timers[0][0])
        if self._active:
            due.append(self._next_stall_check)
        for host, waiting in self._waiting.items():
            # A host at its limit starts more when a transfer ends (a socket
            # event wakes the loop): only a pause or --host-delay is a time.
            if waiting and self._limits.in_flight(host) < self._limits.limit(host):
                due.append(max(self._next_start.get(host, now), self._limits_due(host)))
        return max(0.0, min(due) - now)

    def _limits_due(self, host: str) -> float:
        return self._limits.paused_until(host)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _take_incoming(self) -> None:
        while True:
            try:
                request = self._incoming.get_nowait()
            except queue.Empty:
                return
            self._enqueue(request)

    def _enqueue(self, request: _Request) -> None:
        """In its host's line: at the end when new, at the front when it has
        started already (a retry or a redirect hop: its deadline runs)."""
        line = self._waiting.setdefault(_host(request.current), deque())
        if request.start is None:
            line.append(request)
        else:
            line.appendleft(request)

    def _fire_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, request = heapq.heappop(self._timers)
            self._enqueue(request)

    def _start_ready(self, now: float) -> None:
        for host in list(self._waiting):
            waiting = self._waiting[host]
            while waiting and self._limits.can_start(host, now):
                if self._next_start.get(host, 0.0) > now:
                    break
                request = waiting.popleft()
                try:
                    self._start(request, host, now)
                except Exception as e:  # a bug must fail one image, not the loop
                    _LOG.exception("fetch of %s failed to start", redact(request.url))
                    self._failed(request, Attempt("error", describe(e)), now)
                if self.policy.host_delay > 0:
                    self._next_start[host] = now + self.policy.host_delay
            if not waiting:
                del self._waiting[host]

    def _start(self, request: _Request, host: str, now: float) -> None:
        if request.hops == 0:  # a new attempt (a redirect hop continues one)
            request.attempts += 1
            if request.start is None:
                request.start = now
                request.deadline = now + self.policy.deadline
        url = request.current
        try:
            host_policy.check_scheme(url)
            urlsplit(url).port  # noqa: B018 - raises ValueError for a bad port
            proxy = self._proxy_for(url)
            if proxy is not None:
                self._check_proxied_host(url, now)
        except (Refused, ValueError) as e:
            self._failed(request, Attempt("refused", f"{e}: {redact(url)}"), now)
            return
        remaining = request.deadline - now
        if remaining <= 0:
            self._failed(request, self._deadline_passed(), now)
            return
        easy = self._free.pop() if self._free else self._new_easy()
        transfer = Transfer(
            easy, curl_url(url), self.policy, proxy, self._cainfo, self._headers
        )
        easy.setopt(pycurl.TIMEOUT_MS, int(remaining * 1000) + 1000)  # a backstop
        self._active[easy] = (request, transfer)
        self._limits.started(host)
        self._multi.add_handle(easy)

    def _new_easy(self) -> pycurl.Curl:
        easy = pycurl.Curl()
        easy.setopt(pycurl.SHARE, self._share)  # kept by reset()
        return easy

    def _proxy_for(self, url: str) -> str | None:
        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme)
        if not proxy or urllib.request.proxy_bypass_environment(
            parts.hostname, self._proxies
        ):
            return None
        return proxy

    def _check_proxied_host(self, url: str, now: float) -> None:
        """Through a proxy libcurl connects to the proxy: the target's own
        addresses are judged here, by name (cached a minute)."""
        host = _host(url)
        if self.policy.allow_private_hosts or self._checked_hosts.get(host, 0) > now:
            return
        port = urlsplit(url).port or (443 if url.startswith("https") else 80)
        host_policy.check_host(host, port, False)
        self._checked_hosts[host] = now + 60.0

    def _collect(self) -> None:
        while True:
            queued, done, failed = self._multi.info_read()
            for easy in done:
                self._finish(easy, 0, "")
            for easy, errno, message in failed:
                self._finish(easy, errno, message)
            if not queued:
                return

    def _abandon_all(self, now: float) -> None:
        abandoned = Attempt("error", "abandoned: the caller stopped waiting")
        for easy, (_, transfer) in list(self._active.items()):
            transfer.aborted = abandoned
            self._finish(easy, 0, "")
        waiting = [r for line in self._waiting.values() for r in line]
        waiting += [request for _, _, request in self._timers]
        self._waiting.clear()
        self._timers.clear()
        for request in waiting:
            self._complete(
                request, Download(status="error", error=abandoned.error), now
            )

    def _end_stalled(self, now: float) -> None:
        timeout = self.policy.timeout
        for easy, (request, transfer) in list(self._active.items()):
            if now >= request.deadline:
                transfer.aborted = self._deadline_passed()
            elif now - transfer.last_progress > timeout:
                transfer.aborted = Attempt(
                    "timeout",
                    f"read timed out: nothing received for {timeout:g}s",
                    transient=True,
                )
            else:
                continue
            self._finish(easy, 0, "")

    def _deadline_passed(self) -> Attempt:
        return Attempt(
            "timeout", f"deadline of {self.policy.deadline:g}s passed", transient=True
        )

    def _finish(self, easy: pycurl.Curl, errno: int, message: str) -> None:
        """A transfer ended (or was ended): its outcome decides what is next."""
        request, transfer = self._active.pop(easy)
        self._multi.remove_handle(easy)
        now = time.monotonic()
        try:
            self._judge(easy, request, transfer, errno, message, now)
        except Exception as e:  # a bug must fail one image, not the loop
            _LOG.exception("fetch of %s failed", redact(request.url))
            if not request.future.done():
                self._complete(
                    request, Download(status="error", error=describe(e)), now
                )

    def _judge(self, easy, request: _Request, transfer: Transfer, errno, message, now):
        host = _host(request.current)
        try:
            outcome = transfer.outcome(errno, message)
        except Attempt as failure:
            self._limits.finished(
                host,
                PUSH_BACK if _pushed_back(failure) else ANSWER,
                now,
                transfer.ttfb(),
                failure.wait,
            )
            self._recycle(easy)
            self._failed(request, failure, now)
            return
        self._limits.finished(host, ANSWER, now, transfer.ttfb())
        self._recycle(easy)
        if isinstance(outcome, Download):
            self._complete(request, outcome, now)
        else:
            self._redirected(request, *outcome, now)

    def _recycle(self, easy: pycurl.Curl) -> None:
        easy.reset()
        if len(self._free) < 1024:
            self._free.append(easy)
        else:
            easy.close()

    def _redirected(self, request: _Request, code: int, location: str, now) -> None:
        if any(p in location for p in self.policy.placeholders):
            failure = Attempt(
                "gone",
                f"redirected to a placeholder: {redact(location)}",
                http_status=code,
            )
            return self._failed(request, failure, now)
        request.hops += 1
        if request.hops > self.policy.max_redirects:
            failure = Attempt(
                "http_error",
                f"more than {self.policy.max_redirects} redirects",
                http_status=code,
            )
            return self._failed(request, failure, now)
        request.current = location
        self._enqueue(request)

    def _failed(self, request: _Request, failure: Attempt, now: float) -> None:
        policy = self.policy
        request.hops = 0
        request.current = request.url
        if failure.transient and request.attempts <= policy.retries:
            wait = failure.wait
            if wait is None:  # exponential backoff with full jitter
                cap = min(
                    policy.max_backoff, policy.backoff * 2 ** (request.attempts - 1)
                )
                wait = self._random.uniform(0, cap)
            if now + wait < request.deadline:
                heapq.heappush(
                    self._timers, (now + wait, next(self._sequence), request)
                )
                return
            failure.error += " (no time left before the deadline to retry)"
        download = Download(
            status=failure.status,
            error=failure.error,
            retryable=failure.transient,
            http_status=failure.http_status,
        )
        self._complete(request, download, now)

    def _complete(self, request: _Request, download: Download, now: float) -> None:
        download.attempts = max(1, request.attempts)
        download.elapsed_ms = int((now - (request.start or now)) * 1000)
        request.future.set_result(download)
