#!/usr/bin/env python3
"""Two minimal event-driven fetch loops, to choose the engine of `oibeam fetch`.

    python benchmarks/fetch_engines.py --engine pycurl|aiohttp --images images.csv
        [--processes 2] [--in-flight 64] [--per-host 64] [--buffer-kb 256]
        [--loop uvloop|asyncio]

Both read the same Open Images images.csv (OriginalURL, OriginalSize,
OriginalMD5), split its rows over P processes (row i to process i mod P) and,
in each process, keep --in-flight requests going from one event loop:
  - pycurl: libcurl's multi interface driven by socket_action from an epoll
    selector (CURLMOPT_SOCKETFUNCTION / TIMERFUNCTION); one easy handle per
    slot, reused, so the multi handle's connection cache keeps connections
    alive; CURLMOPT_MAX_HOST_CONNECTIONS caps connections per host (libcurl
    queues the transfers beyond it);
  - aiohttp: asyncio (uvloop when installed) with one ClientSession whose
    TCPConnector caps connections in all (limit) and per host (limit_per_host);
    --in-flight worker coroutines pull rows from a shared iterator.
Each streams every body into MD5 as it arrives (nothing is stored), then checks
status 200, size and MD5 against the CSV. No retries, no redirects: a failure
is counted by kind. This is the floor of what a fetcher built on the engine
costs; the fetcher adds shards, statuses and politeness on top.

Prints one JSON line: images, counts by status, bytes, new connections opened
(keep-alive reuse shows as fewer than images), wall seconds, per process.
Exits 1 unless every image is ok.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import hashlib
import json
import selectors
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path


def read_rows(path: Path, part: int, parts: int) -> list[tuple[str, int, bytes]]:
    """(url, size, md5 digest) of every parts-th row of an images.csv."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        (r["OriginalURL"], int(r["OriginalSize"]), base64.b64decode(r["OriginalMD5"]))
        for r in rows[part::parts]
    ]


def verdict(code: int, size: int, digest: bytes, want_size: int, want: bytes) -> str:
    if code != 200:
        return f"http_{code}"
    if size != want_size:
        return "bad_size"
    return "ok" if digest == want else "bad_md5"


# --- libcurl multi (pycurl) ----------------------------------------------------------


class _Transfer:
    """One slot: a reused easy handle, and the body digest of its current row."""

    def __init__(self, pycurl, buffer: int) -> None:
        self.curl = pycurl.Curl()
        c = self.curl
        c.setopt(pycurl.NOSIGNAL, 1)
        c.setopt(pycurl.CONNECTTIMEOUT, 10)
        c.setopt(pycurl.TIMEOUT, 60)
        c.setopt(pycurl.BUFFERSIZE, buffer)
        c.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        c.setopt(pycurl.WRITEFUNCTION, self.write)
        c.transfer = self
        self.row: tuple[str, int, bytes] | None = None

    def start(self, row: tuple[str, int, bytes]) -> None:
        self.row, self.md5, self.size = row, hashlib.md5(), 0
        self.curl.setopt(self.curl.URL, row[0])

    def write(self, chunk: bytes) -> None:
        self.md5.update(chunk)
        self.size += len(chunk)


def fetch_pycurl(rows, in_flight: int, per_host: int, buffer: int) -> dict:
    import pycurl

    selector = selectors.DefaultSelector()
    timer = [time.monotonic()]  # when libcurl wants socket_action(TIMEOUT)
    events = {
        pycurl.POLL_IN: selectors.EVENT_READ,
        pycurl.POLL_OUT: selectors.EVENT_WRITE,
        pycurl.POLL_INOUT: selectors.EVENT_READ | selectors.EVENT_WRITE,
    }

    def on_socket(what: int, fd: int, multi, data) -> None:
        if what == pycurl.POLL_REMOVE:
            if fd in selector.get_map():
                selector.unregister(fd)
        elif fd in selector.get_map():
            selector.modify(fd, events[what])
        else:
            selector.register(fd, events[what])

    def on_timer(ms: int) -> None:
        timer[0] = None if ms < 0 else time.monotonic() + ms / 1000

    multi = pycurl.CurlMulti()
    multi.setopt(pycurl.M_SOCKETFUNCTION, on_socket)
    multi.setopt(pycurl.M_TIMERFUNCTION, on_timer)
    multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, per_host)
    # The connection cache must hold more than `in_flight` connections: each
    # host keeps as many as its peak of concurrent transfers, and a cache of
    # exactly `in_flight` closes an idle one for nearly every new transfer
    # (4,223 connections for 5,000 images at 2 x 64 in flight over 16 hosts).
    multi.setopt(pycurl.M_MAXCONNECTS, 4 * in_flight)
    todo = iter(rows)
    free = [_Transfer(pycurl, buffer) for _ in range(in_flight)]
    counts, stats = Counter(), Counter()

    def refill() -> None:
        while free:
            row = next(todo, None)
            if row is None:
                return
            transfer = free.pop()
            transfer.start(row)
            multi.add_handle(transfer.curl)

    def finish(curl, error: str | None) -> None:
        t = curl.transfer
        stats["connections"] += curl.getinfo(pycurl.NUM_CONNECTS)
        if error is None:
            code = curl.getinfo(pycurl.RESPONSE_CODE)
            counts[verdict(code, t.size, t.md5.digest(), t.row[1], t.row[2])] += 1
            stats["bytes"] += t.size
        else:
            counts[error] += 1
        multi.remove_handle(curl)
        free.append(t)

    refill()
    active = len(rows)
    while active:
        due = timer[0]
        wait = 1.0 if due is None else max(0.0, due - time.monotonic())
        ready = selector.select(wait)
        for key, mask in ready:
            flags = (pycurl.CSELECT_IN if mask & selectors.EVENT_READ else 0) | (
                pycurl.CSELECT_OUT if mask & selectors.EVENT_WRITE else 0
            )
            multi.socket_action(key.fd, flags)
        if not ready or (timer[0] is not None and timer[0] <= time.monotonic()):
            multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
        while True:
            queued, done, failed = multi.info_read()
            for curl in done:
                finish(curl, None)
            for curl, code, _message in failed:
                finish(curl, f"curl_{code}")
            active -= len(done) + len(failed)
            if not queued:
                break
        refill()
    multi.close()
    return {"counts": dict(counts), **stats}


