"""Download: the outcome of fetching one URL, whatever fetched it (no Beam)."""

from __future__ import annotations

from dataclasses import dataclass


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
    # the object's size: len(data), or what a 206 to a ranged probe states
    total_size: int | None = None

    @property
    def ok(self) -> bool:
        return self.status is None
