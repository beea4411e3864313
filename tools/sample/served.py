"""Images for a sample release, and a loopback server that serves them like Flickr.

`write_sample_release(..., serve_base=URL)` points every OriginalURL at
`{URL}{ImageID}.jpg` and takes OriginalSize/OriginalMD5 from a small pool of
real JPEGs written under `served/`, so `oibeam fetch` can be tried end to end
without the internet. `SampleServer` serves them with the troubles of the real
thing, chosen by a stable digest of the ImageID: ~3% gone (404), ~1% redirected
to a "photo unavailable" placeholder, ~1% changed bytes, ~1% a 500 before it
works (a retry heals it).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pyarrow as pa
from PIL import Image

from oibeam.transforms.common.image_keys import mix64, parse_image_ids

POOL_SIZE = 48
_SALT_POOL = np.uint64(0x9001)
_SALT_FAULT = np.uint64(0xFA17)
# digest % 1000 below each bound: the fault (cumulative bands)
FAULTS = (("gone", 30), ("placeholder", 40), ("changed", 50), ("flaky", 60))
PLACEHOLDER = "/photo_unavailable.png"


def pool_images(seed: int) -> list[bytes]:
    """POOL_SIZE JPEGs, 20 KB to a few hundred KB, the same for a seed."""
    rng = np.random.default_rng([seed, 77])
    out = []
    for i in range(POOL_SIZE):
        width = int(rng.integers(160, 900))
        height = int(rng.integers(120, 700))
        base = rng.integers(0, 255, 3)
        noise = rng.integers(0, 60, (height, width, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=60 + i % 35)
        out.append(buffer.getvalue())
    return out


def pool_index(keys: np.ndarray) -> np.ndarray:
    """Which pool image each ImageID key serves."""
    return (mix64(keys ^ _SALT_POOL) % np.uint64(POOL_SIZE)).astype(np.int64)


def fault_of(key: int) -> str | None:
    band = int(mix64(np.array([key], np.uint64) ^ _SALT_FAULT)[0] % np.uint64(1000))
    for name, bound in FAULTS:
        if band < bound:
            return name
    return None


def served_dir(root: str) -> str:
    """Where a sample release keeps the images its SampleServer serves."""
    return os.path.join(root, "served")


def write_pool(directory: str, seed: int) -> list[bytes]:
    os.makedirs(directory, exist_ok=True)
    images = pool_images(seed)
    for i, data in enumerate(images):
        with open(os.path.join(directory, f"{i:02d}.jpg"), "wb") as f:
            f.write(data)
    return images


def read_pool(directory: str) -> list[bytes]:
    """The images a sample release wrote with --serve-base (ValueError when it
    has none)."""
    if not os.path.isfile(os.path.join(directory, "00.jpg")):
        raise ValueError(
            f"{directory} holds no images to serve: write the sample release with "
            "`oibeam sample --serve-base http://HOST:PORT/`"
        )
    images = []
    for i in range(POOL_SIZE):
        with open(os.path.join(directory, f"{i:02d}.jpg"), "rb") as f:
            images.append(f.read())
    return images


def _placeholder() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (500, 374), (210, 210, 210)).save(buffer, "PNG")
    return buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SampleServer

    def log_message(self, format, *args) -> None:  # quiet
        pass

    def _send(self, code: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        if path == PLACEHOLDER:
            return self._send(200, self.server.placeholder, Content_Type="image/png")
        image_id = path.rsplit("/", 1)[-1].removesuffix(".jpg")
        keys, ok = parse_image_ids(pa.array([image_id]))
        if not ok[0] or not path.endswith(".jpg"):
            return self._send(404)
        key = int(keys[0])
        data = self.server.pool[int(pool_index(keys)[0])]
        fault = fault_of(key)
        if fault == "gone":
            return self._send(404)
        if fault == "placeholder":
            return self._send(302, Location=PLACEHOLDER)
        if fault == "changed":
            data = hashlib.sha256(data).digest() + data[32:]
        if fault == "flaky" and self.server.first_visit(key):
            return self._send(500)
        self._send(200, data, Content_Type="image/jpeg")

    do_HEAD = do_GET


class SampleServer(ThreadingHTTPServer):
    """Serves a sample release's images on (host, port) from `served/`."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, pool_dir: str, host: str = "127.0.0.1", port: int = 0):
        self.pool = read_pool(pool_dir)
        self.placeholder = _placeholder()
        self._seen: set[int] = set()
        self._lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def first_visit(self, key: int) -> bool:
        with self._lock:
            first = key not in self._seen
            self._seen.add(key)
            return first
