#!/usr/bin/env python3
"""Benchmark `oibeam fetch` against img2dataset and curl on the same URL list.

    python benchmarks/bench_fetch.py [--images 5000] [--processes 2]
        [--concurrency 16] [--repeat 2] [--mean-kb 460] [--no-curl-to-files]
        [--server auto|nginx|python] [--keep-outputs] [--oibeam-arg=--flag=value]
        [--startup-images 20] [--tools curl,curl-files,oibeam,img2dataset]
    python benchmarks/bench_fetch.py --rtt 80ms [--congestion bbr,cubic]
        [--hosts 16] [--tools curl:16,curl:256,oibeam,oibeam:128,...]

1. writes N synthetic originals (cached per N, seed and mean size): sizes drawn
   from a log-normal clipped to 100 KB .. 2 MB (mean ~--mean-kb), each a real
   640x480 JPEG padded with random bytes to its size (decoders ignore trailing
   data), named <ImageID>.jpg; then, per run, an Open Images style images.csv
   (OriginalURL, OriginalSize, OriginalMD5), a URL list for curl and a Parquet
   URL list for img2dataset, all pointing at
2. a local server on 127.0.0.1: nginx if installed (config, pid, logs and temp
   files in the work dir), else a threaded keep-alive Python server that sends
   files with socket.sendfile. It is stopped at the end in every case.
3. runs, each in its own process tree with the same number of processes P:
   - curl, P `curl --parallel` processes at once writing to /dev/null (raw
     transfer) and, unless --no-curl-to-files, writing each image to a file on
     the same disk as the other outputs (transfer + store);
   - `oibeam fetch` on the local runner with --direct_num_workers P (threads
     of one process below 20,000 images, processes from there on: oibeam's own
     choice) and --concurrency C; every image must end with status ok in its
     manifest;
   - img2dataset (webdataset, original bytes kept, P processes, C threads, 4
     shards per process); every image must be a success in its stats files;
   - pycurl and aiohttp: the two minimal event-driven fetch loops of
     fetch_engines.py (P processes, C in flight each, MD5 checked).
   A tool may carry its concurrency, `curl:256`; a bare name takes
   --concurrency or, when that is not given, 16 on loopback and the tool's
   own default under --rtt (oibeam 256, img2dataset 256 threads, curl 50,
   the engines 64).
   Each tool runs --repeat times (outputs cleared in between, tools interleaved);
   the best wall time counts, all are reported. oibeam and img2dataset also
   run --repeat times on the first --startup-images images: the best of those
   is the tool's start-up, and (N - K) / (wall - start-up) its steady rate, the
   one a run over millions of images sees.
4. prints images/s, MB/s, CPU per image (user + system of the whole process
   tree, from os.wait4) and peak memory (sum of the tree's RSS, sampled every
   0.2 s: wait4's ru_maxrss would include this script's own RSS at the fork),
   and oibeam's ratios to img2dataset and to both curl runs.

With --rtt (80ms, 200ms, or 0 for no delay), the server and the clients are
put in two network namespaces of their own with that round trip between them
(delayed_network.py: a veth pair and an NFQUEUE delay; root only, removed at
exit): nginx listens on --hosts addresses, the URLs spread evenly over them as
Open Images URLs are over the 16 Flickr hosts, every client runs in the client
namespace, and each round of tools runs once per server TCP congestion control
of --congestion (BBR keeps its window on idle keep-alive connections, CUBIC
restarts slow start), interleaved.

Targets (informative, not enforced): oibeam fetches at least 2x as many
images/s as img2dataset with the same number of processes, and at least 30% of
curl's rate.

A JSON line per run is appended to WORKDIR/results.jsonl; logs and inputs stay
in WORKDIR/run, outputs are removed unless --keep-outputs. Exits non-zero when
oibeam did not fetch every image with status ok.

One file of ~800 lines on purpose: a benchmark is copied and run as one
script, beside the others in benchmarks/, and reads top to bottom in the
order above (inputs, server, runs, report).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import hashlib
import io
import json
import math
import os
import platform
import pwd
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from importlib import metadata
from pathlib import Path

import numpy as np
from delayed_network import (
    CONGESTION,
    DelayedNetwork,
    NetworkUnavailable,
    parse_rtt,
)

ROOT = Path(__file__).resolve().parent.parent
MIN_BYTES, MAX_BYTES = 100_000, 2_000_000
SIGMA = 0.6  # log-normal shape of the image sizes
CSV_HEADER = (
    "ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,"
    "Author,Title,OriginalSize,OriginalMD5"
)
TOOLS = ("curl", "curl-files", "oibeam", "img2dataset", "pycurl", "aiohttp")
LOOPBACK_TOOLS = "curl,curl-files,oibeam,img2dataset"
NETWORK_TOOLS = (
    "curl:16,curl:256,oibeam,oibeam:128,img2dataset,img2dataset:512,"
    "pycurl:64,pycurl:256,aiohttp:64,aiohttp:256"
)
ENGINES = Path(__file__).resolve().parent / "fetch_engines.py"


# --- the images -------------------------------------------------------------


def image_sizes(rng: np.random.Generator, n: int, mean_kb: float) -> np.ndarray:
    """n sizes from a log-normal clipped to MIN_BYTES..MAX_BYTES, mean ~mean_kb."""
    target = mean_kb * 1000
    mu = math.log(target) - SIGMA**2 / 2
    draws = rng.standard_normal(n)
    for _ in range(20):  # clipping moves the mean: shift mu until it is back
        sizes = np.clip(np.exp(mu + SIGMA * draws), MIN_BYTES, MAX_BYTES)
        mu += math.log(target / sizes.mean())
    return sizes.astype(np.int64)


def base_jpegs(rng: np.random.Generator, count: int = 4) -> list[bytes]:
    """A few real 640x480 JPEGs (smooth noise, well under MIN_BYTES each)."""
    from PIL import Image

    jpegs = []
    for _ in range(count):
        noise = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
        image = Image.fromarray(noise).resize((640, 480), Image.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        jpegs.append(buffer.getvalue())
    return jpegs


def make_images(folder: Path, n: int, seed: int, mean_kb: float) -> list[dict]:
    """Writes (once) the images; returns [{id, size, md5}] (md5 in base64)."""
    marker = folder / "images.json"
    if marker.exists():
        return json.loads(marker.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = image_sizes(rng, n, mean_kb)
    return write_images(folder, rng, sizes, base_jpegs(rng))


def write_images(folder: Path, rng, sizes: np.ndarray, jpegs: list[bytes]):
    """One image per size under random ImageIDs: a real JPEG of `jpegs` (in
    turn) padded with random bytes; records them in folder/images.json and
    returns [{id, size, md5}] (md5 in base64)."""
    n = len(sizes)
    ids = sorted({f"{int(k):016x}" for k in rng.integers(0, 2**63, n * 2)})
    ids = [ids[i] for i in rng.permutation(len(ids))[:n]]
    images = []
    sizes = sizes.astype(np.int64).tolist()
    for i, (image_id, size) in enumerate(zip(ids, sizes, strict=True)):
        jpeg = jpegs[i % len(jpegs)]
        data = jpeg + rng.bytes(size - len(jpeg))
        (folder / f"{image_id}.jpg").write_bytes(data)
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        images.append({"id": image_id, "size": size, "md5": md5})
    (folder / "images.json").write_text(json.dumps(images))
    return images


# --- the inputs of each tool ---------------------------------------------------


def image_url(image: dict, base_urls: list[str]) -> str:
    """The image's URL on one of the server's addresses, picked by its (random)
    ImageID: spread evenly, as Open Images URLs are over the Flickr hosts."""
    base_url = base_urls[int(image["id"], 16) % len(base_urls)]
    return f"{base_url}/{image['id']}.jpg"


def write_images_csv(path: Path, images: list[dict], base_urls: list[str]) -> None:
    """An Open Images (V1 final) images.csv whose OriginalURLs are on our server."""
    lines = [CSV_HEADER]
    for image in images:
        url = image_url(image, base_urls)
        base_url = url.rsplit("/", 1)[0]
        lines.append(
            f"{image['id']},train,{url},{base_url}/photos/{image['id']},"
            "https://creativecommons.org/licenses/by/2.0/,"
            f"{base_url}/people/bench,bench,synthetic {image['id']},"
            f"{image['size']},{image['md5']}"
        )
    path.write_text("\n".join(lines) + "\n")


def write_url_parquet(path: Path, images: list[dict], base_urls: list[str]) -> None:
    """img2dataset's input: columns url and ImageID (saved with each sample)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "url": [image_url(image, base_urls) for image in images],
            "ImageID": [image["id"] for image in images],
        }
    )
    pq.write_table(table, path)


