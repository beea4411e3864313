"""The misbehaving HTTP server behaves exactly as the fetch tests will assume.

Also pins down how `requests` (urllib3 2.x underneath) reports each fault, since the
fetcher classifies failures by exception type.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import socket
import threading
import time
from urllib.parse import urlencode

import pytest
import requests
from PIL import Image
from requests.adapters import HTTPAdapter
from urllib3.exceptions import IncompleteRead, ProtocolError
from urllib3.util.retry import Retry

from support.fault_server import PLACEHOLDER_NAME, FaultServer, flip_middle
from support.paths import IMAGES

PNG = "pillow_tests_hopper.png"  # 30,605 bytes
SMALL_JPEG = "pillow_tests_hopper_gray.jpg"  # 5,353 bytes
BIG = "tencent_ml_images_im_0.jpg"  # 1.9 MB
TIMEOUT = 5


def image(name: str) -> bytes:
    return (IMAGES / name).read_bytes()


def get(server: FaultServer, path: str, **kwargs) -> requests.Response:
    kwargs.setdefault("timeout", TIMEOUT)
    return requests.get(server.url(path), **kwargs)


def causes(exc: BaseException) -> list[type]:
    """The exception and everything it was raised from, outermost first."""
    chain: list[type] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 10:
        chain.append(type(seen))
        seen = seen.__cause__ or seen.__context__
    return chain


def raw_exchange(port: int, request: bytes, limit: int = 10_000_000) -> bytes:
    """Sends `request` on a fresh socket and reads until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        out = bytearray()
        while len(out) < limit:
            piece = sock.recv(65536)
            if not piece:
                break
            out += piece
        return bytes(out)


def split_response(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines)}
    return status, headers, body


def wait_until(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# ---- fixtures and basic serving ------------------------------------------------


def test_fixture_images_match_their_provenance():
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in (IMAGES / "PROVENANCE.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| file ")
    ]
    files = sorted(p.name for p in IMAGES.iterdir() if p.suffix != ".md")
    assert sorted(row[0] for row in rows) == files
    assert len(files) == 12
    for name, size, md5, *_ in rows:
        data = image(name)
        assert len(data) == int(size), name
        assert base64.b64encode(hashlib.md5(data).digest()).decode() == md5, name


def test_img_serves_every_fixture_byte_identical(fault_server):
    names = sorted(p.name for p in IMAGES.iterdir() if p.suffix != ".md")
    with requests.Session() as session:
        for name in names:
            r = session.get(fault_server.url(f"/img/{name}"), timeout=TIMEOUT)
            assert r.status_code == 200
            assert r.content == image(name)
            assert int(r.headers["Content-Length"]) == len(image(name))
    types = {
        PNG: "image/png",
        SMALL_JPEG: "image/jpeg",
        "pillow_tests_hopper.gif": "image/gif",
    }
    for name, content_type in types.items():
        assert get(fault_server, f"/img/{name}").headers["Content-Type"] == content_type


def test_url_and_add(fault_server):
    assert fault_server.url("/img/a.jpg") == (
        f"http://127.0.0.1:{fault_server.port}/img/a.jpg"
    )
    assert fault_server.url("img/a.jpg") == fault_server.url("/img/a.jpg")
    fault_server.add("added.bin", b"\x00\x01 some bytes")
    r = get(fault_server, "/img/added.bin")
    assert r.content == b"\x00\x01 some bytes"
    assert r.headers["Content-Type"] == "application/octet-stream"
    with pytest.raises(ValueError):
        fault_server.add("a/b.jpg", b"")


def test_outage_answers_503_until_it_ends(fault_server):
    fault_server.add("down.bin", b"bytes")
    fault_server.add("up.bin", b"other")
    try:
        fault_server.outage({"down.bin"})
        assert get(fault_server, "/img/down.bin").status_code == 503
        assert get(fault_server, "/img/up.bin").content == b"other"
    finally:
        fault_server.outage(())
    assert get(fault_server, "/img/down.bin").content == b"bytes"


def test_head_sends_headers_only(fault_server):
    r = requests.head(fault_server.url(f"/img/{PNG}"), timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(len(image(PNG)))
    assert r.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/nope",
        "/img/unknown.jpg",
        "/img",
        f"/img/{PNG}/extra",
        f"/status/abc/{PNG}",
        f"/status/99/{PNG}",
        f"/flaky/x/{PNG}",
        f"/slow/0/{PNG}",
        "/redirect-to",
        f"/wrong/missing-{PNG}",
        f"/reset/missing-{PNG}",
    ],
)
def test_unknown_paths_are_404(fault_server, path):
    r = get(fault_server, path)
    assert r.status_code == 404
    assert len(r.content) < 200


