"""A keep-alive HTTP server on several loopback addresses that holds every
request for a while and counts how many it holds at once: for tests of how
many requests a fetch keeps in flight, and of how it backs off a host that
answers 429 above a number of concurrent requests.

    with BusyServer(["127.0.0.1", "127.0.0.2"], hold=0.3, limit=None, body=b) as s:
        s.url(address, "x.jpg")  ->  http://127.0.0.2:PORT/x.jpg
        s.peak, s.answered, s.refused
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b"\xff\xd8" + b"busy" * 256  # 1,026 bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        state: BusyServer = self.server.state
        with state.lock:
            state.now += 1
            state.peak = max(state.peak, state.now)
            over = state.limit is not None and state.now > state.limit
        try:
            if over:
                code, body = 429, b"too many\n"
            else:
                time.sleep(state.hold)
                code, body = 200, state.body
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            with state.lock:
                state.now -= 1
                if over:
                    state.refused += 1
                else:
                    state.answered += 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # hundreds of connections arrive at once


class BusyServer:
    """One server per address, one shared count; `limit`: above this many
    requests held at once, answer 429 at once (None: never)."""

    def __init__(
        self,
        addresses: list[str],
        hold: float,
        limit: int | None = None,
        body: bytes = BODY,
    ):
        self.addresses = addresses
        self.body = body
        self.hold = hold
        self.limit = limit
        self.lock = threading.Lock()
        self.now = self.peak = self.answered = self.refused = 0
        self._servers: list[ThreadingHTTPServer] = []
        self.port = 0

    def __enter__(self) -> BusyServer:
        for address in self.addresses:
            server = _Server((address, self.port), _Handler)
            server.state = self
            self.port = server.server_address[1]
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        return self

    def __exit__(self, *exc) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def url(self, address: str, name: str) -> str:
        return f"http://{address}:{self.port}/{name}"