# --- asyncio + aiohttp -------------------------------------------------------------


async def fetch_aiohttp(rows, in_flight: int, per_host: int, buffer: int) -> dict:
    import aiohttp

    counts, stats = Counter(), Counter()

    async def on_connection(session, context, params) -> None:
        stats["connections"] += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_connection)
    connector = aiohttp.TCPConnector(
        limit=in_flight, limit_per_host=per_host, keepalive_timeout=60
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=60, sock_connect=10),
        auto_decompress=False,
        read_bufsize=buffer,
        skip_auto_headers=("Accept-Encoding",),
        trace_configs=[trace],
    )
    todo = iter(rows)

    async def worker() -> None:
        for url, want_size, want in todo:
            md5, size = hashlib.md5(), 0
            try:
                async with session.get(url, allow_redirects=False) as response:
                    async for chunk in response.content.iter_any():
                        md5.update(chunk)
                        size += len(chunk)
                    code = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                counts[type(e).__name__] += 1
                continue
            counts[verdict(code, size, md5.digest(), want_size, want)] += 1
            stats["bytes"] += size

    async with session:
        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return {"counts": dict(counts), **stats}


def run_aiohttp(rows, in_flight: int, per_host: int, buffer: int, loop: str) -> dict:
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(fetch_aiohttp(rows, in_flight, per_host, buffer))


# --- processes and report -------------------------------------------------------------


def run_part(args: argparse.Namespace) -> dict:
    rows = read_rows(Path(args.images), args.part, args.processes)
    start = time.perf_counter()
    buffer = args.buffer_kb * 1024
    if args.engine == "pycurl":
        result = fetch_pycurl(rows, args.in_flight, args.per_host, buffer)
    else:
        result = run_aiohttp(rows, args.in_flight, args.per_host, buffer, args.loop)
    result.update(images=len(rows), wall_s=round(time.perf_counter() - start, 2))
    return result


def default_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=("pycurl", "aiohttp"), required=True)
    parser.add_argument("--images", required=True, help="an images.csv")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=64, help="per process")
    parser.add_argument(
        "--per-host", type=int, default=64, help="connections per host per process"
    )
    parser.add_argument("--buffer-kb", type=int, default=256, help="read size")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=None)
    parser.add_argument("--part", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.loop = args.loop or default_loop()
    return args


def main() -> None:
    args = parse_args()
    if args.part is not None:
        print(json.dumps(run_part(args)))
        return
    start = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, __file__, *sys.argv[1:], "--part", str(part)],
            stdout=subprocess.PIPE,
        )
        for part in range(args.processes)
    ]
    parts = [json.loads(child.communicate()[0] or "{}") for child in children]
    counts = Counter()
    for part in parts:
        counts.update(part.get("counts", {}))
    images = sum(p.get("images", 0) for p in parts)
    report = {
        "engine": args.engine + (f"+{args.loop}" if args.engine == "aiohttp" else ""),
        "processes": args.processes,
        "in_flight": args.in_flight,
        "per_host": args.per_host,
        "images": images,
        "counts": dict(counts),
        "bytes": sum(p.get("bytes", 0) for p in parts),
        "connections": sum(p.get("connections", 0) for p in parts),
        "wall_s": round(time.perf_counter() - start, 2),
        "parts_wall_s": [p.get("wall_s") for p in parts],
    }
    print(json.dumps(report))
    failed = any(child.returncode for child in children)
    if failed or counts.get("ok", 0) != images or images == 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
