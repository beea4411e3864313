"""A real HTTP server on 127.0.0.1 that misbehaves on purpose, for the fetch tests.

Standard library only (Pillow, already a dependency, draws the placeholder PNG once).
`FaultServer` runs a `ThreadingHTTPServer` speaking HTTP/1.1 (keep-alive works) on an
ephemeral port in a daemon thread. Register content with `add(name, data)`, then ask
for it through one of the routes below; `url(path)` builds the full URL.

Routes (`<name>` is a registered content name; an unknown name gives 404):

    GET /img/<name>                     200, the bytes, Content-Length, Content-Type;
                                        206 + Content-Range for `Range: bytes=0-N`;
                                        503 while `name` is in an outage (`outage()`)
    GET /status/<code>/<name>           that status (200-599) with a small text body
                                        (the name need not be registered)
    GET /flaky/<n>/<name>               500 for the first n requests to that request
                                        target, then 200 with the bytes
    GET /ratelimit/<seconds>/<name>     429 + `Retry-After: <seconds>` for the first
                                        request to that target, then 200
    GET /slow/<bytes_per_second>/<name> headers with the full Content-Length, then
                                        the body trickled at that rate
    GET /delay/<seconds>/<name>         waits <seconds> before sending anything, then
                                        200 (a read timeout before the headers)
    GET /reset/<name>                   headers + about half the body, then a TCP RST
    GET /truncated/<name>               full Content-Length, half the body, clean close
    GET /wrong/<name>                   200, same length, a few bytes flipped (MD5 off)
    GET /placeholder/<name>             302 to /photo_unavailable.png (the name need
                                        not be registered: the photo is "gone")
    GET /photo_unavailable.png          a real 500x374 PNG that decodes (Flickr-like);
                                        also registered as /img/photo_unavailable.png
    GET /redirect/<n>/<name>            a chain of n 302s ending at /img/<name>; the
                                        Location headers mix absolute URLs,
                                        absolute paths and relative paths
    GET /loop                           302 to itself, forever
    GET /redirect-to?url=<url>[&code=][&body=]
                                        302 (or `code`: 301/303/307/308) to any URL,
                                        with a short body (or `body`: large, 70 KiB;
                                        chunked, in two chunks a moment apart):
                                        ftp://..., file:///etc/passwd, another host
    GET /endless                        200, no Content-Length, Connection: close,
                                        zeros forever until the client goes away
    GET /chunked/<name>                 the bytes, Transfer-Encoding: chunked
    GET /gzip/<name>                    the bytes gzip-compressed, Content-Encoding:
                                        gzip (whatever Accept-Encoding said)
    GET /headers-only/<name>            200 with Content-Length, then close, no body
    GET /hangup/<name>                  closes the connection without answering
    GET /slow-headers/<seconds>/<name>  the status line and headers one byte every
                                        <seconds> (each read well inside a timeout),
                                        then the bytes
    GET /stall/<seconds>/<name>         headers with the full Content-Length and
                                        half the body, then nothing for <seconds>,
                                        then the rest (a read timeout mid-body)
    GET /then-close/<name>              200 with the bytes as if keep-alive, then
                                        closes the connection (an idle keep-alive
                                        connection the server dropped)
    anything else                       404

HEAD works on every route (headers only). "Request target" means path plus query
string: the flaky and ratelimit counters are kept per target, so a test that wants a
fresh counter on the shared server adds a unique query (`?t=<test name>`), or calls
`reset()`.

Every request is logged (thread-safe) as a `Request`; times are `time.monotonic()`.
Client disconnects never print tracebacks; any other handler exception is printed
and kept in `errors`, so a test can assert the server itself did not break.
"""

from __future__ import annotations

import gzip
import io
import itertools
import mimetypes
import os
import socket
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PLACEHOLDER_NAME = "photo_unavailable.png"
PLACEHOLDER_SIZE = (500, 374)

# What a client hanging up looks like from the server side.
DISCONNECT_ERRORS = (ConnectionError, TimeoutError)


@dataclass(frozen=True)
class Request:
    """One request as the server saw it.

    `path` is the request target (path and query) as sent; `time` is
    `time.monotonic()` when the request line had been read; `headers` has
    lower-cased names; `connection` numbers the TCP connection (equal numbers mean
    a reused keep-alive connection) and `client_port` is the peer's port.
    """

    path: str
    time: float
    headers: dict[str, str] = field(repr=False)
    method: str = "GET"
    connection: int = 0
    client_port: int = 0


