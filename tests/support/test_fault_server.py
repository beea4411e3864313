"""The misbehaving HTTP server puts on the wire exactly what the fetch tests assume.

Every test talks to it through raw sockets or the standard library's http.client
(what the fetcher itself uses) and checks what the server sends: status lines,
headers, body bytes, chunked framing, when it closes (cleanly or with a reset) and
how fast. How the product's fetcher classifies each fault is tested with
HttpFetcher in tests/transforms/fetch/test_fetcher.py.
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
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
from PIL import Image

from support.fault_server import PLACEHOLDER_NAME, FaultServer, flip_middle
from support.paths import IMAGES

PNG = "pillow_tests_hopper.png"  # 30,605 bytes
SMALL_JPEG = "pillow_tests_hopper_gray.jpg"  # 5,353 bytes
BIG = "tencent_ml_images_im_0.jpg"  # 1.9 MB
TIMEOUT = 5
REDIRECTS = (301, 302, 303, 307, 308)


def image(name: str) -> bytes:
    return (IMAGES / name).read_bytes()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def get_url(url: str, method: str = "GET", headers: dict | None = None) -> Reply:
    """One request on a fresh http.client connection, the body read whole
    (as sent: http.client neither follows redirects nor decodes gzip)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def get(server: FaultServer, path: str, **kwargs) -> Reply:
    return get_url(server.url(path), **kwargs)


def follow(url: str, limit: int = 10) -> tuple[list[tuple[int, str]], str, Reply]:
    """Follows Location headers by hand, each resolved against the URL that
    answered: the (status, Location) of every redirect, the final URL and reply."""
    hops: list[tuple[int, str]] = []
    for _ in range(limit):
        reply = get_url(url)
        if reply.status not in REDIRECTS:
            return hops, url, reply
        location = reply.headers["Location"]
        hops.append((reply.status, location))
        url = urljoin(url, location)
    raise AssertionError(f"more than {limit} redirects: {hops}")


def get_following(
    conn: http.client.HTTPConnection, server: FaultServer, path: str
) -> tuple[int, bytes]:
    """GET on one kept-alive connection, following this server's Location
    headers on the same connection: (final status, final body as sent)."""
    url = server.url(path)
    while True:
        parts = urlsplit(url)
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        body = response.read()
        if response.status not in REDIRECTS:
            return response.status, body
        url = urljoin(url, response.getheader("Location"))


def wire_request(
    path: str, method: str = "GET", close: bool = True, **headers
) -> bytes:
    """An HTTP/1.1 request as bytes; `close` asks the server to close afterwards."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if close:
        lines.append("Connection: close")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def raw_exchange(port: int, request: bytes) -> tuple[bytes, str]:
    """Sends `request` on a fresh socket and reads until the server ends the
    connection: (every byte received, "fin" for a clean close or "rst")."""
    out = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        try:
            while piece := sock.recv(65536):
                out += piece
        except ConnectionResetError:
            return bytes(out), "rst"
    return bytes(out), "fin"


def split_response(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines)}
    return status, headers, body


def exchange(server: FaultServer, path: str, **kwargs) -> tuple[str, dict, bytes]:
    """(status line, lower-cased headers, body bytes as framed on the wire) of
    one request that asks the server to close afterwards; the close must be clean."""
    raw, ending = raw_exchange(server.port, wire_request(path, **kwargs))
    assert ending == "fin"
    return split_response(raw)


def read_head(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """Reads until the end of the headers: (status line, headers, body so far)."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        piece = sock.recv(65536)
        assert piece, f"closed before the end of the headers: {raw!r}"
        raw += piece
    return split_response(raw)


def dechunk(body: bytes) -> tuple[list[bytes], bytes]:
    """The chunks of a chunked body in order, and what follows the 0-size chunk."""
    chunks: list[bytes] = []
    pos = 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end], 16)
        start = end + 2
        if size == 0:
            return chunks, body[start:]
        chunks.append(body[start : start + size])
        assert body[start + size : start + size + 2] == b"\r\n"
        pos = start + size + 2


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
    assert len(files) == 13
    for name, size, md5, *_ in rows:
        data = image(name)
        assert len(data) == int(size), name
        assert base64.b64encode(hashlib.md5(data).digest()).decode() == md5, name


