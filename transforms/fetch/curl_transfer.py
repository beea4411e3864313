"""One HTTP exchange on a libcurl easy handle (no Beam here): the request is
set up, the answer's headers and body are collected by callbacks as they come
(the body hashed into MD5 as it streams, under the byte cap), and when libcurl
says the transfer ended, `outcome()` tells what it was in oibeam's terms:
a Download for a 200, (status, next URL) for a redirect, or an Attempt.

No redirect is followed here (every hop is judged by the fetch loop), and an
address that is not public is refused as libcurl opens the socket: the
address actually connected to, whatever DNS said before (rebinding).
"""

from __future__ import annotations

import hashlib
import socket
import time
from urllib.parse import urlsplit

import pycurl

from oibeam.transforms.fetch import host_policy
from oibeam.transforms.fetch.download import Download
from oibeam.transforms.fetch.failures import Attempt, retry_after
from oibeam.transforms.fetch.fetch_config import FetchPolicy
from oibeam.transforms.fetch.host_policy import redact

REDIRECTS = (301, 302, 303, 307, 308)
# Encodings libcurl decodes for us; any other is refused as before.
DECODED = ("identity", "gzip", "x-gzip", "deflate")
_BUFFER = 256 << 10  # bytes libcurl hands a write callback at most
# curl errors that are the network's (worth another try), by code.
_NETWORK = {
    pycurl.E_COULDNT_RESOLVE_HOST: "could not resolve host",
    pycurl.E_COULDNT_CONNECT: "could not connect",
    pycurl.E_PARTIAL_FILE: "truncated body",
    pycurl.E_GOT_NOTHING: "the server closed the connection without answering",
    pycurl.E_RECV_ERROR: "connection reset while receiving",
    pycurl.E_SEND_ERROR: "connection reset while sending",
    pycurl.E_SSL_CONNECT_ERROR: "TLS handshake failed",
    pycurl.E_PEER_FAILED_VERIFICATION: "CERTIFICATE_VERIFY_FAILED",
    pycurl.E_COULDNT_RESOLVE_PROXY: "could not resolve the proxy",
}