# ---- statuses, flaky, rate limit ----------------------------------------------


@pytest.mark.parametrize("code", [403, 404, 410, 429, 500, 502, 503])
def test_status(fault_server, code):
    r = get(fault_server, f"/status/{code}/{PNG}")
    assert r.status_code == code
    assert 0 < len(r.content) < 100
    assert r.content != image(PNG)


def test_status_204_has_no_body(fault_server):
    r = get(fault_server, f"/status/204/{PNG}")
    assert (r.status_code, r.content) == (204, b"")


def test_flaky_fails_n_times_per_target(fault_server):
    path = f"/flaky/2/{PNG}?t=flaky"
    codes = [get(fault_server, path).status_code for _ in range(4)]
    assert codes == [500, 500, 200, 200]
    assert get(fault_server, path).content == image(PNG)
    assert fault_server.count(path) == 5
    # Another target has its own counter; reset() starts all of them over.
    assert get(fault_server, f"/flaky/1/{PNG}?t=flaky-other").status_code == 500
    fault_server.reset()
    assert get(fault_server, path).status_code == 500
    assert fault_server.requests() == fault_server.requests("/flaky/2/")


def test_flaky_zero_never_fails(fault_server):
    assert get(fault_server, f"/flaky/0/{PNG}?t=zero").status_code == 200


