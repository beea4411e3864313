"""HttpFetcher following redirects: every redirect code, and to another origin."""

from urllib.parse import urlencode

import pytest

from oibeam.transforms.fetch import host_policy
from oibeam.transforms.fetch.fetcher import FetchPolicy, HttpFetcher

from support.fault_server import FaultServer
from support.paths import IMAGES

PHOTO = "openimages_v1_davidgengenbach_0143a0cf29afbf75.jpg"
DATA = (IMAGES / PHOTO).read_bytes()
# What the other origins serve under the same name: the bytes say who answered.
OTHER = (IMAGES / "pillow_tests_hopper.png").read_bytes()


def _fetcher(**changes) -> HttpFetcher:
    settings = dict(
        allow_private_hosts=True, timeout=2.0, deadline=8.0, retries=0, backoff=0.05
    )
    settings.update(changes)
    return HttpFetcher(FetchPolicy(**settings), seed=0)


def _redirect_to(server: FaultServer, target: str, code: int = 302) -> str:
    return server.url("/redirect-to?" + urlencode({"url": target, "code": code}))


def _serve(host: str, port: int = 0):
    server = FaultServer(port)
    server.host = host  # any 127/8 address is loopback on Linux
    server.add(PHOTO, OTHER)
    with server:
        yield server


@pytest.fixture(scope="module", params=["port", "host"])
def other(request, fault_server):
    """A second FaultServer: another port on 127.0.0.1, or another host
    (127.0.0.2) on the same port as the fault server."""
    if request.param == "port":
        yield from _serve("127.0.0.1")
    else:
        yield from _serve("127.0.0.2", fault_server.port)


@pytest.fixture(scope="module")
def far():
    """A FaultServer on 127.0.0.2, which the tests below treat as private."""
    yield from _serve("127.0.0.2")


@pytest.fixture
def only_127_0_0_1_is_public(monkeypatch):
    """Lets the fault server on 127.0.0.1 stand in for a public host, so the
    policy can be seen refusing a later hop; every other address is judged
    as usual (127.0.0.2 is loopback, so private)."""
    is_public = host_policy.is_public
    monkeypatch.setattr(
        host_policy, "is_public", lambda a: a == "127.0.0.1" or is_public(a)
    )


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_every_redirect_code_is_followed(fault_server, request, code):
    target = fault_server.url(f"/img/{PHOTO}?t={request.node.name}")
    fault_server.reset_log()
    got = _fetcher().fetch(_redirect_to(fault_server, target, code))
    assert got.ok, got.error
    assert got.data == DATA and got.final_url == target
    assert (got.http_status, got.attempts) == (200, 1)
    seen = [(r.method, r.path.split("?")[0]) for r in fault_server.requests()]
    assert seen == [("GET", "/redirect-to"), ("GET", f"/img/{PHOTO}")]


def test_a_redirect_to_another_origin_uses_a_connection_of_its_own(
    fault_server, other, request
):
    target = other.url(f"/img/{PHOTO}?t={request.node.name}")
    fetcher = _fetcher()
    fault_server.reset_log()
    other.reset_log()
    got = fetcher.fetch(_redirect_to(fault_server, target))
    assert got.ok, got.error
    assert got.data == OTHER and got.final_url == target and got.attempts == 1
    (arrived,) = other.requests()
    assert arrived.path == f"/img/{PHOTO}?t={request.node.name}"
    assert arrived.headers["host"] == f"{other.host}:{other.port}"
    # Both connections were kept, each for its own origin.
    assert fetcher.fetch(fault_server.url(f"/img/{PHOTO}")).data == DATA
    assert fetcher.fetch(other.url(f"/img/{PHOTO}")).data == OTHER
    assert len({r.connection for r in fault_server.requests()}) == 1
    assert len({r.connection for r in other.requests()}) == 1
    assert len(other.requests()) == 2


@pytest.mark.usefixtures("only_127_0_0_1_is_public")
@pytest.mark.parametrize("allow", [False, True], ids=["refused", "allowed"])
def test_the_host_policy_is_applied_to_the_redirect_target(fault_server, far, allow):
    target = far.url(f"/img/{PHOTO}")
    fault_server.reset_log()
    far.reset_log()
    got = _fetcher(allow_private_hosts=allow).fetch(_redirect_to(fault_server, target))
    assert [r.path.split("?")[0] for r in fault_server.requests()] == ["/redirect-to"]
    if allow:
        assert got.ok and got.data == OTHER and got.final_url == target
        assert len(far.requests()) == 1
    else:
        assert (got.status, got.retryable, got.attempts) == ("refused", False, 1)
        assert "127.0.0.2 resolves to non-public address 127.0.0.2" in got.error
        assert far.requests() == []


@pytest.mark.usefixtures("only_127_0_0_1_is_public")
def test_a_redirect_to_the_cloud_metadata_address_is_refused(fault_server):
    target = "http://169.254.169.254/computeMetadata/v1/"
    got = _fetcher(allow_private_hosts=False, timeout=0.5).fetch(
        _redirect_to(fault_server, target)
    )
    assert (got.status, got.retryable, got.attempts) == ("refused", False, 1)
    assert "non-public address 169.254.169.254" in got.error


@pytest.mark.parametrize("body", ["large", "chunked"])
def test_a_redirect_body_left_unread_does_not_poison_the_connection(fault_server, body):
    """A redirect whose body is too big to read just to keep the connection
    (or chunked) is answered on a connection that must not carry the next
    request: its unread bytes would be taken for the next status line."""
    fetcher = _fetcher()
    target = fault_server.url(f"/img/{PHOTO}?r={body}")
    url = fault_server.url(
        "/redirect-to?" + urlencode({"url": target, "code": 302, "body": body})
    )
    for _ in range(3):
        got = fetcher.fetch(url)
        assert got.ok and got.data == DATA, got.error
        again = fetcher.fetch(fault_server.url(f"/img/{PHOTO}?n={body}"))
        assert again.ok and again.data == DATA, again.error
