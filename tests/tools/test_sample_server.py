"""A sample release with --serve-base, served by SampleServer, fetched for real."""

import base64
import csv
import hashlib
import http.client
import socket
import threading
from urllib.parse import urlsplit

import pytest

from oibeam.tools.sample import SampleServer, served_dir, write_sample_release

from support.runs import TablesRun, run_cli


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    # The CSVs must name the port before the server can start: find a free one.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    release = write_sample_release(
        str(root / "release"), 300, serve_base=f"http://127.0.0.1:{port}/"
    )
    server = SampleServer(served_dir(release.root), port=port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield release, root
    server.shutdown()
    server.server_close()


def _get(url: str) -> tuple[int, bytes]:
    """(status, body) of one GET on a fresh connection; redirects not followed."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        query = f"?{parts.query}" if parts.query else ""
        connection.request("GET", parts.path + query)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_served_bytes_match_the_release(served):
    release, _ = served
    with open(release.images_files[0], newline="") as f:
        rows = list(csv.DictReader(f))
    statuses = {}
    for row in rows:
        status, body = _get(row["OriginalURL"])
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200 and body:
            md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
            matches = (len(body), md5) == (
                int(row["OriginalSize"]),
                row["OriginalMD5"],
            )
            statuses["match" if matches else "changed"] = (
                statuses.get("match" if matches else "changed", 0) + 1
            )
    assert statuses["match"] > 0.85 * len(rows)
    assert statuses.get(404, 0) > 0  # some photos are gone, as on Flickr


def test_fetch_a_served_sample(served):
    release, root = served
    out = root / "out"
    code = run_cli(
        "fetch",
        "--images",
        *release.images_files,
        "--allow-private-hosts",
        "--output",
        out,
    )
    assert code == 0
    run = TablesRun(out, code)
    counts = run.manifest["counts"]
    assert counts["selected"] == release.images
    assert counts["status:ok"] > 0.85 * release.images
    assert counts.get("status:gone", 0) > 0
