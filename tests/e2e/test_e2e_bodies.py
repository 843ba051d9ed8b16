"""Bodies stream both ways intact (sha256 checked at the far end), and a slow origin makes
the proxy apply backpressure to the client instead of buffering the upload (§4.7, DESIGN 6).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time

import pytest

from tests.e2e.helpers import client
from tests.e2e.rawhttp import RawConn, request_bytes
from tests.support.origin import Origin, pattern, pattern_sha256
from tests.support.proxy import Portico

CONF = """
ProxyPass / {{o}}/
"""

MIB = 1 << 20


@pytest.fixture(scope="module")
def proxy(module_origin: Origin, module_proxy_factory) -> Portico:
    return module_proxy_factory(CONF, o=module_origin.url)


def test_content_length_upload_arrives_intact(proxy, morigin):
    body = pattern(4 * MIB + 123)
    with client(proxy) as c:
        resp = c.post("/upload", content=body)
    assert resp.status_code == 200
    assert resp.json() == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_chunked_upload_arrives_intact(proxy, morigin):
    body = pattern(3 * MIB + 7)
    with RawConn(proxy.port, timeout=20) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: proxy.test\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        step = 65536 + 11  # odd chunk sizes so chunk and read boundaries never line up
        for i in range(0, len(body), step):
            piece = body[i:i + step]
            conn.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
        conn.send(b"0\r\n\r\n")
        resp = conn.read_final("POST")
    assert resp.status == 200
    assert json.loads(resp.body) == {"length": len(body),
                                     "sha256": hashlib.sha256(body).hexdigest()}


def test_content_length_download_arrives_intact(proxy, morigin):
    n = 8 * MIB + 5
    h = hashlib.sha256()
    got = 0
    with client(proxy) as c, c.stream("GET", f"/big/{n}") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-length"] == str(n)
        for piece in resp.iter_bytes():
            h.update(piece)
            got += len(piece)
    assert got == n
    assert h.hexdigest() == pattern_sha256(n)


def test_chunked_download_arrives_intact(proxy, morigin):
    with RawConn(proxy.port, timeout=20) as conn:
        resp = conn.request("GET", "/chunked/300?size=10000")
    assert resp.status == 200
    assert resp.complete
    assert hashlib.sha256(resp.body).hexdigest() == pattern_sha256(300 * 10000)


def test_slow_origin_does_not_make_the_proxy_buffer_the_upload(proxy, morigin):
    """200 MiB to an origin that waits 1.5 s before reading, then reads slowly: if the proxy
    kept reading the client meanwhile, its RSS would grow by ~the whole body."""
    size = 200 * MIB
    baseline = proxy.rss_kib()
    peak = baseline
    outcome: dict[str, object] = {}
    block = pattern(MIB)

    def upload() -> None:
        try:
            with RawConn(proxy.port, timeout=30) as conn:
                conn.send(b"POST /upload?pause_ms=1500&sleep_ms=1&chunk=1048576 HTTP/1.1\r\n"
                          b"Host: proxy.test\r\nContent-Length: %d\r\n\r\n" % size)
                for _ in range(size // MIB):
                    conn.send(block)
                outcome["resp"] = conn.read_final("POST")
        except OSError as exc:  # reported by the main thread's assertions below
            outcome["error"] = exc

    t = threading.Thread(target=upload, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while t.is_alive() and time.monotonic() < deadline:
        peak = max(peak, proxy.rss_kib())
        t.join(0.05)
    assert not t.is_alive(), "upload did not finish within 60 s"
    assert "error" not in outcome, outcome
    resp = outcome["resp"]
    assert resp.status == 200  # type: ignore[attr-defined]
    assert json.loads(resp.body) == {"length": size,  # type: ignore[attr-defined]
                                     "sha256": pattern_sha256(size)}
    grown_mib = (peak - baseline) / 1024
    assert grown_mib < 50, f"proxy RSS grew by {grown_mib:.0f} MiB during a 200 MiB upload"


def test_slow_client_does_not_make_the_proxy_buffer_the_download(proxy, morigin):
    """A 200 MiB download to a client that reads nothing for 1.5 s, then reads slowly: if the
    proxy kept reading the origin meanwhile, its RSS would grow by ~the whole body."""
    size = 200 * MIB
    baseline = proxy.rss_kib()
    peak = baseline
    h = hashlib.sha256()
    got = 0
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /big/%d HTTP/1.1\r\nHost: proxy.test\r\n\r\n" % size)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:   # not reading: the proxy must stop reading too
            peak = max(peak, proxy.rss_kib())
            time.sleep(0.05)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, _, rest = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        h.update(rest)
        got = len(rest)
        reads = 0
        end = time.monotonic() + 60
        while got < size and time.monotonic() < end:
            piece = sock.recv(1 << 20)
            if not piece:
                break
            h.update(piece)
            got += len(piece)
            reads += 1
            if reads % 64 == 0:
                peak = max(peak, proxy.rss_kib())
                time.sleep(0.002)
    assert got == size
    assert h.hexdigest() == pattern_sha256(size)
    grown_mib = (peak - baseline) / 1024
    assert grown_mib < 50, f"proxy RSS grew by {grown_mib:.0f} MiB during a 200 MiB download"


def test_an_upload_slower_than_the_backend_timeout_still_succeeds(module_origin, proxy_factory):
    """The backend timeout bounds the backend's silence, not the client's upload: a body that
    takes 1.6 s to arrive in pieces goes through under timeout=1 (httpd: the client's own
    Timeout governs reading it)."""
    proxy = proxy_factory("ProxyPass /up {{o}}/echo timeout=1\n", o=module_origin.url)
    pieces = [bytes([65 + i]) * 100 for i in range(8)]
    with RawConn(proxy.port, timeout=10) as conn:
        conn.send(request_bytes("POST", "/up", [("Content-Length", "800")]))
        for piece in pieces:
            time.sleep(0.2)   # the client's pace is what is under test
            conn.send(piece)
        resp = conn.read_final("POST")
    assert resp.status == 200, resp
    assert json.loads(resp.body)["body"] == b"".join(pieces).decode()
