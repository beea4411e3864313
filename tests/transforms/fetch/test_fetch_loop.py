"""The fetch loop keeps hundreds of requests in flight from one HttpFetcher,
and learns how many a host takes: real servers on loopback addresses."""

from __future__ import annotations

import time

from oibeam.transforms.fetch.fetcher import FetchPolicy, HttpFetcher

from support.busy_server import BusyServer

HOSTS = [f"127.0.0.{i}" for i in range(1, 9)]


def test_hundreds_of_requests_in_flight_from_one_fetcher():
    with BusyServer(HOSTS, hold=0.5) as server:
        fetcher = HttpFetcher(
            FetchPolicy(allow_private_hosts=True, timeout=10, deadline=60)
        )
        futures = [
            fetcher.submit(server.url(HOSTS[i % len(HOSTS)], f"{i}.jpg"))
            for i in range(800)
        ]
        results = [f.result() for f in futures]
        fetcher.close()
    assert [r.status for r in results if not r.ok] == []
    assert server.peak >= 200, server.peak
    assert server.answered == 800 and server.refused == 0


def test_a_host_that_refuses_above_n_gets_about_n_and_no_image_fails():
    n = 12
    with BusyServer(["127.0.0.1"], hold=0.1, limit=n) as server:
        fetcher = HttpFetcher(
            FetchPolicy(
                allow_private_hosts=True,
                timeout=10,
                deadline=120,
                retries=30,
                backoff=0.05,
                max_backoff=0.4,
            )
        )
        futures = [
            fetcher.submit(server.url("127.0.0.1", f"{i}.jpg")) for i in range(400)
        ]
        results = [f.result() for f in futures]
        learned = fetcher.host_limit("127.0.0.1")
        fetcher.close()
    assert [r.status for r in results if not r.ok] == []
    assert n // 2 <= learned <= 2 * n, learned
    # It backs off: most requests are answered, not refused.
    assert server.refused < 0.5 * server.answered, (server.refused, server.answered)


def test_requests_waiting_for_a_busy_host_cost_no_cpu():
    """Four requests for a host that takes one at a time, each held 0.5 s:
    the loop sleeps while they wait, it does not spin."""
    with BusyServer(["127.0.0.1"], hold=0.5) as server:
        fetcher = HttpFetcher(
            FetchPolicy(allow_private_hosts=True, timeout=10, max_per_host=1)
        )
        before = time.process_time()
        started = time.monotonic()
        futures = [
            fetcher.submit(server.url("127.0.0.1", f"{i}.jpg")) for i in range(4)
        ]
        assert all(f.result().ok for f in futures)
        wall = time.monotonic() - started
        cpu = time.process_time() - before
        fetcher.close()
    assert wall >= 1.9 and server.peak == 1
    assert cpu < 0.25 * wall, (cpu, wall)
