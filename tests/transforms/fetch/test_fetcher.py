"""HttpFetcher against a real, misbehaving HTTP server on 127.0.0.1."""

import hashlib
import threading
import time

import pytest

from oibeam.schemas.fetch import is_retryable
from oibeam.transforms.fetch.fetcher import FetchPolicy, HttpFetcher

from support.paths import IMAGES

PHOTO = "openimages_v1_davidgengenbach_0143a0cf29afbf75.jpg"
DATA = (IMAGES / PHOTO).read_bytes()


def _fetcher(**changes) -> HttpFetcher:
    settings = dict(
        allow_private_hosts=True, timeout=2.0, deadline=8.0, retries=2, backoff=0.05
    )
    settings.update(changes)
    return HttpFetcher(FetchPolicy(**settings), seed=0)


@pytest.fixture
def url(fault_server, request):
    """A URL on the fault server, unique to the test (fresh flaky counters)."""

    def make(path: str) -> str:
        separator = "&" if "?" in path else "?"
        return fault_server.url(f"{path}{separator}t={request.node.name}")

    return make


def test_ok_body_and_digest(url):
    got = _fetcher().fetch(url(f"/img/{PHOTO}"))
    assert got.ok and got.status is None
    assert got.data == DATA and got.md5 == hashlib.md5(DATA).digest()
    assert (got.http_status, got.attempts) == (200, 1)


@pytest.mark.parametrize(
    ("path", "status", "retryable", "http_status"),
    [
        (f"/status/404/{PHOTO}", "gone", False, 404),
        (f"/status/410/{PHOTO}", "gone", False, 410),
        (f"/status/403/{PHOTO}", "http_error", False, 403),
        (f"/placeholder/{PHOTO}", "gone", False, 302),
        ("/loop", "http_error", False, 302),
        ("/redirect-to?url=ftp://example.com/x.jpg", "refused", False, None),
        ("/redirect-to?url=file:///etc/passwd", "refused", False, None),
        ("/endless", "too_large", False, 200),
    ],
)
def test_final_failures_are_not_retried(url, path, status, retryable, http_status):
    got = _fetcher(max_bytes=1 << 20).fetch(url(path))
    assert (got.status, got.retryable, got.http_status) == (
        status,
        retryable,
        http_status,
    )
    assert got.attempts == 1 and got.data is None


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/reset/{PHOTO}", "connection_error"),
        (f"/truncated/{PHOTO}", "connection_error"),
        (f"/headers-only/{PHOTO}", "connection_error"),
        (f"/hangup/{PHOTO}", "connection_error"),
        (f"/status/503/{PHOTO}", "http_error"),
        (f"/delay/5/{PHOTO}", "timeout"),
    ],
)
def test_transient_failures_are_retried_then_marked_retryable(url, path, status):
    got = _fetcher(timeout=0.5, retries=2).fetch(url(path))
    assert got.status == status and got.retryable
    assert got.attempts == 3


@pytest.mark.parametrize("retries", [0, 2])
def test_a_read_timeout_mid_body_is_a_retryable_timeout(fault_server, url, retries):
    # Headers and half the body, then 1 s of silence: the 0.3 s read timeout
    # ends each attempt long before the 8 s deadline.
    target = url(f"/stall/1/{PHOTO}")
    started = time.monotonic()
    got = _fetcher(timeout=0.3, deadline=8.0, retries=retries).fetch(target)
    elapsed = time.monotonic() - started
    assert (got.status, got.retryable) == ("timeout", is_retryable("timeout"))
    assert got.retryable and "timed out" in got.error and "deadline" not in got.error
    assert got.data is None and got.attempts == retries + 1
    seen = fault_server.requests(target.removeprefix(fault_server.base_url))
    assert len(seen) == retries + 1
    # A connection left mid-body is never reused: each attempt opens its own.
    assert len({r.connection for r in seen}) == retries + 1
    assert 0.3 * (retries + 1) <= elapsed < 0.3 * (retries + 1) + 0.5


def test_a_flaky_server_heals_within_the_retries(fault_server, url):
    target = url(f"/flaky/2/{PHOTO}")
    got = _fetcher(retries=3).fetch(target)
    assert got.ok and got.data == DATA and got.attempts == 3
    assert fault_server.count(target) == 3


def test_retry_after_is_honoured(fault_server, url):
    target = url(f"/ratelimit/1/{PHOTO}")
    got = _fetcher(retries=1).fetch(target)
    assert got.ok and got.attempts == 2
    first, second = fault_server.requests(
        target.split("?")[0].removeprefix(fault_server.base_url)
    )[-2:]
    assert second.time - first.time >= 0.95


def test_retry_after_past_the_deadline_gives_up_at_once(url):
    started = time.monotonic()
    got = _fetcher(deadline=2.0).fetch(url(f"/ratelimit/30/{PHOTO}"))
    assert got.status == "http_error" and got.retryable and got.http_status == 429
    assert "no time left" in got.error
    assert time.monotonic() - started < 1.0


def test_a_slow_trickle_hits_the_deadline(url):
    started = time.monotonic()
    got = _fetcher(deadline=1.0, timeout=2.0).fetch(url(f"/slow/20000/{PHOTO}"))
    assert got.status == "timeout" and got.retryable
    assert time.monotonic() - started < 2.5


