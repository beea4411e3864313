"""HostLimits: grows while a host copes, halves on push-back (once a round),
pauses on Retry-After, holds while latency climbs."""

from __future__ import annotations

import pytest

from oibeam.transforms.fetch.host_limits import ANSWER, PUSH_BACK, HostLimits


def _round(limits: HostLimits, host: str, capacity: int, now: float) -> int:
    """Starts what the limit allows, then the host answers `capacity` of them
    and pushes back the rest; returns how many it answered."""
    started = 0
    while limits.can_start(host, now):
        limits.started(host)
        started += 1
    answered = min(started, capacity)
    for i in range(started):
        kind = ANSWER if i < answered else PUSH_BACK
        limits.finished(host, kind, now, latency=0.08)
    return answered


@pytest.mark.parametrize("capacity", [3, 10, 40])
def test_settles_near_what_the_host_takes(capacity):
    limits = HostLimits(start=8, ceiling=256)
    seen, answered = [], 0
    for r in range(400):
        got = _round(limits, "h", capacity, now=float(r))
        if r >= 200:
            seen.append(limits.limit("h"))
            answered += got
    mean = sum(seen) / len(seen)
    assert capacity * 0.5 <= mean <= capacity * 1.25, mean
    assert answered >= 0.6 * capacity * len(seen)  # most of what it can take


def test_grows_to_the_ceiling_when_nothing_pushes_back():
    limits = HostLimits(start=4, ceiling=200)
    for r in range(2000):
        _round(limits, "fast", 10_000, now=float(r))
    assert limits.limit("fast") == 200
    assert limits.limit("other") == 4  # hosts are apart


def test_slow_start_doubles_a_round_until_the_first_push_back():
    limits = HostLimits(start=8, ceiling=256)
    for r, expected in enumerate((16, 32, 64)):
        _round(limits, "far", 10_000, now=float(r))
        assert limits.limit("far") == expected
    # 64 sent: 40 answered (+40 in slow start), then 24 pushed back: one halving
    _round(limits, "far", 40, now=3.0)
    assert limits.limit("far") == (64 + 40) // 2
    _round(limits, "far", 10_000, now=4.0)  # then about +1 a round, not doubling
    assert 52 <= limits.limit("far") <= 53


def test_one_cut_per_round():
    limits = HostLimits(start=16, ceiling=64)
    for _ in range(16):
        limits.started("h")
    for _ in range(16):  # a whole round pushed back: one halving, not sixteen
        limits.finished("h", PUSH_BACK, now=0.0)
    assert limits.limit("h") == 8


def test_retry_after_pauses_the_host():
    limits = HostLimits(start=4)
    limits.started("h")
    limits.finished("h", PUSH_BACK, now=10.0, retry_after=5.0)
    assert not limits.can_start("h", 14.9)
    assert limits.can_start("h", 15.0)
    assert limits.can_start("g", 11.0)


def test_holds_while_latency_climbs():
    limits = HostLimits(start=10, ceiling=100)
    limits.started("h")
    limits.finished("h", ANSWER, 0.0, latency=0.05)
    before = limits.limit("h")
    for _ in range(200):  # the host takes twice as long and more: stop adding
        limits.started("h")
        limits.finished("h", ANSWER, 0.0, latency=0.5)
    assert limits.limit("h") == before


def test_refuses_inconsistent_bounds():
    with pytest.raises(ValueError):
        HostLimits(start=0)
    with pytest.raises(ValueError):
        HostLimits(start=10, ceiling=5)
