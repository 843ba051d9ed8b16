"""More whole-proxy behaviour: Max-Forwards answered locally, a client that goes away while
the backend hangs, trailers both ways, close-delimited backend bodies re-framed for the
client, and load on one keep-alive connection and from many concurrent clients.

Backends are the recording ``Origin`` and, for responses it cannot make (trailers, bodies
delimited by the close), ``CannedBackend``: a tiny threaded server on 127.0.0.1 that answers
each request with fixed bytes chosen by path.
"""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from tests.e2e.rawhttp import RawConn, request_bytes
from tests.support.origin import Origin, pattern
from tests.support.proxy import Portico, server_kind

HTTPD = server_kind() == "httpd"


def portico_differs(why: str) -> None:
    """Skip a check where portico deliberately differs from httpd when the suite runs against
    real httpd (PORTICO_E2E_SERVER=httpd); the difference is written in docs/compat.md."""
    if HTTPD:
        pytest.skip(f"httpd differs: {why} (docs/compat.md)")

CONF = """
MaxKeepAliveRequests 0
ProxyPass /canned/ http://127.0.0.1:{{canned}}/
ProxyPass / {{o}}/
"""

CLOSE_BODY = pattern(100_000)   # large enough to arrive in many reads
TRAILER_BODY = b"hello, trailers"


def _chunked(body: bytes, trailers: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n%s\r\n" % (len(body), body, trailers)


# path → (response bytes, close the connection after it)
CANNED: dict[str, tuple[bytes, bool]] = {
    "/trailers": (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Checksum\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n"
                  + _chunked(TRAILER_BODY, b"X-Checksum: abc123\r\n"), False),
    "/close-delimited": (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
                         + CLOSE_BODY, True),
}


class _CannedHandler(socketserver.BaseRequestHandler):
    """Reads request heads (bodies are not expected) and answers from ``CANNED``."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(10.0)   # bounds every wait of this thread
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
                self.server.seen.append(target)  # type: ignore[attr-defined]
                response, close = CANNED.get(
                    target, (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", False))
                sock.sendall(response)
                if close:
                    return
        except OSError:
            return


class CannedBackend(socketserver.ThreadingTCPServer):
    """A threaded server on an ephemeral 127.0.0.1 port; ``stop()`` joins its thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CannedHandler)
        self.seen: list[str] = []
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, name="canned", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5.0)


@pytest.fixture(scope="module")
def canned() -> Iterator[CannedBackend]:
    backend = CannedBackend()
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def proxy(module_origin: Origin, module_proxy_factory, canned: CannedBackend) -> Portico:
    return module_proxy_factory(CONF, o=module_origin.url, canned=canned.port)


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the peer sends until it closes (bounded by ``timeout``)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    parts = []
    while time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            break
        parts.append(data)
    return b"".join(parts)


def assert_still_serving(proxy: Portico) -> None:
    with RawConn(proxy.port) as conn:
        resp = conn.request("GET", "/echo/still-serving")
    assert resp.status == 200
    assert json.loads(resp.body)["target"] == "/echo/still-serving"


# -- Max-Forwards: 0 -----------------------------------------------------------------------

@pytest.mark.parametrize("method", ["OPTIONS", "TRACE"])
def test_max_forwards_zero_is_answered_locally(proxy, morigin, method):
    with RawConn(proxy.port) as conn:
        resp = conn.request(method, "/echo/mf", headers=[("Max-Forwards", "0")])
        assert resp.status == 200
        assert resp.complete
        if method == "OPTIONS":
            assert resp.header("Allow")   # its content differs: httpd says "TRACE"
        # The connection stays usable, and the next request does go to the backend.
        follow = conn.request("GET", "/echo/after-mf")
        assert follow.status == 200
    assert [r.target for r in morigin.wait_for_requests(1)] == ["/echo/after-mf"]
    assert b"/echo/mf" not in morigin.raw_received()


def test_max_forwards_one_is_forwarded_decremented(proxy, morigin):
    with RawConn(proxy.port) as conn:
        resp = conn.request("OPTIONS", "/echo/mf1", headers=[("Max-Forwards", "1")])
    assert resp.status == 200
    rec = morigin.wait_for_requests(1)[0]
    assert rec.method == "OPTIONS"
    assert rec.header("Max-Forwards") == "0"


def test_trace_max_forwards_zero_reflects_the_request(proxy, morigin):
    with RawConn(proxy.port) as conn:
        resp = conn.request("TRACE", "/echo/mf", headers=[("Max-Forwards", "0")])
    assert resp.status == 200
    assert (resp.header("Content-Type") or "").startswith("message/http")
    assert resp.body.startswith(b"TRACE /echo/mf HTTP/1.1\r\n")
    assert b"Max-Forwards: 0" in resp.body


# -- a client that goes away while the backend hangs ---------------------------------------

def _wait_for_origin_connections(origin: Origin, count: int, timeout: float) -> float:
    """Seconds until the origin has ``count`` open connections; AssertionError after timeout."""
    start = time.monotonic()
    while origin.open_connections != count:
        if time.monotonic() - start > timeout:
            raise AssertionError(f"origin still has {origin.open_connections} connections "
                                 f"open after {timeout}s (wanted {count})")
        time.sleep(0.01)  # a poll interval inside a deadline
    return time.monotonic() - start