class Transfer:
    """One attempt at one URL on `easy`; `started` is time.monotonic()."""

    def __init__(
        self,
        easy: pycurl.Curl,
        url: str,
        policy: FetchPolicy,
        proxy: str | None,
        cainfo: str | None,
        headers: list[str],
    ) -> None:
        self.easy = easy
        self.url = url
        self.policy = policy
        self.started = self.last_progress = time.monotonic()
        self.first_byte: float | None = None
        self.code = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.md5 = hashlib.md5()
        self.refused: str | None = None  # why the policy refused the address
        self.too_large: str | None = None
        self.aborted: Attempt | None = None  # ended by the loop (deadline, stall)
        self._proxied = proxy is not None
        # A probe asks for the first byte only: its 206 answers like a 200.
        self._ranged = any(h.lower().startswith("range:") for h in headers)
        e = easy
        e.setopt(pycurl.URL, url)
        e.setopt(pycurl.HTTPHEADER, headers)
        e.setopt(pycurl.ACCEPT_ENCODING, "identity")  # decodes gzip if sent anyway
        e.setopt(pycurl.FOLLOWLOCATION, 0)
        e.setopt(pycurl.NOSIGNAL, 1)
        e.setopt(pycurl.BUFFERSIZE, _BUFFER)
        e.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(policy.timeout * 1000)))
        e.setopt(pycurl.PROXY, proxy or "")
        if cainfo:
            e.setopt(pycurl.CAINFO, cainfo)
        e.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        e.setopt(pycurl.HEADERFUNCTION, self._header)
        e.setopt(pycurl.WRITEFUNCTION, self._write)
        if not policy.allow_private_hosts and not self._proxied:
            e.setopt(pycurl.OPENSOCKETFUNCTION, self._open_socket)

    # -- callbacks (libcurl calls them on the fetch loop's thread) ----------

    def _open_socket(self, purpose, address):
        family, socktype, protocol, where = address
        host = where[0]
        if not host_policy.is_public(host):
            name = urlsplit(self.url).hostname
            self.refused = f"{name} resolves to non-public address {host}"
            return pycurl.SOCKET_BAD  # libcurl gives up this address
        return socket.socket(family, socktype, protocol)

    def _header(self, line: bytes) -> None:
        now = time.monotonic()
        self.last_progress = now
        if self.first_byte is None:
            self.first_byte = now
        text = line.decode("iso-8859-1").strip()
        if text.startswith("HTTP/"):
            self.headers = {}  # a new answer (after 100 Continue, say)
            parts = text.split()
            self.code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            return None
        name, sep, value = text.partition(":")
        if not sep:
            return None
        self.headers[name.strip().lower()] = value.strip()
        if self._body_wanted() and name.strip().lower() == "content-length":
            length = value.strip()
            if length.isdigit() and int(length) > self.policy.max_bytes:
                self.too_large = (
                    f"Content-Length {length} > --max-bytes {self.policy.max_bytes}"
                )
                return -1  # aborts the transfer
        return None

    def _write(self, data: bytes):
        self.last_progress = time.monotonic()
        self.size += len(data)
        if self.size > self.policy.max_bytes:
            self.too_large = f"more than --max-bytes {self.policy.max_bytes}"
            return 0  # aborts the transfer
        if self._body_wanted():
            self.chunks.append(data)
            self.md5.update(data)
        return None  # an error or redirect body: read to keep the connection

    def _body_wanted(self) -> bool:
        return self.code == 200 or (self.code == 206 and self._ranged)

    # -- the answer ---------------------------------------------------------

    def ttfb(self) -> float | None:
        return None if self.first_byte is None else self.first_byte - self.started

    def outcome(self, errno: int, message: str):
        """A Download (200), (code, absolute next URL) for a redirect, or raises
        Attempt, once libcurl reported the transfer done (errno 0: no error)."""
        if self.aborted is not None:
            raise self.aborted
        if self.refused is not None:
            raise Attempt("refused", f"{self.refused}: {redact(self.url)}")
        if self.too_large is not None:
            raise Attempt("too_large", self.too_large, http_status=200)
        if errno:
            raise self._curl_failure(errno, message)
        code = self.code
        if self._body_wanted():
            data = b"".join(self.chunks)
            return Download(
                http_status=code,
                data=data,
                md5=self.md5.digest(),
                final_url=self.url,
                total_size=len(data) if code == 200 else self._range_total(),
            )
        if code in REDIRECTS:
            location = self.easy.getinfo(pycurl.REDIRECT_URL)
            if not self.headers.get("location") or not location:
                raise Attempt(
                    "http_error", f"HTTP {code} without Location", http_status=code
                )
            return code, location
        if code in (404, 410):
            raise Attempt("gone", f"HTTP {code}", http_status=code)
        if code == 429 or code >= 500:
            raise Attempt(
                "http_error",
                f"HTTP {code}",
                transient=True,
                http_status=code,
                wait=retry_after(self.headers.get("retry-after")),
            )
        raise Attempt("http_error", f"HTTP {code}", http_status=code)

    def _range_total(self) -> int | None:
        """The whole object's size a 206 states (`bytes 0-0/12345`), if any."""
        total = self.headers.get("content-range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None

    def _curl_failure(self, errno: int, message: str) -> Attempt:
        encoding = self.headers.get("content-encoding", "identity").lower()
        if errno == pycurl.E_BAD_CONTENT_ENCODING:
            if encoding not in DECODED:
                return Attempt(
                    "http_error",
                    f"unsupported Content-Encoding {encoding!r}",
                    http_status=self.code or None,
                )
            return Attempt(
                "connection_error",
                f"truncated {encoding} body",
                transient=True,
                http_status=self.code or None,
            )
        if errno == pycurl.E_OPERATION_TIMEDOUT:
            return Attempt("timeout", f"timed out: {message}", transient=True)
        if errno in (pycurl.E_UNSUPPORTED_PROTOCOL, pycurl.E_URL_MALFORMAT):
            return Attempt("refused", f"{message}: {redact(self.url)}")
        what = _NETWORK.get(errno)
        if what is not None:
            return Attempt(
                "connection_error",
                f"{what} (curl {errno}: {message[:160]})",
                transient=True,
                http_status=self.code or None,
            )
        return Attempt("error", f"curl {errno}: {message[:200]}", transient=True)