def test_img_serves_every_fixture_byte_identical(fault_server):
    names = sorted(p.name for p in IMAGES.iterdir() if p.suffix != ".md")
    conn = http.client.HTTPConnection("127.0.0.1", fault_server.port, timeout=TIMEOUT)
    try:
        for name in names:
            conn.request("GET", f"/img/{name}")
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == image(name)
            assert int(response.getheader("Content-Length")) == len(image(name))
    finally:
        conn.close()
    types = {
        PNG: "image/png",
        SMALL_JPEG: "image/jpeg",
        "pillow_tests_hopper.gif": "image/gif",
    }
    for name, content_type in types.items():
        assert get(fault_server, f"/img/{name}").headers["Content-Type"] == content_type

    status, headers, body = exchange(fault_server, f"/img/{SMALL_JPEG}")
    assert status == "HTTP/1.1 200 OK"
    assert headers["server"].startswith("FaultServer/1.0")
    assert headers["content-type"] == "image/jpeg"
    assert headers["content-length"] == str(len(image(SMALL_JPEG)))
    assert "transfer-encoding" not in headers
    assert body == image(SMALL_JPEG)


def test_url_and_add(fault_server):
    assert fault_server.url("/img/a.jpg") == (
        f"http://127.0.0.1:{fault_server.port}/img/a.jpg"
    )
    assert fault_server.url("img/a.jpg") == fault_server.url("/img/a.jpg")
    fault_server.add("added.bin", b"\x00\x01 some bytes")
    r = get(fault_server, "/img/added.bin")
    assert r.body == b"\x00\x01 some bytes"
    assert r.headers["Content-Type"] == "application/octet-stream"
    with pytest.raises(ValueError):
        fault_server.add("a/b.jpg", b"")


def test_outage_answers_503_until_it_ends(fault_server):
    fault_server.add("down.bin", b"bytes")
    fault_server.add("up.bin", b"other")
    try:
        fault_server.outage({"down.bin"})
        assert get(fault_server, "/img/down.bin").status == 503
        assert get(fault_server, "/img/up.bin").body == b"other"
    finally:
        fault_server.outage(())
    assert get(fault_server, "/img/down.bin").body == b"bytes"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        (f"/img/{PNG}", 200),
        (f"/status/404/{PNG}", 404),
        (f"/chunked/{PNG}", 200),
        (f"/gzip/{PNG}", 200),
        (f"/slow/1/{PNG}", 200),
        ("/endless", 200),
        (f"/redirect/2/{PNG}", 302),
    ],
)
def test_head_sends_headers_only(fault_server, path, code):
    status, headers, body = exchange(fault_server, path, method="HEAD")
    assert status.split()[:2] == ["HTTP/1.1", str(code)]
    assert body == b""  # not a byte after the headers, not even a last chunk
    if path.startswith("/img/"):
        assert headers["content-length"] == str(len(image(PNG)))


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
        "/redirect-to?url=/img/x.jpg&code=200",
        f"/wrong/missing-{PNG}",
        f"/reset/missing-{PNG}",
    ],
)
def test_unknown_paths_are_404(fault_server, path):
    r = get(fault_server, path)
    assert r.status == 404
    assert len(r.body) < 200


# ---- statuses, flaky, rate limit ----------------------------------------------


@pytest.mark.parametrize("code", [403, 404, 410, 429, 500, 502, 503])
def test_status(fault_server, code):
    r = get(fault_server, f"/status/{code}/{PNG}")
    assert r.status == code
    assert 0 < len(r.body) < 100
    assert int(r.headers["Content-Length"]) == len(r.body)
    assert r.body != image(PNG)


def test_status_204_has_no_body(fault_server):
    status, headers, body = exchange(fault_server, f"/status/204/{PNG}")
    assert (status, body) == ("HTTP/1.1 204 No Content", b"")
    assert headers["content-length"] == "0"