def _start_hanging_request(proxy: Portico, origin: Origin) -> socket.socket:
    """A client socket whose GET /hang has reached the origin, on a fresh backend connection."""
    origin.close_idle()   # pooled connections from earlier tests would blur the count
    _wait_for_origin_connections(origin, 0, 5.0)
    origin.reset()
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5.0)
    sock.sendall(request_bytes("GET", "/hang"))
    origin.wait_for_requests(1)
    assert origin.open_connections == 1
    return sock


def test_client_reset_while_backend_hangs_closes_the_backend_connection(proxy, morigin):
    portico_differs("httpd keeps waiting for the backend after the client is gone")
    sock = _start_hanging_request(proxy, morigin)
    # SO_LINGER 0: close() sends a RST, the most abrupt way a client can vanish.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    assert _wait_for_origin_connections(morigin, 0, 3.0) < 3.0
    assert_still_serving(proxy)


def test_client_close_while_backend_hangs_closes_the_backend_connection(proxy_factory, origin):
    # Its own origin and proxy: when this fails, the origin is stopped first (fixtures end in
    # reverse order), which ends the hanging exchange, so stopping the proxy is quick.
    portico_differs("httpd keeps waiting for the backend after the client is gone")
    p = proxy_factory("ProxyPass / {{o}}/\n", o=origin.url)
    sock = _start_hanging_request(p, origin)
    sock.close()   # an ordinary close: FIN
    assert _wait_for_origin_connections(origin, 0, 3.0) < 3.0
    assert_still_serving(p)


# -- trailers -------------------------------------------------------------------------------

def test_request_trailers_reach_the_backend(proxy, morigin):
    portico_differs("httpd sends a small chunked body with Content-Length, trailers dropped")
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Request-Trailer: yes\r\n\r\n"
    raw = request_bytes("POST", "/echo/trailers",
                        headers=[("Transfer-Encoding", "chunked")]) + body
    with RawConn(proxy.port) as conn:
        conn.send(raw)
        resp = conn.read_final("POST")
    assert resp.status == 200
    echo = json.loads(resp.body)
    assert echo["body"] == "hello world"
    assert echo["chunked"] is True
    sent = morigin.raw_received()
    last_chunk = sent.index(b"\r\n0\r\n")
    assert b"X-Request-Trailer: yes\r\n" in sent[last_chunk:], sent[-200:]


def test_response_trailers_reach_an_http11_client(proxy, canned):
    portico_differs("httpd drops response trailers")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5.0) as sock:
        sock.sendall(request_bytes("GET", "/canned/trailers",
                                   headers=[("Connection", "close")]))
        raw = read_until_closed(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == _chunked(TRAILER_BODY, b"X-Checksum: abc123\r\n"), body


# -- close-delimited backend bodies -------------------------------------------------------

def test_close_delimited_body_reaches_http11_client_chunked(proxy, canned):
    with RawConn(proxy.port) as conn:
        resp = conn.request("GET", "/canned/close-delimited")
        assert resp.status == 200
        assert resp.chunked, resp.headers
        assert resp.header("Content-Length") is None
        assert resp.complete
        assert resp.body == CLOSE_BODY
        # Chunking made the end visible, so the client connection stays usable.
        again = conn.request("GET", "/echo/after-close-delimited")
        assert again.status == 200


def test_close_delimited_body_reaches_http10_client_close_delimited(proxy, canned):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5.0) as sock:
        sock.sendall(request_bytes("GET", "/canned/close-delimited", version="HTTP/1.0",
                                   headers=[("Connection", "keep-alive")]))
        raw = read_until_closed(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    lower = head.lower()
    assert head.split(b" ")[1] == b"200", head
    assert b"transfer-encoding" not in lower
    assert b"content-length" not in lower
    assert b"keep-alive" not in lower.split(b"connection:", 1)[-1].split(b"\r\n")[0]
    assert body == CLOSE_BODY


# -- load ---------------------------------------------------------------------------------

def test_a_thousand_keepalive_requests_use_few_backend_connections(proxy, morigin):
    deadline = time.monotonic() + 60
    with RawConn(proxy.port) as conn:
        for i in range(1000):
            assert time.monotonic() < deadline, f"too slow: {i} requests in 60 s"
            resp = conn.request("GET", f"/echo/seq?{i}")
            assert resp.status == 200
            assert json.loads(resp.body)["target"] == f"/echo/seq?{i}"
        assert not conn.closed_by_peer(0.05)
    recs = morigin.wait_for_requests(1000)
    assert len(recs) == 1000
    backend_conns = {r.conn_id for r in recs}
    assert len(backend_conns) <= 2, len(backend_conns)


def test_fifty_concurrent_clients_all_succeed(proxy, morigin):
    if HTTPD:
        pytest.skip("the reference run is httpd -X (one child): not sized for this load")
    threads_n, per_thread = 50, 20
    failures: list[str] = []
    done = [0] * threads_n
    lock = threading.Lock()

    def client(t: int) -> None:
        try:
            with RawConn(proxy.port, timeout=15.0) as conn:
                for n in range(per_thread):
                    target = f"/echo/c{t}/r{n}"
                    resp = conn.request("GET", target)
                    if resp.status != 200 or json.loads(resp.body)["target"] != target:
                        with lock:
                            failures.append(f"{target}: {resp.status} {resp.body[:80]!r}")
                        return
                    done[t] += 1
        except (OSError, EOFError, ValueError) as exc:
            with lock:
                failures.append(f"client {t}: {exc!r}")

    threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 90
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "clients still running after 90 s"
    assert failures == []
    assert sum(done) == threads_n * per_thread
    recs = morigin.wait_for_requests(threads_n * per_thread)
    assert len({r.target for r in recs}) == threads_n * per_thread
