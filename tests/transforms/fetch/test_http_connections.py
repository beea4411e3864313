"""HttpFetcher over TLS and through proxies: real servers on 127.0.0.1."""

import base64
import datetime
import ipaddress
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from oibeam.transforms.fetch import host_policy
from oibeam.transforms.fetch.fetcher import FetchPolicy, HttpFetcher, request_target

from support.paths import IMAGES

PHOTO = "openimages_v1_davidgengenbach_0143a0cf29afbf75.jpg"
DATA = (IMAGES / PHOTO).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append((self.path, dict(self.headers)))
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(DATA)))
        self.end_headers()
        self.wfile.write(DATA)

    def do_CONNECT(self) -> None:  # a tunnel to the host:port asked for
        self.server.seen.append((f"CONNECT {self.path}", dict(self.headers)))
        host, port = self.path.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        relay = threading.Thread(
            target=_pipe, args=(upstream, self.connection), daemon=True
        )
        relay.start()
        _pipe(self.connection, upstream)
        relay.join(5)
        self.close_connection = True


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(tls: ssl.SSLContext | None = None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.seen = []
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oibeam test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def tls_server(certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    server = _serve(context)
    yield server
    server.shutdown()


@pytest.fixture
def proxy_server():
    server = _serve()
    yield server
    server.shutdown()


@pytest.fixture
def clean_env(monkeypatch):
    for name in (
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _fetcher() -> HttpFetcher:
    return HttpFetcher(
        FetchPolicy(allow_private_hosts=True, timeout=5, deadline=10, retries=0)
    )


def test_https_is_verified_against_the_ca_bundle(clean_env, certificate, tls_server):
    url = f"https://127.0.0.1:{tls_server.server_port}/{PHOTO}"
    got = _fetcher().fetch(url)
    assert got.status == "connection_error" and "CERTIFICATE_VERIFY_FAILED" in (
        got.error
    )
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    fetcher = _fetcher()
    for _ in range(2):
        got = fetcher.fetch(url)
        assert got.ok and got.data == DATA
    assert [path for path, _ in tls_server.seen[-2:]] == [f"/{PHOTO}"] * 2


def test_http_through_a_proxy_with_credentials(clean_env, proxy_server):
    clean_env.setenv(
        "HTTP_PROXY", f"http://bob:pa%20ss@127.0.0.1:{proxy_server.server_port}"
    )
    got = _fetcher().fetch("http://images.invalid/photos/1.jpg?size=o")
    assert got.ok and got.data == DATA
    (path, headers) = proxy_server.seen[-1]
    assert path == "http://images.invalid/photos/1.jpg?size=o"
    assert headers["Host"] == "images.invalid"
    assert headers["Proxy-Authorization"] == "Basic " + base64.b64encode(
        b"bob:pa ss"
    ).decode("ascii")


def test_no_proxy_hosts_are_fetched_directly(clean_env, proxy_server):
    clean_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_server.server_port}")
    clean_env.setenv("NO_PROXY", "images.invalid")
    got = _fetcher().fetch("http://images.invalid/1.jpg")
    assert got.status == "connection_error"  # no such host, and no proxy asked
    assert proxy_server.seen == []


def test_https_through_a_connect_tunnel(
    clean_env, certificate, tls_server, proxy_server
):
    clean_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy_server.server_port}")
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    got = _fetcher().fetch(f"https://127.0.0.1:{tls_server.server_port}/{PHOTO}")
    assert got.ok and got.data == DATA
    assert proxy_server.seen[-1][0] == f"CONNECT 127.0.0.1:{tls_server.server_port}"


def test_request_targets_are_encoded_only_where_needed():
    from urllib.parse import urlsplit

    plain = urlsplit("http://h.example/a/b.jpg?x=1&y=%20")
    assert request_target(plain, False) == "/a/b.jpg?x=1&y=%20"
    assert request_target(plain, True) == "http://h.example/a/b.jpg?x=1&y=%20"
    odd = urlsplit("http://h.example:8080/ä b.jpg")
    assert request_target(odd, False) == "/%C3%A4%20b.jpg"
    assert request_target(odd, True) == "http://h.example:8080/%C3%A4%20b.jpg"
    assert request_target(urlsplit("http://h.example"), False) == "/"


def test_a_rebound_name_gets_no_tls_handshake(clean_env, monkeypatch):
    """DNS rebinding: the name resolves to a public address when it is checked
    and to a private one when it is connected to. The address connected to is
    judged before anything is sent: no ClientHello (with the name as SNI)
    reaches it. Standing in for the first lookup, check_host lets it through."""
    listener = socket.create_server(("127.0.0.1", 0))
    received = []

    def accept() -> None:
        conn, _ = listener.accept()
        conn.settimeout(2)
        try:
            received.append(conn.recv(4096))
        except OSError:
            received.append(b"")
        conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    monkeypatch.setattr(host_policy, "check_host", lambda host, port, allow: None)
    port = listener.getsockname()[1]
    got = HttpFetcher(FetchPolicy(timeout=2, deadline=4, retries=0)).fetch(
        f"https://localhost:{port}/x.jpg"
    )
    thread.join(5)
    listener.close()
    assert got.status == "refused" and "non-public" in got.error, got.error
    # Not a byte sent: judged before connecting, or connected, judged, closed.
    assert received in ([], [b""])