def write_curl_configs(
    folder: Path,
    images: list[dict],
    base_urls: list[str],
    parts: int,
    out: Path | None,
    name: str = "curl",
) -> list[Path]:
    """`parts` curl config files (-K) splitting the URLs; output to /dev/null
    or to out/<ImageID>.jpg."""
    configs = []
    for part in range(parts):
        lines = []
        for image in images[part::parts]:
            target = f"{out}/{image['id']}.jpg" if out else "/dev/null"
            lines.append(f'url = "{image_url(image, base_urls)}"')
            lines.append(f'output = "{target}"')
        config = folder / f"{name}-{'files' if out else 'null'}-{part}.cfg"
        config.write_text("\n".join(lines) + "\n")
        configs.append(config)
    return configs


# --- the server ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_config(prefix: Path, root: Path, listen: list[str]) -> Path:
    """A minimal nginx.conf serving `root` on `listen` (address:port each),
    with every path inside `prefix`."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    temp = prefix / "temp"
    temp.mkdir(parents=True, exist_ok=True)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {temp}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    listens = "\n".join(f"        listen {address};" for address in listen)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""{"user " + user + ";" if os.geteuid() == 0 else ""}
worker_processes {os.cpu_count() or 1};
pid {prefix}/nginx.pid;
error_log {prefix}/nginx-error.log warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
    types {{ image/jpeg jpg; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    access_log off;
{temp_paths}
    server {{
{listens}
        root {root};
    }}
}}
"""
    )
    return conf


