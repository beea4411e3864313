"""Inside a namespace of support.netns: fetch with oibeam from servers bound to
odd addresses, and report what each server received.

Run as `python -m support.netns_fetch_probe` (tests/ on the path) with a plan
as JSON on stdin:

    {"public": {"address": "8.8.8.8", "name": "public.test"},
     "targets": [{"id": "cgnat", "address": "100.100.100.200",
                  "bind": "100.100.100.200", "name": "cgnat.test"}, ...]}

`address` is what URLs name, `bind` what the server listens on (they differ
for ::ffff:a.b.c.d, which is reached through a server on a.b.c.d), `name` a
hostname resolving to `address` (support.netns writes /etc/hosts). Every
target is fetched in each WAY, from a fresh server of its own, so what a
server counts is what that one fetch sent:

    direct    http://<address>:<port>/... with private hosts refused
    hostname  http://<name>:<port>/... likewise
    redirect  a 302 from the public server (an allowed host) to `direct`'s URL
    template  a TaskRunner row whose --url-template field holds the address
    allowed   `direct` with --allow-private-hosts (the server is reachable)
    peer      no fetch: host_policy.check_peer on a socket this probe
              connected to the server (the check against DNS rebinding)

Prints JSON: {"isolated": {address off lo: the error connecting to it},
"public": {"direct"|"hostname": outcome}, "targets": {id: {way: outcome}}};
an outcome is {"status", "error", "connections" (TCP connections the server
accepted), "requests" (paths it was asked for), "redirects" (requests the
public server answered for this fetch)}.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, quote, urlsplit

from oibeam.transforms.fetch import host_policy
from oibeam.transforms.fetch.fetcher import FetchPolicy, HttpFetcher
from oibeam.transforms.fetch.image_tasks import FetchConfig, TaskRunner

WAYS = ("direct", "hostname", "redirect", "template", "allowed", "peer")
BODY = b"not an image, but proof that the request arrived"
IMAGE_ID = "0123456789abcdef"
# Addresses on no interface of the namespace: connecting must fail at once.
OFF_LO = ("192.0.2.1", "2001:db8::1")


class _Server(socketserver.ThreadingTCPServer):
    """Counts accepted connections and requested paths; 302s /redirect?to=."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.connections = 0
        self.paths: list[str] = []
        super().__init__((host, 0), _Handler)
        self.port = self.server_address[1]
        # A short poll: shutdown() waits for it, once for each of ~50 servers.
        threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def verify_request(self, request, client_address) -> bool:
        self.connections += 1
        return True


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        if self.path.startswith("/redirect?"):
            location = parse_qs(urlsplit(self.path).query)["to"][0]
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format, *args) -> None:
        pass


@contextlib.contextmanager
def serving(host: str):
    server = _Server(host)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def in_url(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def policy(allow_private: bool) -> FetchPolicy:
    return FetchPolicy(
        allow_private_hosts=allow_private, timeout=2.0, deadline=5.0, retries=0
    )


def fetch(url: str, allow_private: bool = False) -> dict:
    got = HttpFetcher(policy(allow_private)).fetch(url)
    return {"status": got.status or "ok", "error": got.error}


def fetch_by_template(host: str, port: int) -> dict:
    config = FetchConfig(
        url_template=f"http://{{Subset}}:{port}/{{ImageID}}.jpg",
        verify="decode",
        policy=policy(False),
    )
    status = TaskRunner(config).run({"ImageID": IMAGE_ID, "Subset": host}).status
    return {"status": status["status"], "error": status["error"]}


def check_peer(address: str, port: int) -> dict:
    with socket.create_connection((address, port), timeout=2) as sock:
        try:
            host_policy.check_peer(sock, allow_private=False)
        except host_policy.Refused as e:
            return {"status": "refused", "error": str(e)}
    return {"status": "ok", "error": None}


def try_target(target: dict, way: str, public: _Server, public_host: str) -> dict:
    with serving(target["bind"]) as server:
        direct = f"http://{in_url(target['address'])}:{server.port}/{IMAGE_ID}.jpg"
        redirects = len(public.paths)
        if way == "direct":
            outcome = fetch(direct)
        elif way == "hostname":
            outcome = fetch(f"http://{target['name']}:{server.port}/{IMAGE_ID}.jpg")
        elif way == "redirect":
            origin = f"http://{in_url(public_host)}:{public.port}"
            outcome = fetch(f"{origin}/redirect?to={quote(direct, safe='')}")
        elif way == "template":
            outcome = fetch_by_template(in_url(target["address"]), server.port)
        elif way == "allowed":
            outcome = fetch(direct, allow_private=True)
        else:
            outcome = check_peer(target["address"], server.port)
        outcome["redirects"] = len(public.paths) - redirects
        outcome["connections"] = server.connections
        outcome["requests"] = list(server.paths)
    return outcome


def unreachable(address: str) -> str:
    try:
        socket.create_connection((address, 80), timeout=2).close()
    except OSError as e:
        return str(e)
    return "connected"


def main() -> None:
    plan = json.load(sys.stdin)
    public_address = plan["public"]["address"]
    report = {"isolated": {a: unreachable(a) for a in OFF_LO}, "targets": {}}
    with serving(public_address) as public:
        origin = f"{in_url(public_address)}:{public.port}"
        report["public"] = {
            "direct": fetch(f"http://{origin}/{IMAGE_ID}.jpg"),
            "hostname": fetch(
                f"http://{plan['public']['name']}:{public.port}/{IMAGE_ID}.jpg"
            ),
            "peer": check_peer(public_address, public.port),
        }
        for target in plan["targets"]:
            report["targets"][target["id"]] = {
                way: try_target(target, way, public, public_address) for way in WAYS
            }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