def test_flaky_fails_n_times_per_target(fault_server):
    path = f"/flaky/2/{PNG}?t=flaky"
    codes = [get(fault_server, path).status for _ in range(4)]
    assert codes == [500, 500, 200, 200]
    assert get(fault_server, path).body == image(PNG)
    assert fault_server.count(path) == 5
    # Another target has its own counter; reset() starts all of them over.
    assert get(fault_server, f"/flaky/1/{PNG}?t=flaky-other").status == 500
    fault_server.reset()
    assert get(fault_server, path).status == 500
    assert fault_server.requests() == fault_server.requests("/flaky/2/")


def test_flaky_zero_never_fails(fault_server):
    assert get(fault_server, f"/flaky/0/{PNG}?t=zero").status == 200


def test_ratelimit_sends_retry_after_once_per_target(fault_server):
    # Only the first request to a target is limited, however soon the next one
    # comes: whether a client waits as told is for the fetcher's tests.
    path = f"/ratelimit/1/{SMALL_JPEG}?t=ratelimit"
    status, headers, body = exchange(fault_server, path)
    assert status == "HTTP/1.1 429 Too Many Requests"
    assert headers["retry-after"] == "1"
    assert body == b"slow down\n"
    for _ in range(2):
        status, headers, body = exchange(fault_server, path)
        assert status == "HTTP/1.1 200 OK"
        assert "retry-after" not in headers
        assert body == image(SMALL_JPEG)
    # The value goes back exactly as written in the path.
    first = get(fault_server, f"/ratelimit/2.5/{SMALL_JPEG}?t=ratelimit-fraction")
    assert (first.status, first.headers["Retry-After"]) == (429, "2.5")


# ---- slow, delayed, endless ---------------------------------------------------


def test_slow_trickles_at_roughly_the_rate(fault_server):
    rate = 20_000
    conn = http.client.HTTPConnection("127.0.0.1", fault_server.port, timeout=TIMEOUT)
    try:
        started = time.monotonic()
        conn.request("GET", f"/slow/{rate}/{SMALL_JPEG}")
        response = conn.getresponse()
        headers_at = time.monotonic() - started
        body = response.read()
        elapsed = time.monotonic() - started
    finally:
        conn.close()
    # The headers (with the full length) come at once; only the body trickles.
    assert response.getheader("Content-Length") == str(len(image(SMALL_JPEG)))
    assert headers_at < 0.2
    assert body == image(SMALL_JPEG)
    expected = len(image(SMALL_JPEG)) / rate  # 0.27 s
    assert 0.8 * expected <= elapsed <= expected + 0.5


def test_slow_sends_the_headers_then_stalls_the_body(fault_server):
    # At 1 B/s the first body byte is due a second after the headers: a read
    # timeout shorter than that fires in the body, not before the status line.
    with socket.create_connection(("127.0.0.1", fault_server.port)) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(wire_request(f"/slow/1/{PNG}"))
        status, headers, body = read_head(sock)
        assert status == "HTTP/1.1 200 OK"
        assert headers["content-length"] == str(len(image(PNG)))
        assert body == b""
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_slow_per_read_timeout_is_no_deadline(fault_server):
    # 200 B/s in 10-byte writes every 50 ms: a 0.15 s read timeout never fires
    # although the 80-byte body takes 0.4 s. Only a wall-clock deadline bounds a
    # trickling download (the fetcher's deadline watchdog).
    name = "pillow_tests_broken.png"
    data = image(name)
    with socket.create_connection(("127.0.0.1", fault_server.port)) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(wire_request(f"/slow/200/{name}"))
        _, _, body = read_head(sock)
        started = last = time.monotonic()
        sock.settimeout(0.15)
        gaps = []
        while len(body) < len(data):
            body += sock.recv(65536)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
    assert body == data
    assert last - started > 0.3
    assert len(gaps) >= 4 and max(gaps) < 0.15