def _placeholder_png() -> bytes:
    """A grey 500x374 PNG with dark text-like bars, like Flickr's placeholder."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", PLACEHOLDER_SIZE, (222, 222, 222))
    draw = ImageDraw.Draw(image)
    # A camera-ish outline and a few "lines of text" made of word-sized bars.
    draw.rectangle((210, 110, 290, 170), outline=(160, 160, 160), width=4)
    draw.ellipse((235, 122, 265, 152), outline=(160, 160, 160), width=4)
    widths = itertools.cycle([34, 52, 18, 46, 27, 60, 22, 40])
    for top in (205, 228):
        x = 120
        while x < 380:
            w = next(widths)
            draw.rectangle((x, top, min(x + w, 380), top + 10), fill=(120, 120, 120))
            x += w + 9
    draw.text((170, 260), "This photo is no longer available", fill=(90, 90, 90))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


_PLACEHOLDER: bytes | None = None
_PLACEHOLDER_LOCK = threading.Lock()


def placeholder_png() -> bytes:
    """The placeholder PNG, drawn once per process."""
    global _PLACEHOLDER
    with _PLACEHOLDER_LOCK:
        if _PLACEHOLDER is None:
            _PLACEHOLDER = _placeholder_png()
        return _PLACEHOLDER


def _first_bytes(header: str | None, size: int) -> int | None:
    """How many leading bytes a `Range: bytes=0-N` asks for (None: the whole
    body; other range forms are answered whole, as a server may)."""
    if not header or not header.startswith("bytes=0-") or not size:
        return None
    last = header[len("bytes=0-") :]
    return min(int(last) + 1, size) if last.isdigit() else None


def flip_middle(data: bytes, count: int = 4) -> bytes:
    """The same bytes with `count` bytes in the middle inverted (same length)."""
    if not data:
        return data
    buf = bytearray(data)
    start = max(0, len(buf) // 2 - count // 2)
    for i in range(start, min(len(buf), start + count)):
        buf[i] ^= 0xFF
    return bytes(buf)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # stop() must not wait for handlers stuck in /endless or /slow.
    block_on_close = False
    # The default backlog of 5 makes 50 simultaneous connects stall on SYN retries.
    request_queue_size = 256
    fault: FaultServer

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, DISCONNECT_ERRORS) or self.fault._stopping.is_set():
            return
        self.fault._record_error(exc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FaultServer/1.0"
    # Socket timeout: an idle keep-alive connection (or a client that stopped
    # reading /endless) is dropped after this long.
    timeout = 30
    server: _Server

    # ---- plumbing ------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle plus the
        # client's delayed ACK adds ~40 ms to every small response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fault = self.server.fault
        self.conn_id = self.fault._register_connection(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            pass
        finally:
            self.fault._forget_connection(self.conn_id)

    def handle(self) -> None:
        try:
            super().handle()
        except DISCONNECT_ERRORS:
            pass
        except OSError:
            if not self.fault._stopping.is_set():
                raise

    def log_message(self, format, *args) -> None:
        pass  # no line on stderr per request (log_error goes through here too)

    def send_response(self, code, message=None) -> None:
        self.started = True
        super().send_response(code, message)

    def do_GET(self) -> None:
        self.head = False
        self._dispatch()

    def do_HEAD(self) -> None:
        self.head = True
        self._dispatch()

    def _write(self, data: bytes) -> None:
        if not self.head and data:
            self.wfile.write(data)

    def _start(self, code: int, headers: dict[str, str | int]) -> None:
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key, str(value))
        self.end_headers()

    def _start_image(self, name: str, data: bytes) -> None:
        """The status line and headers of a 200 with `data` as the image
        `name`, as every image route starts before it misbehaves."""
        self._start(
            200,
            {
                "Content-Type": self.fault.content_type(name),
                "Content-Length": len(data),
            },
        )

    def _send(
        self,
        code: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        **extra: str | int,
    ) -> None:
        headers = {"Content-Type": content_type, "Content-Length": len(body)}
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        self._start(code, headers)
        self._write(body)

    def _text(self, code: int, text: str | None = None, **extra: str | int) -> None:
        body = (text or f"{code} {self.responses.get(code, ('',))[0]}\n").encode()
        if code in (204, 304):
            body = b""
        self._send(code, body, **extra)

    def _redirect(self, location: str, code: int = 302) -> None:
        self._text(code, f"redirecting to {location}\n", Location=location)

    def _content(self, name: str) -> bytes | None:
        data = self.fault._content_for(name)
        if data is None:
            self._text(404, f"no content named {name!r}\n")
        return data

    def _send_bytes(self, name: str, data: bytes) -> None:
        self._send(200, data, self.fault.content_type(name))

    def _pause(self, seconds: float) -> bool:
        """Sleeps; False if the server is stopping meanwhile."""
        return not self.fault._stopping.wait(max(0.0, seconds))

    # ---- routing -------------------------------------------------------------

    def _dispatch(self) -> None:
        target = urlsplit(self.path)
        self.fault._log(self)
        self.started = False
        parts = target.path.split("/")[1:]
        route, args = (parts[0], parts[1:]) if parts else ("", [])
        handler = getattr(self, "route_" + route.replace("-", "_"), None)
        if target.path == "/" + PLACEHOLDER_NAME:
            handler, args = self.route_img, [PLACEHOLDER_NAME]
        elif route == "redirect-to":
            handler, args = self.route_redirect_to, [target.query]
        try:
            if handler is None:
                raise TypeError
            handler(*args)
        except (TypeError, ValueError):
            # Unknown route, wrong number of segments, or a bad argument: every
            # route checks its arguments before it answers anything.
            if self.started:
                raise
            self._text(404, f"no route for {self.path}\n")

    def route_img(self, name: str) -> None:
        if self.fault._in_outage(name):
            self._text(503, f"{name} is in an outage\n")
            return
        data = self._content(name)
        if data is None:
            return
        first = _first_bytes(self.headers.get("Range"), len(data))
        if first is None:
            self._send_bytes(name, data)
        else:
            self._send(
                206,
                data[:first],
                self.fault.content_type(name),
                Content_Range=f"bytes 0-{first - 1}/{len(data)}",
            )

    def route_status(self, code: str, name: str) -> None:
        status = int(code)
        if not 200 <= status <= 599:
            raise ValueError(code)
        self._text(status, f"status {status} for {name}\n")

    def route_flaky(self, n: str, name: str) -> None:
        failures = int(n)
        data = self._content(name)
        if data is None:
            return
        if self.fault._bump(self.path) <= failures:
            self._text(500, "flaky: failing this time\n")
        else:
            self._send_bytes(name, data)

    def route_ratelimit(self, seconds: str, name: str) -> None:
        float(seconds)  # validate; sent back exactly as given
        data = self._content(name)
        if data is None:
            return
        if self.fault._bump(self.path) == 1:
            self._text(429, "slow down\n", Retry_After=seconds)
        else:
            self._send_bytes(name, data)

    def route_slow(self, rate: str, name: str) -> None:
        bytes_per_second = float(rate)
        if bytes_per_second <= 0:
            raise ValueError(rate)
        data = self._content(name)
        if data is None:
            return
        self._start_image(name, data)
        if self.head:
            return
        # About 20 writes a second; each leaves when the average rate says so.
        chunk = max(1, int(bytes_per_second / 20))
        start = time.monotonic()
        for offset in range(0, len(data), chunk):
            piece = data[offset : offset + chunk]
            due = start + (offset + len(piece)) / bytes_per_second
            if not self._pause(due - time.monotonic()):
                break
            self.wfile.write(piece)  # raises once the client has gone: we stop

    def route_delay(self, seconds: str, name: str) -> None:
        wait = float(seconds)
        data = self._content(name)
        if data is not None and self._pause(wait):
            self._send_bytes(name, data)

    def route_reset(self, name: str) -> None:
        data = self._content(name)
        if data is None:
            return
        self._start_image(name, data)
        self._write(data[: len(data) // 2])
        # Give the client a moment to take the headers, so the reset lands while
        # it reads the body (not while it waits for the status line).
        self._pause(0.05)
        self.close_connection = True
        sock = self.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # socket.close() would not close the descriptor while rfile/wfile hold it,
        # and the server would then shutdown(SHUT_WR) it (a clean FIN). Detach and
        # close the descriptor ourselves: with linger 0 the kernel sends a RST.
        os.close(sock.detach())

    def route_truncated(self, name: str) -> None:
        data = self._content(name)
        if data is None:
            return
        self._start_image(name, data)
        self._write(data[: len(data) // 2])
        self.close_connection = True  # the server then closes cleanly (FIN)

    def route_headers_only(self, name: str) -> None:
        data = self._content(name)
        if data is None:
            return
        self._start_image(name, data)
        self.close_connection = True

    def route_slow_headers(self, seconds: str, name: str) -> None:
        interval = float(seconds)
        data = self._content(name)
        if data is None:
            return
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {self.fault.content_type(name)}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode()
        self.started = True
        for i in range(len(head)):
            if not self._pause(interval):
                return
            self.wfile.write(head[i : i + 1])
            self.wfile.flush()
        self._write(data)

    def route_stall(self, seconds: str, name: str) -> None:
        wait = float(seconds)
        if wait < 0:
            raise ValueError(seconds)
        data = self._content(name)
        if data is None:
            return
        self._start_image(name, data)
        if self.head:
            return
        half = len(data) // 2
        self._write(data[:half])
        if self._pause(wait):
            self._write(data[half:])  # raises once the client has gone: we stop

    def route_then_close(self, name: str) -> None:
        data = self._content(name)
        if data is not None:
            self._send_bytes(name, data)
            self.close_connection = True  # silently: no Connection: close header

    def route_hangup(self, name: str) -> None:
        if self._content(name) is not None:
            self.close_connection = True  # not a byte of response

    def route_wrong(self, name: str) -> None:
        data = self._content(name)
        if data is not None:
            self._send_bytes(name, flip_middle(data))

    def route_placeholder(self, name: str) -> None:
        self._redirect("/" + PLACEHOLDER_NAME)

    def route_redirect(self, n: str, name: str) -> None:
        hops = int(n)
        if hops < 0:
            raise ValueError(n)
        if hops == 0:
            self.route_img(name)
            return
        if self.fault._content_for(name) is None:
            self._text(404, f"no content named {name!r}\n")
            return
        # The next hop, written three ways in turn.
        if hops == 1:
            paths = (f"/img/{name}", f"../../img/{name}")
        else:
            paths = (f"/redirect/{hops - 1}/{name}", f"../{hops - 1}/{name}")
        absolute = self.fault.url(paths[0])
        self._redirect((absolute, paths[0], paths[1])[hops % 3])

    def route_loop(self) -> None:
        self._redirect("/loop")

    def route_redirect_to(self, query: str) -> None:
        params = parse_qs(query)
        if "url" not in params:
            raise ValueError("url")
        code = int(params.get("code", ["302"])[0])
        if code not in (301, 302, 303, 307, 308):
            raise ValueError(code)
        body = params.get("body", ["short"])[0]
        location = params["url"][0]
        if body == "short":
            self._redirect(location, code)
        elif body == "large":  # more than a client would read just to reuse
            filler = b"x" * (70 * 1024)
            self._send(code, filler, "text/plain", Location=location)
        elif body == "chunked":  # two chunks, the second a moment later
            self._start(
                code,
                {
                    "Location": location,
                    "Content-Type": "text/plain",
                    "Transfer-Encoding": "chunked",
                },
            )
            if self.head:
                return
            self._write(b"9\r\nredirect \r\n")
            if self._pause(0.05):
                self._write(b"3\r\nto\n\r\n0\r\n\r\n")
        else:
            raise ValueError(body)

    def route_endless(self, *_ignored: str) -> None:
        self.close_connection = True
        self._start(
            200, {"Content-Type": "application/octet-stream", "Connection": "close"}
        )
        if self.head:
            return
        zeros = bytes(64 * 1024)
        while not self.fault._stopping.is_set():
            self.wfile.write(zeros)  # raises once the client has gone: we stop

    def route_chunked(self, name: str) -> None:
        data = self._content(name)
        if data is None:
            return
        self._start(
            200,
            {
                "Content-Type": self.fault.content_type(name),
                "Transfer-Encoding": "chunked",
            },
        )
        if self.head:
            return
        step = 8 * 1024
        for offset in range(0, len(data), step):
            piece = data[offset : offset + step]
            self.wfile.write(b"%X\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def route_gzip(self, name: str) -> None:
        # Content-Encoding (not Transfer-Encoding) gzip, whatever Accept-Encoding
        # said: the body on the wire is the gzip stream of the original bytes
        # (mtime 0, so the same every time) and Content-Length is its compressed
        # size, not the original file's. Which bytes a fetcher stores and checks
        # (MD5, size) is for its tests to decide; the MD5 in Open Images is of the
        # original file.
        data = self._content(name)
        if data is None:
            return
        self._send(
            200,
            self.fault._gzipped(name),
            self.fault.content_type(name),
            Content_Encoding="gzip",
        )


class FaultServer:
    """A misbehaving HTTP/1.1 server on 127.0.0.1; see the module docstring."""

    host = "127.0.0.1"

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._lock = threading.Lock()
        self._contents: dict[str, bytes] = {}
        self._outage: set[str] = set()
        self._gzip_cache: dict[str, bytes] = {}
        self._log_entries: list[Request] = []
        self._counters: dict[str, int] = {}
        self._connections: dict[int, socket.socket] = {}
        self._connection_ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        self.add(PLACEHOLDER_NAME, placeholder_png())

    # ---- lifecycle -------------------------------------------------------------

    def start(self) -> FaultServer:
        if self._server is not None:
            raise RuntimeError("FaultServer already started")
        self._stopping.clear()
        server = _Server((self.host, self._requested_port), _Handler)
        server.fault = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FaultServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        # Wake handlers blocked on keep-alive reads or long writes.
        with self._lock:
            conns = list(self._connections.values())
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FaultServer not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """The full URL of a path on this server, e.g. url("/img/a.jpg")."""
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + path

    # ---- content ---------------------------------------------------------------

    def add(self, name: str, data: bytes) -> None:
        """Registers (or replaces) content served under `name`."""
        if not name or "/" in name:
            raise ValueError(f"bad content name {name!r}")
        with self._lock:
            self._contents[name] = bytes(data)
            self._gzip_cache.pop(name, None)

    def outage(self, names) -> None:
        """From now on /img/<name> answers 503 for these names (and only these:
        `outage(())` ends every outage): a failure that heals in a later run."""
        with self._lock:
            self._outage = set(names)

    def content(self, name: str) -> bytes:
        with self._lock:
            return self._contents[name]

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._contents)

    @staticmethod
    def content_type(name: str) -> str:
        return mimetypes.guess_type(name)[0] or "application/octet-stream"

    @property
    def placeholder(self) -> bytes:
        """The bytes behind /photo_unavailable.png."""
        return self.content(PLACEHOLDER_NAME)

    @property
    def active_connections(self) -> int:
        """Connections whose handler thread has not finished yet."""
        with self._lock:
            return len(self._connections)

    # ---- request log -----------------------------------------------------------

    def requests(self, path_prefix: str | None = None) -> list[Request]:
        """Logged requests, oldest first; only targets starting with the prefix."""
        with self._lock:
            entries = list(self._log_entries)
        if path_prefix is None:
            return entries
        return [r for r in entries if r.path.startswith(path_prefix)]

    def count(self, path: str) -> int:
        """How many requests had exactly this target (a full URL also works)."""
        if "://" in path:
            parts = urlsplit(path)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        with self._lock:
            return sum(1 for r in self._log_entries if r.path == path)

    def reset_log(self) -> None:
        """Forgets the logged requests (the flaky/ratelimit counters stay)."""
        with self._lock:
            self._log_entries.clear()

    def reset(self) -> None:
        """Forgets the logged requests and the flaky/ratelimit counters."""
        with self._lock:
            self._log_entries.clear()
            self._counters.clear()

    # ---- used by the handler ---------------------------------------------------

    def _in_outage(self, name: str) -> bool:
        with self._lock:
            return name in self._outage

    def _content_for(self, name: str) -> bytes | None:
        with self._lock:
            return self._contents.get(name)

    def _gzipped(self, name: str) -> bytes:
        with self._lock:
            if name not in self._gzip_cache:
                self._gzip_cache[name] = gzip.compress(self._contents[name], mtime=0)
            return self._gzip_cache[name]

    def _log(self, handler: _Handler) -> None:
        entry = Request(
            path=handler.path,
            time=time.monotonic(),
            headers={k.lower(): v for k, v in handler.headers.items()},
            method=handler.command,
            connection=handler.conn_id,
            client_port=handler.client_address[1],
        )
        with self._lock:
            self._log_entries.append(entry)

    def _bump(self, target: str) -> int:
        with self._lock:
            self._counters[target] = self._counters.get(target, 0) + 1
            return self._counters[target]

    def _register_connection(self, conn: socket.socket) -> int:
        with self._lock:
            conn_id = next(self._connection_ids)
            self._connections[conn_id] = conn
            return conn_id

    def _forget_connection(self, conn_id: int) -> None:
        with self._lock:
            self._connections.pop(conn_id, None)

    def _record_error(self, exc: BaseException | None) -> None:
        text = "".join(traceback.format_exception(exc)) if exc else "unknown error"
        with self._lock:
            self.errors.append(text)
        print(f"FaultServer: unexpected error\n{text}", file=sys.stderr)
