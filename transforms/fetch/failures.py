"""How a failed attempt at a URL is told (no Beam here): its status from the
vocabulary, whether it is worth another try, and when the server asked us to
come back; descriptions never carry credentials."""

from __future__ import annotations

import email.utils
import http.client
import socket
import time
import zlib

from oibeam.transforms.fetch.host_policy import redact


class Attempt(Exception):
    """One attempt failed; `transient` says whether to try again."""

    def __init__(self, status, error, transient=False, http_status=None, wait=None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.transient = transient
        self.http_status = http_status
        self.wait = wait  # the server's Retry-After, seconds


def stale(error: Exception) -> bool:
    """An idle kept-alive connection the server closed before our request."""
    return isinstance(
        error,
        (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError),
    )


def classify(error: Exception, url: str) -> Attempt:
    if isinstance(error, Attempt):
        return error
    if isinstance(error, (socket.timeout, TimeoutError)):
        return Attempt("timeout", describe(error), transient=True)
    if isinstance(error, (OSError, http.client.HTTPException, zlib.error)):
        return Attempt("connection_error", describe(error), transient=True)
    if isinstance(error, (ValueError, UnicodeError)):  # e.g. http.client.InvalidURL
        return Attempt("refused", f"{type(error).__name__}: {redact(url)}")
    return Attempt("error", describe(error), transient=True)


def retry_after(value: str | None) -> float | None:
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


def describe(error: Exception) -> str:
    """A short, credential-free description of a network error."""
    return f"{type(error).__name__}: {str(error)[:200]}"