def test_headers_trickled_inside_the_read_timeout_still_hit_the_deadline(url):
    # Every byte arrives 0.2 s after the last, well inside the 2 s read timeout:
    # only the deadline watchdog ends this fetch.
    started = time.monotonic()
    got = _fetcher(deadline=1.0, timeout=2.0, retries=0).fetch(
        url(f"/slow-headers/0.2/{PHOTO}")
    )
    assert got.status == "timeout" and got.retryable
    assert "deadline of 1s passed" in got.error
    assert time.monotonic() - started < 1.5


def test_a_kept_alive_connection_the_server_dropped_is_replaced_at_once(
    fault_server, url
):
    fetcher = _fetcher(retries=0)
    fault_server.reset_log()
    assert fetcher.fetch(url(f"/then-close/{PHOTO}")).ok
    time.sleep(0.1)  # the server has closed the idle connection by now
    got = fetcher.fetch(url(f"/img/{PHOTO}"))
    assert got.ok and got.attempts == 1 and got.data == DATA
    assert len({r.connection for r in fault_server.requests()}) == 2


def test_redirect_chains_and_compressed_or_chunked_bodies(url):
    fetcher = _fetcher()
    for path in (f"/redirect/3/{PHOTO}", f"/chunked/{PHOTO}", f"/gzip/{PHOTO}"):
        got = fetcher.fetch(url(path))
        assert got.ok, (path, got.error)
        assert got.data == DATA and got.md5 == hashlib.md5(DATA).digest()
    got = fetcher.fetch(url(f"/redirect/9/{PHOTO}"))
    assert got.status == "http_error" and "more than 5 redirects" in got.error


def test_private_addresses_are_refused_by_default(url):
    got = HttpFetcher(FetchPolicy()).fetch(url(f"/img/{PHOTO}"))
    assert got.status == "refused" and "non-public address 127.0.0.1" in got.error


def test_credentials_never_appear_in_errors(fault_server):
    target = fault_server.url(f"/status/404/{PHOTO}").replace(
        "http://", "http://alice:s3cret@"
    )
    got = _fetcher().fetch(target + "?token=abc123")
    assert got.status == "gone"
    got = HttpFetcher(FetchPolicy(retries=0)).fetch(target + "?token=abc123")
    assert got.status == "refused"
    assert "s3cret" not in got.error and "abc123" not in got.error


def test_unresolvable_host_is_a_connection_error():
    got = _fetcher(retries=0).fetch("http://no-such-host.invalid/x.jpg")
    assert got.status == "connection_error" and got.retryable


def test_connections_are_reused_per_host(fault_server, url):
    fetcher = _fetcher()
    fault_server.reset_log()
    for i in range(5):
        assert fetcher.fetch(url(f"/img/{PHOTO}?n={i}")).ok
    assert len({r.connection for r in fault_server.requests("/img/")}) == 1


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param(f"/status/404/{PHOTO}", "gone", id="404"),
        pytest.param(f"/status/503/{PHOTO}", "http_error", id="503"),
        pytest.param(f"/redirect/2/{PHOTO}", None, id="redirect"),
        pytest.param(f"/chunked/{PHOTO}", None, id="chunked"),
        pytest.param(f"/gzip/{PHOTO}", None, id="gzip"),
    ],
)
def test_the_connection_is_reused_after(fault_server, url, path, status):
    fetcher = _fetcher(retries=0)
    fault_server.reset_log()
    first = fetcher.fetch(url(path))
    assert first.status == status and first.attempts == 1
    assert status is not None or first.data == DATA
    got = fetcher.fetch(url(f"/img/{PHOTO}?n=next"))
    assert got.ok and got.data == DATA
    seen = fault_server.requests()
    assert len(seen) == (4 if "redirect" in path else 2)
    assert len({r.connection for r in seen}) == 1


def test_per_host_cap_and_politeness_delay(fault_server, url):
    fetcher = _fetcher(max_per_host=1, host_delay=0.2)
    fault_server.reset_log()
    threads = [
        threading.Thread(target=fetcher.fetch, args=(url(f"/img/{PHOTO}?n={i}"),))
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times = sorted(r.time for r in fault_server.requests("/img/"))
    assert len(times) == 4
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.18  # one request at a time, 0.2 s apart


def test_a_ranged_request_reads_a_206_and_states_the_whole_size(url):
    fetcher = HttpFetcher(
        FetchPolicy(allow_private_hosts=True), seed=0, headers=("Range: bytes=0-0",)
    )
    try:
        got = fetcher.fetch(url(f"/img/{PHOTO}"))
    finally:
        fetcher.close()
    assert (got.status, got.http_status, got.data) == (None, 206, DATA[:1])
    assert got.total_size == len(DATA)


def test_a_206_to_a_plain_fetch_is_not_an_image(url):
    got = _fetcher().fetch(url(f"/status/206/{PHOTO}"))
    assert (got.status, got.http_status, got.data) == ("http_error", 206, None)


def test_abandon_ends_what_is_in_flight_and_queued_at_once(url):
    fetcher = _fetcher(max_per_host=1, deadline=30.0, timeout=30.0)
    futures = [fetcher.submit(url(f"/delay/20/{PHOTO}?n={i}")) for i in range(3)]
    time.sleep(0.3)
    started = time.monotonic()
    fetcher.abandon()
    assert time.monotonic() - started < 2
    got = [f.result(timeout=1) for f in futures]
    assert {(d.status, d.error) for d in got} == {
        ("error", "abandoned: the caller stopped waiting")
    }