def find_nginx() -> str | None:
    """nginx on PATH or in the sbin folders (often not on a user's PATH)."""
    return shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def start_server(
    root: Path, prefix: Path, choice: str, network=None
) -> tuple[subprocess.Popen, list[str], str]:
    """Starts nginx (choice auto: if installed) or the Python fallback on a free
    port of 127.0.0.1, or, given a DelayedNetwork, nginx on port 80 of each of
    its server addresses inside its server namespace: (process, base URLs,
    which server)."""
    if network is None:
        listen = [f"127.0.0.1:{free_port()}"]
    else:
        listen = [f"{address}:80" for address in network.addresses]
    nginx = find_nginx() if choice != "python" else None
    if (choice == "nginx" or network is not None) and not nginx:
        sys.exit("nginx is not installed (--rtt needs it; apt-get install nginx)")
    if nginx:
        conf = nginx_config(prefix, root, listen)
        cmd = [nginx, "-p", str(prefix), "-c", str(conf), "-e", "stderr"]
        cmd += ["-g", "daemon off;"]
        kind = "nginx"
    else:
        port = listen[0].rsplit(":", 1)[1]
        cmd = [sys.executable, __file__, "--serve", str(root), port]
        kind = "python"
    if network is not None:
        cmd = [*network.server_prefix, *cmd]
    log = open(prefix / f"{kind}.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base_urls = [f"http://{address}" for address in listen]
    for base_url in base_urls:
        wait_until_serving(proc, base_url, network)
    return proc, base_urls, kind


def wait_until_serving(proc: subprocess.Popen, base_url: str, network=None) -> None:
    """Returns once base_url answers (asked from the client namespace, if any)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited with {proc.returncode}")
        if network is not None:
            probe = ["curl", "-sf", "-o", "/dev/null", "--max-time", "2"]
            probe = [*network.client_prefix, *probe, f"{base_url}/images.json"]
            if subprocess.run(probe).returncode == 0:
                return
            time.sleep(0.1)
            continue
        try:
            urllib.request.urlopen(f"{base_url}/images.json", timeout=1).read(1)
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"the server did not answer on {base_url}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()  # nginx: fast shutdown
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def serve_python(root: Path, port: int) -> None:
    """The fallback server: threaded, HTTP/1.1 keep-alive, socket.sendfile."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = root / Path(self.path.split("?", 1)[0]).name
            if not path.is_file():
                self.send_error(404)
                return
            with open(path, "rb") as f:
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(os.fstat(f.fileno()).st_size))
                self.end_headers()
                self.connection.sendfile(f)

        def log_message(self, *args) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    Server(("127.0.0.1", port), Handler).serve_forever()


# --- measuring -------------------------------------------------------------------


def process_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, RSS bytes, CPU ticks) of every process, from /proc."""
    page = os.sysconf("SC_PAGE_SIZE")
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        ppid, ticks = int(fields[1]), int(fields[11]) + int(fields[12])
        table[int(entry.name)] = (ppid, int(fields[21]) * page, ticks)
    return table


def tree_of(pid: int, table: dict) -> list[int]:
    """pid and all its descendants in `table`."""
    children: dict[int, list[int]] = {}
    for p, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(p)
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return [p for p in tree if p in table]


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a live process tree (for the server)."""
    table = process_table()
    ticks = sum(table[p][2] for p in tree_of(pid, table))
    return ticks / os.sysconf("SC_CLK_TCK")