def test_slow_stops_when_client_disconnects():
    with FaultServer() as server:
        server.add(BIG, image(BIG))
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.settimeout(TIMEOUT)
            sock.sendall(wire_request(f"/slow/4000/{BIG}"))
            _, headers, body = read_head(sock)
            assert headers["content-length"] == str(len(image(BIG)))
            while len(body) < 100:
                body += sock.recv(100)
            assert server.active_connections == 1
        # The handler notices at its next write or two (50 ms apart).
        assert wait_until(lambda: server.active_connections == 0, timeout=1)
        assert server.errors == []


def test_delay_sends_nothing_until_the_delay_passes(fault_server):
    with socket.create_connection(("127.0.0.1", fault_server.port)) as sock:
        sock.settimeout(0.15)
        sent = time.monotonic()
        sock.sendall(wire_request(f"/delay/0.3/{PNG}"))
        with pytest.raises(TimeoutError):
            sock.recv(1)  # not even the status line
        sock.settimeout(TIMEOUT)
        raw = sock.recv(65536)
        first_byte = time.monotonic() - sent
        while piece := sock.recv(65536):
            raw += piece
    assert first_byte >= 0.3
    status, _, body = split_response(raw)
    assert (status, body) == ("HTTP/1.1 200 OK", image(PNG))


def test_endless_streams_until_the_client_leaves(fault_server):
    with socket.create_connection(("127.0.0.1", fault_server.port)) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(wire_request("/endless", close=False))
        status, headers, body = read_head(sock)
        assert status == "HTTP/1.1 200 OK"
        assert "content-length" not in headers
        assert "transfer-encoding" not in headers  # the body ends only at close
        assert headers["connection"] == "close"
        total = len(body)
        while total < 5 * 1024 * 1024:
            piece = sock.recv(256 * 1024)
            assert piece and not piece.strip(b"\x00")
            total += len(piece)
    assert fault_server.errors == []


# ---- broken bodies ----------------------------------------------------------------


@pytest.mark.parametrize("name", [PNG, BIG])
def test_reset_is_a_connection_reset_mid_body(fault_server, name):
    # The headers promise the whole file; at most half of it comes, then a RST
    # (not a clean FIN), with or without Connection: close.
    data = image(name)
    for close in (True, False):
        raw, ending = raw_exchange(
            fault_server.port, wire_request(f"/reset/{name}", close=close)
        )
        assert ending == "rst"
        status, headers, body = split_response(raw)
        assert status == "HTTP/1.1 200 OK"
        assert headers["content-length"] == str(len(data))
        assert len(body) <= len(data) // 2
        assert body == data[: len(body)]


