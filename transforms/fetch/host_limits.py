"""How many requests one host gets at once, learned as the fetch goes (no Beam,
no I/O here: the fetch loop asks and reports).

Each host starts at `start` requests in flight and adapts like TCP's congestion
window (slow start, then additive increase, multiplicative decrease):
- until the host first pushes back, every answer adds 1 (the limit doubles
  each round trip: 8, 16, 32... so a far host is soon kept busy); after that,
  1/limit (about +1 per round of `limit` answers); never above `ceiling`, and
  not while the host's latency climbs: once its time to first byte is over
  twice the best seen, the limit stops growing;
- a push-back (429, 503, a timeout, a refused or reset connection) halves the
  limit, at most once per round (the answers to requests sent before the cut
  say nothing new), never below 1;
- a Retry-After pauses the host: nothing new starts there until it passes.
So a polite default needs no tuning: a host that takes 200 requests at once
gets them, one that answers 429 above N settles near N.
"""

from __future__ import annotations

from dataclasses import dataclass

PUSH_BACK = "push_back"  # 429, 503, timeout, refused/reset: slow down
ANSWER = "answer"  # anything else the host answered: it copes


@dataclass
class _Host:
    limit: float
    in_flight: int = 0
    paused_until: float = 0.0
    best_latency: float | None = None
    latency: float | None = None  # moving average of time to first byte
    sent: int = 0  # requests started so far
    cut_at: int = -1  # `sent` when the limit was last cut
    slow_start: bool = True  # no push-back yet: grow by 1 an answer


class HostLimits:
    """Per-host request limits that adapt to the answers (not thread-safe:
    one fetch loop owns it)."""

    def __init__(self, start: int = 8, ceiling: int = 64, floor: int = 1) -> None:
        if not 1 <= floor <= start <= ceiling:
            raise ValueError("host limits need 1 <= floor <= start <= ceiling")
        self._start, self._ceiling, self._floor = start, ceiling, floor
        self._hosts: dict[str, _Host] = {}

    def _host(self, host: str) -> _Host:
        found = self._hosts.get(host)
        if found is None:
            found = self._hosts[host] = _Host(float(self._start))
        return found

    def limit(self, host: str) -> int:
        return int(self._host(host).limit)

    def in_flight(self, host: str) -> int:
        return self._host(host).in_flight

    def can_start(self, host: str, now: float) -> bool:
        h = self._host(host)
        return now >= h.paused_until and h.in_flight < int(h.limit)

    def paused_until(self, host: str) -> float:
        return self._host(host).paused_until

    def started(self, host: str) -> None:
        h = self._host(host)
        h.in_flight += 1
        h.sent += 1

    def finished(
        self,
        host: str,
        kind: str,
        now: float,
        latency: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        """One request to `host` ended: `kind` PUSH_BACK or ANSWER; `latency`
        its time to first byte (s), when it had one; `retry_after` the
        server's Retry-After (s), when it sent one."""
        h = self._host(host)
        h.in_flight = max(0, h.in_flight - 1)
        if retry_after is not None and retry_after > 0:
            h.paused_until = max(h.paused_until, now + retry_after)
        if kind == PUSH_BACK:
            # Once per round: requests sent before the last cut answer for
            # the old limit.
            h.slow_start = False
            if h.sent > h.cut_at + max(1, int(h.in_flight)):
                h.limit = max(float(self._floor), h.limit / 2)
                h.cut_at = h.sent
            return
        if latency is not None:
            h.best_latency = (
                latency if h.best_latency is None else min(h.best_latency, latency)
            )
            h.latency = (
                latency if h.latency is None else 0.8 * h.latency + 0.2 * latency
            )
        if h.latency is not None and h.latency > 2 * h.best_latency:
            return  # the host slows down as we add requests: hold
        step = 1.0 if h.slow_start else 1 / h.limit
        h.limit = min(float(self._ceiling), h.limit + step)