class PeakTreeRss(threading.Thread):
    """Samples the summed RSS of a process tree every 0.2 s; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak = pid, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            table = process_table()
            rss = sum(table[p][1] for p in tree_of(self.pid, table))
            self.peak = max(self.peak, rss)
            if self._stop_event.wait(0.2):
                return

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def measure(cmd: list[str], log: Path, server_pid: int) -> dict:
    """Runs cmd (output to `log`): exit code, wall s, CPU s of the process tree
    (os.wait4), peak of the summed tree RSS (sampled), and the server's CPU s
    over the run. wait4's ru_maxrss is kept as max_rss_mb but not used: Linux
    counts in it the RSS of this (launching) process at the fork. A command
    prefixed with `ip netns exec NS` is the same process tree: ip execs it."""
    server_before = tree_cpu_seconds(server_pid)
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        sampler = PeakTreeRss(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        peak_tree = sampler.stop()
    return {
        "exit": os.waitstatus_to_exitcode(status),
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "max_rss_mb": round(usage.ru_maxrss / 1024),
        "peak_mb": round(peak_tree / 2**20),
        "server_cpu_s": round(tree_cpu_seconds(server_pid) - server_before, 2),
    }


def clear(folder: Path) -> None:
    """Empties an output dir and flushes dirty pages so no run pays for another's
    writes."""
    shutil.rmtree(folder, ignore_errors=True)
    os.sync()


# --- the tools ---------------------------------------------------------------------


def parallel(cmds: list[list[str]], outputs: list[Path]) -> list[str]:
    """One shell running cmds at once, each with its stdout to its own file
    (so their lines cannot interleave); exits non-zero if any of them did."""
    starts = " ".join(
        f"{shlex.join(c)} > {shlex.quote(str(o))} & p{i}=$!;"
        for i, (c, o) in enumerate(zip(cmds, outputs, strict=True))
    )
    waits = " ".join(f"wait $p{i} || s=1;" for i in range(len(cmds)))
    return ["sh", "-c", f"s=0; {starts} {waits} exit $s"]


def curl_command(configs: list[Path], concurrency: int) -> list[str]:
    """P curls at once; each prints "<HTTP status> <bytes>" per URL to
    <config>.out."""
    write_out = "%{http_code} %{size_download}\n"
    return parallel(
        [
            # --no-progress-meter, not -s: curl 7.88 --parallel ignores -s for
            # its progress meter (and -s would hide error messages too)
            ["curl", "--parallel", "--parallel-max", str(concurrency)]
            + ["--no-progress-meter", "-w", write_out, "-K", str(c)]
            for c in configs
        ],
        [c.with_suffix(".out") for c in configs],
    )


def check_curl(configs: list[Path], images: list[dict], out: Path | None) -> str | None:
    """None if every URL answered 200 with the full size (and, with `out`,
    every file is there with its size); else what is wrong."""
    text = "".join(c.with_suffix(".out").read_text() for c in configs)
    lines = [line.split() for line in text.splitlines() if line.strip()]
    ok = sum(1 for line in lines if len(line) == 2 and line[0] == "200")
    received = sum(int(line[1]) for line in lines if len(line) == 2)
    expected = sum(image["size"] for image in images)
    if ok != len(images) or received != expected:
        return f"{ok:,} of {len(images):,} answered 200; {received:,} of {expected:,} B"
    if out is not None:
        stored = sum(p.stat().st_size for p in out.iterdir())
        if stored != expected:
            return f"{stored:,} of {expected:,} bytes stored in {out}"
    return None


def oibeam_command(
    csv: Path, out: Path, args: argparse.Namespace, concurrency: int | None
) -> list[str]:
    """oibeam fetch with P workers, --concurrency C (None: its default)."""
    return [
        sys.executable,
        "-m",
        "oibeam.pipelines",
        "fetch",
        "--images",
        str(csv),
        "--allow-private-hosts",
        "--output",
        str(out),
        "--overwrite",
        f"--direct_num_workers={args.processes}",
        *(["--concurrency", str(concurrency)] if concurrency else []),
        *args.oibeam_arg,
    ]


def check_oibeam(out: Path, n: int) -> str | None:
    """None if the manifest says every selected image is ok; else its counts."""
    manifest = out / "manifest.json"
    if not manifest.exists():
        return "no manifest.json (the run failed)"
    counts = json.loads(manifest.read_text()).get("counts", {})
    if counts.get("selected") == n and counts.get("status:ok") == n:
        return None
    return f"counts {counts}"


def find_img2dataset() -> str | None:
    if os.access("/tmp/i2d/bin/img2dataset", os.X_OK):
        return "/tmp/i2d/bin/img2dataset"
    return shutil.which("img2dataset")


def img2dataset_command(
    exe: str, urls: Path, out: Path, n: int, processes: int, threads: int | None
) -> list[str]:
    """img2dataset with P processes, C threads each (None: its default, 256)."""
    # Shards are img2dataset's unit of work per process: 4 per process, so all
    # P processes are busy (its default, 10,000 per shard, would use only one).
    per_shard = max(1, math.ceil(n / (4 * processes)))
    return [
        exe,
        f"--url_list={urls}",
        "--input_format=parquet",
        "--url_col=url",
        '--save_additional_columns=["ImageID"]',
        "--output_format=webdataset",
        "--resize_mode=no",
        "--disable_all_reencoding=True",
        f"--processes_count={processes}",
        *([f"--thread_count={threads}"] if threads else []),
        f"--number_sample_per_shard={per_shard}",
        f"--output_folder={out}",
    ]


def check_img2dataset(out: Path, n: int) -> str | None:
    """None if its stats files count n successes; else what they say."""
    stats = [json.loads(p.read_text()) for p in out.glob("*_stats.json")]
    successes = sum(s.get("successes", 0) for s in stats)
    if successes == n:
        return None
    statuses: dict[str, int] = {}
    for s in stats:
        for status, count in s.get("status_dict", {}).items():
            statuses[status] = statuses.get(status, 0) + count
    return f"{successes:,} of {n:,} succeeded; statuses {statuses}"


def engine_command(
    engine: str, csv: Path, processes: int, in_flight: int, per_host: int
) -> list[str]:
    """fetch_engines.py: P processes, `in_flight` requests in flight each."""
    return [
        sys.executable,
        str(ENGINES),
        "--engine",
        engine,
        "--images",
        str(csv),
        "--processes",
        str(processes),
        "--in-flight",
        str(in_flight),
        "--per-host",
        str(per_host),
    ]


def check_engine(log: Path, n: int) -> str | None:
    """None if the engine's report (its last line) counts n images ok."""
    lines = log.read_text().strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return "no report (the run failed)"
    if report.get("counts", {}).get("ok") == n:
        return None
    return f"counts {report.get('counts')}"