@pytest.mark.parametrize("name", [PNG, BIG])
def test_truncated_sends_half_the_body_then_closes_cleanly(fault_server, name):
    # No Connection: close asked for: the server closes on its own, with a FIN.
    data = image(name)
    raw, ending = raw_exchange(
        fault_server.port, wire_request(f"/truncated/{name}", close=False)
    )
    assert ending == "fin"
    status, headers, body = split_response(raw)
    assert status == "HTTP/1.1 200 OK"
    assert int(headers["content-length"]) == len(data)
    assert body == data[: len(data) // 2]


def test_headers_only_promises_a_body_it_never_sends(fault_server):
    raw, ending = raw_exchange(
        fault_server.port, wire_request(f"/headers-only/{PNG}", close=False)
    )
    status, headers, body = split_response(raw)
    assert (status, body, ending) == ("HTTP/1.1 200 OK", b"", "fin")
    assert headers["content-length"] == str(len(image(PNG)))


def test_hangup_closes_without_a_byte(fault_server):
    raw, ending = raw_exchange(
        fault_server.port, wire_request(f"/hangup/{PNG}", close=False)
    )
    assert (raw, ending) == (b"", "fin")
    # An unknown name gets an answer instead.
    assert get(fault_server, f"/hangup/missing-{PNG}").status == 404


def test_wrong_bytes_same_length_other_md5(fault_server):
    data = image(PNG)
    r = get(fault_server, f"/wrong/{PNG}")
    assert r.status == 200
    assert len(r.body) == len(data) == int(r.headers["Content-Length"])
    assert hashlib.md5(r.body).digest() != hashlib.md5(data).digest()
    assert r.body == flip_middle(data)
    assert sum(a != b for a, b in zip(r.body, data, strict=True)) == 4


def test_then_close_answers_as_if_kept_alive_then_closes(fault_server):
    # The client did not ask to close and the answer does not say it will (no
    # Connection: close), yet the server closes right after the body.
    raw, ending = raw_exchange(
        fault_server.port, wire_request(f"/then-close/{SMALL_JPEG}", close=False)
    )
    assert ending == "fin"
    status, headers, body = split_response(raw)
    assert status == "HTTP/1.1 200 OK"
    assert "connection" not in headers
    assert headers["content-length"] == str(len(image(SMALL_JPEG)))
    assert body == image(SMALL_JPEG)
    # /img keeps the same kind of connection open.
    with socket.create_connection(("127.0.0.1", fault_server.port)) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(wire_request(f"/img/{SMALL_JPEG}", close=False))
        _, headers, body = read_head(sock)
        while len(body) < int(headers["content-length"]):
            body += sock.recv(65536)
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_slow_headers_trickle_the_status_line_and_headers(fault_server):
    # One byte every 5 ms: each read is well inside any read timeout, but the
    # headers take ~70 x 5 ms; then the body comes at once.
    data = image(SMALL_JPEG)
    with socket.create_connection(("127.0.0.1", fault_server.port)) as sock:
        sock.settimeout(0.25)
        sent = last = time.monotonic()
        sock.sendall(wire_request(f"/slow-headers/0.005/{SMALL_JPEG}"))
        raw, gaps = b"", []
        while b"\r\n\r\n" not in raw:
            raw += sock.recv(65536)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
        head_took = last - sent
        sock.settimeout(TIMEOUT)
        while piece := sock.recv(65536):
            raw += piece
    status, headers, body = split_response(raw)
    head_length = raw.index(b"\r\n\r\n") + 4
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-length"] == str(len(data))
    assert body == data
    assert head_took >= 0.9 * head_length * 0.005
    assert len(gaps) >= 10 and max(gaps) < 0.25


# ---- redirects --------------------------------------------------------------------


def test_placeholder_redirects_to_a_real_png(fault_server):
    r = get(fault_server, "/placeholder/deleted-photo.jpg")
    assert r.status == 302
    assert r.headers["Location"] == "/" + PLACEHOLDER_NAME
    hops, final_url, final = follow(fault_server.url("/placeholder/deleted-photo.jpg"))
    assert hops == [(302, "/" + PLACEHOLDER_NAME)]
    assert final_url == fault_server.url("/" + PLACEHOLDER_NAME)
    assert final.status == 200
    assert final.headers["Content-Type"] == "image/png"
    assert final.body == fault_server.placeholder
    assert get(fault_server, f"/img/{PLACEHOLDER_NAME}").body == final.body
    with Image.open(io.BytesIO(final.body)) as im:
        im.load()
        assert (im.format, im.size) == ("PNG", (500, 374))
        assert im.mode == "RGB"
        assert len(im.getcolors()) > 2  # not a flat grey


def test_redirect_chain_ends_at_the_bytes(fault_server):
    hops, final_url, final = follow(fault_server.url(f"/redirect/5/{PNG}"))
    assert [code for code, _ in hops] == [302] * 5
    assert final_url == fault_server.url(f"/img/{PNG}")
    assert (final.status, final.body) == (200, image(PNG))
    r = get(fault_server, f"/redirect/0/{PNG}")
    assert (r.status, r.body) == (200, image(PNG))
    assert get(fault_server, f"/redirect/3/missing-{PNG}").status == 404


def test_redirect_locations_mix_absolute_and_relative(fault_server):
    locations = [
        get(fault_server, f"/redirect/{n}/{PNG}").headers["Location"] for n in (3, 2, 1)
    ]
    assert locations == [
        fault_server.url(f"/redirect/2/{PNG}"),
        f"../1/{PNG}",
        f"/img/{PNG}",
    ]


def test_redirect_loop_never_ends(fault_server):
    fault_server.reset_log()
    url = fault_server.url("/loop")
    for _ in range(10):
        r = get_url(url)
        assert (r.status, r.headers["Location"]) == (302, "/loop")
        url = urljoin(url, r.headers["Location"])
    assert url == fault_server.url("/loop")
    assert fault_server.count("/loop") == 10


@pytest.mark.parametrize("code", REDIRECTS)
def test_redirect_to_any_url_with_any_redirect_code(fault_server, code):
    for target in (
        "ftp://example.invalid/a.jpg",
        "file:///etc/passwd",
        "http://example.invalid/a.jpg",
    ):
        path = "/redirect-to?" + urlencode({"url": target, "code": code})
        r = get(fault_server, path)
        assert (r.status, r.headers["Location"]) == (code, target)
    hops, _, final = follow(
        fault_server.url(f"/redirect-to?url=/img/{PNG}&code={code}")
    )
    assert hops == [(code, f"/img/{PNG}")]
    assert final.body == image(PNG)


def test_redirect_to_defaults_to_302(fault_server):
    path = "/redirect-to?" + urlencode({"url": "file:///etc/passwd"})
    status, headers, _ = exchange(fault_server, path)
    assert status == "HTTP/1.1 302 Found"
    assert headers["location"] == "file:///etc/passwd"


def test_redirect_to_another_host(fault_server):
    with FaultServer() as other:
        other.add("elsewhere.jpg", b"other host")
        target = other.url("/img/elsewhere.jpg")
        hops, final_url, final = follow(fault_server.url("/redirect-to?url=" + target))
        assert hops == [(302, target)]
        assert (final_url, final.body) == (target, b"other host")
        assert other.count("/img/elsewhere.jpg") == 1


# ---- encodings ----------------------------------------------------------------


@pytest.mark.parametrize("name", [SMALL_JPEG, BIG])
def test_chunked_frames_the_bytes_in_8_kib_chunks(fault_server, name):
    data = image(name)
    status, headers, body = exchange(fault_server, f"/chunked/{name}")
    assert status == "HTTP/1.1 200 OK"
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    chunks, after = dechunk(body)
    assert b"".join(chunks) == data
    assert after == b"\r\n"  # no trailers
    assert all(len(chunk) == 8192 for chunk in chunks[:-1])
    assert 0 < len(chunks[-1]) <= 8192
    if name == SMALL_JPEG:
        assert body.startswith(b"14E9\r\n")  # 5,353 bytes in one chunk
        assert body.endswith(b"\r\n0\r\n\r\n")


def test_gzip_content_encoding_sends_the_compressed_bytes(fault_server):
    data = image(PNG)
    # gzip whatever the client accepts.
    status, headers, wire = exchange(
        fault_server, f"/gzip/{PNG}", Accept_Encoding="identity"
    )
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-encoding"] == "gzip"
    assert headers["content-type"] == "image/png"
    assert "transfer-encoding" not in headers
    # Content-Length counts the compressed bytes: a length check against it
    # fails on a correct download.
    assert int(headers["content-length"]) == len(wire) != len(data)
    assert wire[:2] == b"\x1f\x8b"
    assert gzip.decompress(wire) == data
    # The same bytes every time (mtime 0 in the gzip header).
    assert get(fault_server, f"/gzip/{PNG}").body == wire


# ---- log, keep-alive, concurrency, quietness ------------------------------------


def test_request_log(fault_server):
    fault_server.reset_log()
    get(
        fault_server,
        f"/img/{SMALL_JPEG}?t=log",
        headers={"X-Test": "yes", "User-Agent": "fault-server-test/1"},
    )
    get(fault_server, f"/status/404/{SMALL_JPEG}", method="HEAD")
    [entry] = fault_server.requests("/img/")
    assert entry.path == f"/img/{SMALL_JPEG}?t=log"
    assert entry.method == "GET"
    assert entry.headers["x-test"] == "yes"
    assert entry.headers["user-agent"] == "fault-server-test/1"
    assert entry.headers["host"] == f"127.0.0.1:{fault_server.port}"
    assert abs(entry.time - time.monotonic()) < 5
    assert [r.method for r in fault_server.requests("/status/")] == ["HEAD"]
    assert fault_server.count(f"/img/{SMALL_JPEG}?t=log") == 1
    assert fault_server.count(fault_server.url(f"/img/{SMALL_JPEG}?t=log")) == 1
    assert len(fault_server.requests()) == 2
    fault_server.reset_log()
    assert fault_server.requests() == []


def test_keep_alive_reuses_one_connection(fault_server):
    fault_server.reset_log()
    expected = {
        f"/img/{PNG}": (200, image(PNG)),
        # Error answers keep the connection too.
        f"/status/404/{PNG}": (404, f"status 404 for {PNG}\n".encode()),
        f"/wrong/{PNG}": (200, flip_middle(image(PNG))),
        f"/gzip/{PNG}": (200, gzip.compress(image(PNG), mtime=0)),
        f"/chunked/{PNG}": (200, image(PNG)),
        f"/redirect/3/{PNG}": (200, image(PNG)),  # and so do redirects
    }
    conn = http.client.HTTPConnection("127.0.0.1", fault_server.port, timeout=TIMEOUT)
    try:
        got = {path: get_following(conn, fault_server, path) for path in expected}
        sock = conn.sock
        for _ in range(3):
            conn.request("GET", f"/img/{SMALL_JPEG}")
            assert conn.getresponse().read() == image(SMALL_JPEG)
            assert conn.sock is sock
    finally:
        conn.close()
    assert got == expected
    log = fault_server.requests()
    assert len(log) == len(expected) + 3 + 3  # 3 redirects, 3 more images
    assert len({entry.connection for entry in log}) == 1
    assert len({entry.client_port for entry in log}) == 1


def test_fifty_concurrent_clients(fault_server):
    names = [PNG, SMALL_JPEG, "pillow_tests_hopper.gif", BIG]
    barrier = threading.Barrier(50)
    results: list[bool] = [False] * 50

    def client(i: int) -> None:
        name = names[i % len(names)]
        conn = http.client.HTTPConnection(
            "127.0.0.1", fault_server.port, timeout=TIMEOUT
        )
        try:
            barrier.wait(timeout=TIMEOUT)
            paths = [f"/img/{name}"]
            if name != BIG:
                paths += [f"/chunked/{name}", f"/redirect/2/{name}"]
            for path in paths:
                if get_following(conn, fault_server, path) != (200, image(name)):
                    return
        finally:
            conn.close()
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
        # The server ends these itself.
        for path in (
            f"/reset/{PNG}",
            f"/truncated/{BIG}",
            f"/headers-only/{PNG}",
            f"/hangup/{PNG}",
        ):
            raw_exchange(server.port, wire_request(path, close=False))
        # The client leaves these mid-body.
        for path in (
            "/endless",
            f"/slow/40000/{BIG}",
            f"/chunked/{BIG}",
            f"/img/{BIG}",
        ):
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.settimeout(TIMEOUT)
                sock.sendall(wire_request(path))
                _, _, body = read_head(sock)
                while len(body) < 1000:
                    body += sock.recv(1000)
        # Garbage instead of HTTP, and a client that connects and leaves.
        raw_exchange(server.port, b"\x16\x03\x01 not http\r\n\r\n")
        socket.create_connection(("127.0.0.1", server.port)).close()
        assert wait_until(lambda: server.active_connections == 0)
        # A keep-alive connection left open and a stalled /endless reader.
        idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
        idle.request("GET", f"/img/{PNG}")
        assert idle.getresponse().read() == image(PNG)
        stalled = socket.create_connection(("127.0.0.1", server.port))
        stalled.settimeout(TIMEOUT)
        stalled.sendall(wire_request("/endless"))
        stalled.recv(1000)
        assert wait_until(lambda: server.active_connections == 2)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 1
    assert wait_until(lambda: server.active_connections == 0)
    idle.close()
    stalled.close()
    assert server.errors == []
    out, err = capfd.readouterr()
    assert err == ""
    assert out == ""