def test_ratelimit_retry_after_is_honoured_by_urllib3(fault_server):
    path = f"/ratelimit/1/{SMALL_JPEG}?t=ratelimit"
    first = get(fault_server, path)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "1"

    # urllib3's Retry waits for Retry-After on a 429 (it is in
    # RETRY_AFTER_STATUS_CODES); the log times show the gap.
    path = f"/ratelimit/1/{SMALL_JPEG}?t=ratelimit-retry"
    retry = Retry(total=2, status_forcelist=[429], backoff_factor=0)
    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=retry))
        r = session.get(fault_server.url(path), timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.content == image(SMALL_JPEG)
    first, second = fault_server.requests(path)
    assert second.time - first.time >= 1.0


# ---- slow, delayed, endless ---------------------------------------------------


def test_slow_trickles_at_roughly_the_rate(fault_server):
    rate = 20_000
    started = time.monotonic()
    r = get(fault_server, f"/slow/{rate}/{SMALL_JPEG}")
    elapsed = time.monotonic() - started
    assert r.content == image(SMALL_JPEG)
    expected = len(image(SMALL_JPEG)) / rate  # 0.27 s
    assert 0.8 * expected <= elapsed <= expected + 0.5


def test_slow_read_timeout_mid_body_is_a_connection_error(fault_server):
    # Headers arrive at once; the 1 B/s body then stalls longer than the read
    # timeout. requests reports a read timeout *in the body* as ConnectionError,
    # not as Timeout/ReadTimeout (iter_content wraps urllib3's ReadTimeoutError).
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        get(fault_server, f"/slow/1/{PNG}", timeout=0.2)
    assert not isinstance(info.value, requests.exceptions.Timeout)
    assert "Read timed out" in str(info.value)


def test_slow_per_read_timeout_is_no_deadline(fault_server):
    # 200 B/s in 10-byte writes every 50 ms: the 0.15 s read timeout never fires
    # although the 80-byte download takes 0.4 s. Only a wall-clock deadline bounds
    # a trickling download.
    name = "pillow_tests_broken.png"
    started = time.monotonic()
    r = get(fault_server, f"/slow/200/{name}", timeout=0.15)
    assert r.content == image(name)
    assert time.monotonic() - started > 0.3


def test_slow_stops_when_client_disconnects():
    with FaultServer() as server:
        server.add(BIG, image(BIG))
        r = get(server, f"/slow/4000/{BIG}", stream=True)
        assert r.headers["Content-Length"] == str(len(image(BIG)))
        assert len(r.raw.read(100)) == 100
        assert server.active_connections == 1
        r.close()
        # The handler notices at its next write or two (50 ms apart).
        assert wait_until(lambda: server.active_connections == 0, timeout=1)
        assert server.errors == []


def test_delay_before_headers_is_a_read_timeout(fault_server):
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(fault_server, f"/delay/1/{PNG}", timeout=0.2)
    assert get(fault_server, f"/delay/0.05/{PNG}").content == image(PNG)


def test_endless_streams_until_the_client_leaves(fault_server):
    r = get(fault_server, "/endless", stream=True)
    assert r.status_code == 200
    assert "Content-Length" not in r.headers
    assert r.headers["Connection"] == "close"
    total = 0
    for chunk in r.iter_content(256 * 1024):
        assert not chunk.strip(b"\x00")
        total += len(chunk)
        if total >= 5 * 1024 * 1024:
            break
    r.close()
    assert total >= 5 * 1024 * 1024


# ---- broken bodies ----------------------------------------------------------------


def test_reset_is_a_connection_reset_mid_body(fault_server):
    # Headers and half the body arrive, then a RST. requests raises
    # ChunkedEncodingError (NOT ConnectionError) wrapping ConnectionResetError,
    # with or without stream=True.
    for name in (PNG, BIG):
        with pytest.raises(requests.exceptions.ChunkedEncodingError) as info:
            get(fault_server, f"/reset/{name}")
        assert not isinstance(info.value, requests.exceptions.ConnectionError)
        assert ConnectionResetError in causes(info.value)
        assert ProtocolError in causes(info.value)

    r = get(fault_server, f"/reset/{BIG}", stream=True)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(len(image(BIG)))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for _ in r.iter_content(65536):
            pass


def test_reset_on_a_raw_socket(fault_server):
    request = f"GET /reset/{BIG} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    received = 0
    with pytest.raises(ConnectionResetError):
        with socket.create_connection(("127.0.0.1", fault_server.port)) as sock:
            sock.settimeout(TIMEOUT)
            sock.sendall(request)
            while piece := sock.recv(65536):
                received += len(piece)
    assert received <= len(image(BIG)) // 2 + 1000


def test_truncated_body_raises_incomplete_read(fault_server):
    data = image(BIG)
    with pytest.raises(requests.exceptions.ChunkedEncodingError) as info:
        get(fault_server, f"/truncated/{BIG}")
    assert IncompleteRead in causes(info.value)
    half = len(data) // 2
    assert f"IncompleteRead({half} bytes read, {len(data) - half} more" in str(
        info.value
    )

    # http.client: Content-Length promised, half delivered, then a clean FIN.
    conn = http.client.HTTPConnection("127.0.0.1", fault_server.port, timeout=TIMEOUT)
    conn.request("GET", f"/truncated/{BIG}")
    resp = conn.getresponse()
    assert resp.getheader("Content-Length") == str(len(data))
    with pytest.raises(http.client.IncompleteRead) as partial:
        resp.read()
    assert partial.value.partial == data[:half]
    conn.close()

    status, headers, body = split_response(
        raw_exchange(
            fault_server.port, f"GET /truncated/{PNG} HTTP/1.1\r\n\r\n".encode()
        )
    )
    assert status == "HTTP/1.1 200 OK"
    assert int(headers["content-length"]) == len(image(PNG))
    assert body == image(PNG)[: len(image(PNG)) // 2]


def test_headers_only_is_an_incomplete_read_of_zero_bytes(fault_server):
    with pytest.raises(requests.exceptions.ChunkedEncodingError) as info:
        get(fault_server, f"/headers-only/{PNG}")
    assert f"IncompleteRead(0 bytes read, {len(image(PNG))} more" in str(info.value)
    status, headers, body = split_response(
        raw_exchange(
            fault_server.port, f"GET /headers-only/{PNG} HTTP/1.1\r\n\r\n".encode()
        )
    )
    assert (status, body) == ("HTTP/1.1 200 OK", b"")
    assert headers["content-length"] == str(len(image(PNG)))


def test_hangup_is_connection_aborted(fault_server):
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        get(fault_server, f"/hangup/{PNG}")
    assert http.client.RemoteDisconnected in causes(info.value)
    assert "Connection aborted" in str(info.value)


def test_wrong_bytes_same_length_other_md5(fault_server):
    data = image(PNG)
    r = get(fault_server, f"/wrong/{PNG}")
    assert r.status_code == 200
    assert len(r.content) == len(data) == int(r.headers["Content-Length"])
    assert hashlib.md5(r.content).digest() != hashlib.md5(data).digest()
    assert r.content == flip_middle(data)
    assert sum(a != b for a, b in zip(r.content, data, strict=True)) == 4


# ---- redirects --------------------------------------------------------------------


def test_placeholder_redirects_to_a_real_png(fault_server):
    r = get(fault_server, "/placeholder/deleted-photo.jpg")
    assert [h.status_code for h in r.history] == [302]
    assert r.history[0].headers["Location"] == "/" + PLACEHOLDER_NAME
    assert r.url == fault_server.url("/" + PLACEHOLDER_NAME)
    assert r.headers["Content-Type"] == "image/png"
    assert r.content == fault_server.placeholder
    assert get(fault_server, f"/img/{PLACEHOLDER_NAME}").content == r.content
    with Image.open(io.BytesIO(r.content)) as im:
        im.load()
        assert (im.format, im.size) == ("PNG", (500, 374))
        assert im.mode == "RGB"
        assert len(im.getcolors()) > 2  # not a flat grey


def test_redirect_chain_ends_at_the_bytes(fault_server):
    r = get(fault_server, f"/redirect/5/{PNG}")
    assert r.status_code == 200
    assert r.content == image(PNG)
    assert [h.status_code for h in r.history] == [302] * 5
    assert r.url == fault_server.url(f"/img/{PNG}")
    assert get(fault_server, f"/redirect/0/{PNG}").history == []


def test_redirect_locations_mix_absolute_and_relative(fault_server):
    locations = [
        get(fault_server, f"/redirect/{n}/{PNG}", allow_redirects=False).headers[
            "Location"
        ]
        for n in (3, 2, 1)
    ]
    assert locations == [
        fault_server.url(f"/redirect/2/{PNG}"),
        f"../1/{PNG}",
        f"/img/{PNG}",
    ]


def test_redirect_loop_exceeds_requests_limit(fault_server):
    fault_server.reset_log()
    with pytest.raises(requests.exceptions.TooManyRedirects):
        get(fault_server, "/loop")
    # requests follows 30 redirects (Session.max_redirects) then gives up.
    assert fault_server.count("/loop") == 31
    with requests.Session() as session:
        session.max_redirects = 3
        with pytest.raises(requests.exceptions.TooManyRedirects) as info:
            session.get(fault_server.url(f"/redirect/4/{PNG}"), timeout=TIMEOUT)
    # The exception carries the last redirect response.
    assert info.value.response.status_code == 302


def test_redirect_to_other_schemes(fault_server):
    for target in ("ftp://example.invalid/a.jpg", "file:///etc/passwd"):
        path = "/redirect-to?" + urlencode({"url": target})
        r = get(fault_server, path, allow_redirects=False)
        assert (r.status_code, r.headers["Location"]) == (302, target)
        # requests refuses to follow: InvalidSchema, not a ConnectionError.
        with pytest.raises(requests.exceptions.InvalidSchema):
            get(fault_server, path)
    r = get(fault_server, f"/redirect-to?url=/img/{PNG}&code=307")
    assert [h.status_code for h in r.history] == [307]
    assert r.content == image(PNG)


def test_redirect_to_another_host(fault_server):
    with FaultServer() as other:
        other.add("elsewhere.jpg", b"other host")
        target = other.url("/img/elsewhere.jpg")
        r = get(fault_server, "/redirect-to?url=" + target)
        assert r.content == b"other host"
        assert r.url == target
        assert other.count("/img/elsewhere.jpg") == 1


# ---- encodings ----------------------------------------------------------------


def test_chunked_decodes_to_the_bytes(fault_server):
    r = get(fault_server, f"/chunked/{BIG}")
    assert r.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in r.headers
    assert r.content == image(BIG)
    status, headers, body = split_response(
        raw_exchange(
            fault_server.port,
            f"GET /chunked/{SMALL_JPEG} HTTP/1.1\r\nConnection: close\r\n\r\n".encode(),
        )
    )
    assert headers["transfer-encoding"] == "chunked"
    assert body.startswith(b"14E9\r\n")  # 5,353 bytes in one chunk
    assert body.endswith(b"\r\n0\r\n\r\n")


def test_gzip_content_encoding_is_decoded_by_requests(fault_server):
    data = image(PNG)
    r = get(fault_server, f"/gzip/{PNG}")
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.content == data
    # Content-Length counts the compressed bytes: a length check against it
    # fails on a correct download.
    assert int(r.headers["Content-Length"]) != len(data)

    r = get(fault_server, f"/gzip/{PNG}", stream=True)
    wire = r.raw.read(decode_content=False)
    assert len(wire) == int(r.headers["Content-Length"])
    assert gzip.decompress(wire) == data


# ---- log, keep-alive, concurrency, quietness ------------------------------------


def test_request_log(fault_server):
    fault_server.reset_log()
    get(fault_server, f"/img/{SMALL_JPEG}?t=log", headers={"X-Test": "yes"})
    get(fault_server, f"/status/404/{SMALL_JPEG}")
    [entry] = fault_server.requests("/img/")
    assert entry.path == f"/img/{SMALL_JPEG}?t=log"
    assert entry.method == "GET"
    assert entry.headers["x-test"] == "yes"
    assert entry.headers["user-agent"].startswith("python-requests/")
    assert abs(entry.time - time.monotonic()) < 5
    assert fault_server.count(f"/img/{SMALL_JPEG}?t=log") == 1
    assert fault_server.count(fault_server.url(f"/img/{SMALL_JPEG}?t=log")) == 1
    assert len(fault_server.requests()) == 2
    fault_server.reset_log()
    assert fault_server.requests() == []


def test_keep_alive_reuses_one_connection(fault_server):
    fault_server.reset_log()
    paths = [
        f"/img/{PNG}",
        f"/status/404/{PNG}",  # error answers keep the connection too
        f"/wrong/{PNG}",
        f"/gzip/{PNG}",
        f"/chunked/{PNG}",
        f"/redirect/3/{PNG}",
    ]
    with requests.Session() as session:
        for path in paths:
            session.get(fault_server.url(path), timeout=TIMEOUT)
    log = fault_server.requests()
    assert len(log) == len(paths) + 3
    assert len({entry.connection for entry in log}) == 1
    assert len({entry.client_port for entry in log}) == 1

    conn = http.client.HTTPConnection("127.0.0.1", fault_server.port, timeout=TIMEOUT)
    conn.request("GET", f"/img/{PNG}")
    conn.getresponse().read()
    sock = conn.sock
    for _ in range(3):
        conn.request("GET", f"/img/{SMALL_JPEG}")
        assert conn.getresponse().read() == image(SMALL_JPEG)
        assert conn.sock is sock
    conn.close()


def test_fifty_concurrent_clients(fault_server):
    names = [PNG, SMALL_JPEG, "pillow_tests_hopper.gif", BIG]
    barrier = threading.Barrier(50)
    results: list[bool] = [False] * 50

    def client(i: int) -> None:
        name = names[i % len(names)]
        with requests.Session() as session:
            barrier.wait(timeout=TIMEOUT)
            paths = [f"/img/{name}"]
            if name != BIG:
                paths += [f"/chunked/{name}", f"/redirect/2/{name}"]
            for path in paths:
                r = session.get(fault_server.url(path), timeout=TIMEOUT)
                if r.content != image(name):
                    return
        results[i] = True

    fault_server.reset_log()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert all(results)
    assert len({entry.connection for entry in fault_server.requests()}) == 50
    assert fault_server.errors == []


def test_disconnects_print_nothing(capfd):
    """Client disconnects never reach stderr, and stop() ends stuck handlers."""
    with FaultServer() as server:
        server.add(BIG, image(BIG))
        server.add(PNG, image(PNG))
        for path in (f"/reset/{PNG}", f"/truncated/{BIG}", f"/headers-only/{PNG}"):
            with pytest.raises(requests.RequestException):
                get(server, path)
        for path in (
            "/endless",
            f"/slow/40000/{BIG}",
            f"/chunked/{BIG}",
            f"/img/{BIG}",
        ):
            r = get(server, path, stream=True)
            r.raw.read(1000)
            r.close()
        with pytest.raises(requests.RequestException):
            get(server, f"/hangup/{PNG}")
        # Garbage instead of HTTP, and a client that connects and leaves.
        raw_exchange(server.port, b"\x16\x03\x01 not http\r\n\r\n")
        socket.create_connection(("127.0.0.1", server.port)).close()
        assert wait_until(lambda: server.active_connections == 0)
        # A keep-alive connection left open and a stalled /endless reader.
        idle = requests.Session()
        idle.get(server.url(f"/img/{PNG}"), timeout=TIMEOUT)
        stalled = get(server, "/endless", stream=True)
        assert server.active_connections == 2
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 1
    assert wait_until(lambda: server.active_connections == 0)
    idle.close()
    stalled.close()
    assert server.errors == []
    out, err = capfd.readouterr()
    assert err == ""
    assert out == ""