# --- reporting ---------------------------------------------------------------------


def versions(i2d: str | None, server: str) -> dict:
    found = {"python": platform.python_version()}
    for package in ("apache-beam", "requests", "pyarrow"):
        found[package] = metadata.version(package)
    for package in ("pycurl", "aiohttp", "uvloop"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    found["curl"] = subprocess.run(
        ["curl", "--version"], capture_output=True, text=True
    ).stdout.split()[1]
    if i2d:
        python = Path(i2d).with_name("python")
        found["img2dataset"] = subprocess.run(
            [str(python if python.exists() else sys.executable), "-c"]
            + ["import importlib.metadata as m; print(m.version('img2dataset'))"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    if server == "nginx":
        found["nginx"] = subprocess.run(
            [find_nginx(), "-v"],
            capture_output=True,
            text=True,
        ).stderr.strip()
    return found


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {os.cpu_count()} cores ({model}), {memory:.0f} GiB"


def summarize(
    runs: list[dict], n: int, total_bytes: int, startup: list[dict] | None, k: int
) -> dict:
    """The best (shortest) run of a tool, its rates, every run's wall time and,
    given its start-up runs over the first k images, its steady rate."""
    best = min(runs, key=lambda r: r["wall_s"])
    walls = [r["wall_s"] for r in runs]
    summary = {
        **best,
        "walls_s": walls,
        "images_per_s": round(n / best["wall_s"], 1),
        "mb_per_s": round(total_bytes / 1e6 / best["wall_s"], 1),
        "cpu_ms_per_image": round(1000 * best["cpu_s"] / n, 2),
        "median_images_per_s": round(n / statistics.median(walls), 1),
        "runs_images_per_s": [round(n / w, 1) for w in walls],
        "runs_cpu_ms_per_image": [round(1000 * r["cpu_s"] / n, 2) for r in runs],
        "runs_peak_mb": [r["peak_mb"] for r in runs],
        "runs_load_before": [r.get("load_before") for r in runs],
        "problems": [r["problem"] for r in runs if r.get("problem")],
        "startup_s": None,
        "steady_images_per_s": round(n / best["wall_s"], 1),
    }
    if startup:
        first = min(startup, key=lambda r: r["wall_s"])
        summary["startup_s"] = first["wall_s"]
        summary["startup_walls_s"] = [r["wall_s"] for r in startup]
        summary["problems"] += [
            f"start-up: {r['problem']}" for r in startup if r.get("problem")
        ]
        if best["wall_s"] > first["wall_s"]:
            summary["steady_images_per_s"] = round(
                (n - k) / (best["wall_s"] - first["wall_s"]), 1
            )
    return summary


def print_table(results: dict, ratios: dict) -> None:
    print(
        f"{'tool':15} {'wall s (runs)':>18} {'images/s':>9} {'median/s':>8} "
        f"{'MB/s':>7} "
        f"{'CPU ms/img':>10} {'peak MB':>8} {'server CPU s':>12} "
        f"{'start-up s':>10} {'steady/s':>9}"
    )
    for tool, r in results.items():
        walls = "/".join(f"{w:.1f}" for w in r["walls_s"])
        startup = "" if r["startup_s"] is None else f"{r['startup_s']:.1f}"
        print(
            f"{tool:15} {walls:>18} {r['images_per_s']:9,.0f} "
            f"{r['median_images_per_s']:8,.0f} {r['mb_per_s']:7,.0f} "
            f"{r['cpu_ms_per_image']:10.2f} {r['peak_mb']:8,} "
            f"{r['server_cpu_s']:12.1f} {startup:>10} "
            f"{r['steady_images_per_s']:9,.0f}"
        )
        for problem in r["problems"]:
            print(f"  !! {tool}: {problem}")
    for name, ratio in ratios.items():
        print(f"oibeam / {name}: {ratio:.2f}x")


# --- main --------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mean-kb", type=float, default=460)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="of every tool named without one (default: 16 on loopback, "
        "the tool's own under --rtt)",
    )
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--startup-images",
        type=int,
        default=20,
        help="images in the start-up runs of oibeam and img2dataset (default 20; "
        "0: none)",
    )
    parser.add_argument(
        "--curl-to-files", action=argparse.BooleanOptionalAction, default=True
    )
    parser.add_argument(
        "--workdir", default=str(ROOT / "benchmarks" / "runs" / "fetch")
    )
    parser.add_argument(
        "--keep-outputs",
        action="store_true",
        help="keep the last run's outputs (GBs) in WORKDIR/out for inspection",
    )
    parser.add_argument(
        "--oibeam-arg",
        action="append",
        default=[],
        help="extra flag for oibeam fetch (repeatable)",
    )
    parser.add_argument(
        "--tools",
        default=None,
        help=f"comma-separated, each one of {','.join(TOOLS)} with an optional "
        f":CONCURRENCY (default: {LOOPBACK_TOOLS}; with --rtt: {NETWORK_TOOLS})",
    )
    parser.add_argument(
        "--server",
        choices=("auto", "nginx", "python"),
        default="auto",
        help="auto: nginx if installed, else the Python server",
    )
    parser.add_argument(
        "--rtt",
        type=parse_rtt,
        default=None,
        help="run in network namespaces with this round trip (80ms, 200ms; 0: "
        "no delay); root only. Default: loopback",
    )
    parser.add_argument(
        "--congestion",
        default=",".join(CONGESTION),
        help="with --rtt: the server TCP congestion controls to run under "
        "(default: bbr,cubic)",
    )
    parser.add_argument(
        "--hosts",
        type=int,
        default=16,
        help="with --rtt: server addresses the URLs spread over (default 16, "
        "as the Flickr hosts of Open Images)",
    )
    parser.add_argument(
        "--serve", nargs=2, metavar=("DIR", "PORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.tools is None:
        args.tools = NETWORK_TOOLS if args.rtt is not None else LOOPBACK_TOOLS
    if args.rtt is None and args.concurrency is None:
        args.concurrency = 16  # loopback: as before
    args.congestion = [c for c in args.congestion.split(",") if c]
    unknown = set(args.congestion) - set(CONGESTION)
    if unknown:
        parser.error(f"--congestion: unknown {', '.join(sorted(unknown))}")
    return args


def parse_tools(text: str) -> list[tuple[str, str, int | None]]:
    """'curl:256,oibeam' -> [(label, tool, concurrency or None)]."""
    specs = []
    for label in (t.strip() for t in text.split(",") if t.strip()):
        tool, _, concurrency = label.partition(":")
        if tool not in TOOLS:
            raise SystemExit(f"--tools: unknown {tool}")
        if concurrency and not concurrency.isdigit():
            raise SystemExit(f"--tools: {label}: not a number after ':'")
        specs.append((label, tool, int(concurrency) if concurrency else None))
    return specs


def plan_runs(args, images, base_urls, run_dir, out_dir) -> dict[str, dict]:
    """label -> {cmd, out, check()} for every tool of --tools that can run here."""
    n = len(images)
    csv, urls = run_dir / "images.csv", run_dir / "urls.parquet"
    write_images_csv(csv, images, base_urls)
    write_url_parquet(urls, images, base_urls)
    k = min(args.startup_images, n)
    small_csv, small_urls = (
        run_dir / "images-startup.csv",
        run_dir / "urls-startup.parquet",
    )
    write_images_csv(small_csv, images[:k], base_urls)
    write_url_parquet(small_urls, images[:k], base_urls)
    i2d = find_img2dataset()
    runs = {}
    for label, tool, own in parse_tools(args.tools):
        concurrency = own or args.concurrency  # None: the tool's default
        name = label.replace(":", "-")
        if tool == "curl-files" and not args.curl_to_files:
            continue
        if tool in ("curl", "curl-files"):
            out = out_dir / name if tool == "curl-files" else None
            prefix = "curl" + (f"-{own}" if own else "")  # -> <prefix>-null-0.cfg
            cfgs = write_curl_configs(
                run_dir, images, base_urls, args.processes, out, prefix
            )
            runs[label] = {
                "cmd": curl_command(cfgs, concurrency or 50),
                "out": out,
                "make_out": out is not None,
                "check": lambda log, cfgs=cfgs, out=out: check_curl(cfgs, images, out),
            }
        elif tool == "oibeam":
            out, small = out_dir / name, out_dir / f"{name}-startup"
            runs[label] = {
                "cmd": oibeam_command(csv, out, args, concurrency),
                "out": out,
                "check": lambda log, out=out: check_oibeam(out, n),
                "startup": k
                and {
                    "cmd": oibeam_command(small_csv, small, args, concurrency),
                    "out": small,
                    "check": lambda log, small=small: check_oibeam(small, k),
                },
            }
        elif tool == "img2dataset":
            if i2d is None:
                print(
                    "img2dataset not found: skipped. Install it in its own venv with\n"
                    "  python -m venv /tmp/i2d && /tmp/i2d/bin/pip install img2dataset"
                )
                continue
            out, small = out_dir / name, out_dir / f"{name}-startup"
            p = args.processes
            runs[label] = {
                "cmd": img2dataset_command(i2d, urls, out, n, p, concurrency),
                "out": out,
                "check": lambda log, out=out: check_img2dataset(out, n),
                "startup": k
                and {
                    "cmd": img2dataset_command(
                        i2d, small_urls, small, k, p, concurrency
                    ),
                    "out": small,
                    "check": lambda log, small=small: check_img2dataset(small, k),
                },
            }
        else:  # the engines: no per-host cap below the in-flight count here
            in_flight = concurrency or 64
            runs[label] = {
                "cmd": engine_command(tool, csv, args.processes, in_flight, in_flight),
                "out": None,
                "check": lambda log: check_engine(log, n),
            }
    return runs


def run_once(
    name: str, run: dict, log: Path, server_pid: int, prefix: list[str]
) -> dict:
    """One measured, checked run of a tool (its output dir cleared first and,
    for curl, made), its command after `prefix` (ip netns exec NS, or none)."""
    if run["out"] is not None:
        clear(run["out"])
        if run.get("make_out"):
            run["out"].mkdir(parents=True)
    load = os.getloadavg()[0]  # the machine is shared: say how busy it was
    result = measure([*prefix, *run["cmd"]], log, server_pid)
    result["load_before"] = round(load, 1)
    problem = run["check"](log)
    if result["exit"] != 0:
        problem = f"exit {result['exit']} (see {log}); {problem or ''}"
    result["problem"] = problem
    print(
        f"  {name}: {result['wall_s']:.1f} s" + (f"  !! {problem}" if problem else ""),
        flush=True,
    )
    return result


def run_tools(
    runs: dict, repeat: int, run_dir: Path, server_pid: int, network=None, ccs=()
) -> dict:
    """Runs every tool (and its start-up run) `repeat` times, interleaved, and
    under a network once per server congestion control of `ccs` in each round;
    name -> list of measures (name: "<tool>[@<cc>][:startup]")."""
    measured: dict[str, list[dict]] = {}
    prefix = network.client_prefix if network else []
    for attempt in range(1, repeat + 1):
        for cc in ccs if network else [None]:
            if cc:
                network.set_congestion(cc)
            at = f"@{cc}" if cc else ""
            for tool, run in runs.items():
                variants = (
                    (f"{tool}{at}:startup", run.get("startup")),
                    (tool + at, run),
                )
                for name, variant in variants:
                    if not variant:
                        continue
                    log = run_dir / f"{name.replace(':', '-')}-{attempt}.log"
                    result = run_once(
                        f"{name} run {attempt}", variant, log, server_pid, prefix
                    )
                    measured.setdefault(name, []).append(result)
    return measured


def fetch_all(args, images, data: Path, run_dir: Path, out_dir: Path) -> dict:
    """Serves `data`, runs the tools (in a delayed network under --rtt): the
    measures by run name, the commands, the server kind and the network's
    measured handshake times."""
    network = None
    with contextlib.ExitStack() as stack:
        if args.rtt is not None:
            try:
                network = stack.enter_context(
                    DelayedNetwork(args.rtt, args.hosts, run_dir / "netdelay")
                )
            except NetworkUnavailable as e:
                sys.exit(f"--rtt: {e}")
        server, base_urls, server_kind = start_server(
            data, run_dir, args.server, network
        )
        stack.callback(stop_server, server)
        where = f"{len(base_urls)} addresses from {base_urls[0]}"
        print(f"serving with {server_kind} on {where}")
        handshakes = []
        if network is not None:
            address = network.addresses[0]
            handshakes = network.handshake_ms(address, 80, 20)
            print(
                f"network: {network.client} -> {network.server}, RTT {args.rtt:g} ms "
                f"asked; TCP handshakes {min(handshakes)}..{max(handshakes)} ms "
                f"(median {statistics.median(handshakes)})"
            )
        runs = plan_runs(args, images, base_urls, run_dir, out_dir)
        measured = run_tools(
            runs, args.repeat, run_dir, server.pid, network, args.congestion
        )
    return {
        "measured": measured,
        "commands": {t: shlex.join(r["cmd"]) for t, r in runs.items()},
        "server": server_kind,
        "handshake_ms": handshakes,
    }


def main() -> None:
    args = parse_args()
    if args.serve:
        serve_python(Path(args.serve[0]), int(args.serve[1]))
        return
    work = Path(args.workdir)
    data = work / f"images-{args.images}-seed{args.seed}-mean{args.mean_kb:g}kb"
    images = make_images(data, args.images, args.seed, args.mean_kb)
    total_bytes = sum(image["size"] for image in images)
    print(
        f"{len(images):,} images, {total_bytes / 1e9:.2f} GB "
        f"(mean {total_bytes / len(images) / 1e3:.0f} KB) in {data}"
    )
    run_dir, out_dir = work / "run", work / "out"
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        done = fetch_all(args, images, data, run_dir, out_dir)
    finally:
        if not args.keep_outputs:
            shutil.rmtree(out_dir, ignore_errors=True)
    measured = done["measured"]
    n, k = len(images), min(args.startup_images, len(images))
    results = {
        t: summarize(m, n, total_bytes, measured.get(f"{t}:startup"), k)
        for t, m in measured.items()
        if not t.endswith(":startup")
    }
    groups = [f"@{cc}" for cc in args.congestion] if args.rtt is not None else [""]
    all_ratios = {}
    for at in groups:
        group = {
            t: r for t, r in results.items() if (t.endswith(at) if at else "@" not in t)
        }
        if at:
            print(f"\nRTT {args.rtt:g} ms, server congestion control {at[1:]}:")
        ratios = oibeam_ratios(group, at)
        print_table(group, ratios)
        all_ratios.update({f"{name}{at}": v for name, v in ratios.items()})
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine(),
        "server": done["server"],
        "versions": versions(find_img2dataset(), done["server"]),
        "images": n,
        "bytes": total_bytes,
        "processes": args.processes,
        "concurrency": args.concurrency,
        "rtt_ms": args.rtt,
        "hosts": args.hosts if args.rtt is not None else 1,
        "handshake_ms": done["handshake_ms"],
        "startup_images": k,
        "commands": done["commands"],
        "results": results,
        "ratios": {k: round(v, 3) for k, v in all_ratios.items()},
    }
    with open(work / "results.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    if any(r["problems"] for t, r in results.items() if t.split("@")[0] == "oibeam"):
        sys.exit("oibeam fetch did not fetch every image with status ok")


def oibeam_ratios(results: dict, at: str) -> dict[str, float]:
    """oibeam's (defaults) images/s over every other tool's, and its steady
    rate over img2dataset's (defaults); `at` is the congestion suffix."""
    ours = results.get("oibeam" + at)
    if ours is None:
        return {}
    ratios = {}
    for tool, r in results.items():
        if tool != "oibeam" + at:
            ratios[f"{tool.removesuffix(at)} images/s"] = (
                ours["images_per_s"] / r["images_per_s"]
            )
    if "img2dataset" + at in results:
        ratios["img2dataset steady images/s"] = (
            ours["steady_images_per_s"]
            / results["img2dataset" + at]["steady_images_per_s"]
        )
    return ratios


if __name__ == "__main__":
    main()
