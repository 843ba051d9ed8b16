"""Self-checks of the test origin, talking to it directly (no proxy): if these fail, every
other e2e failure is suspect."""

from __future__ import annotations

import hashlib
import json
import ssl
import time

import httpx

from tests.e2e.rawhttp import RawConn
from tests.support.origin import Origin, pattern, pattern_sha256


def test_echo_records_raw_request(origin: Origin):
    with RawConn(origin.port) as conn:
        conn.send(b"POST /echo/x?y=%20 HTTP/1.1\r\nHost: h\r\nX-Case: V\r\n"
                  b"Content-Length: 3\r\n\r\nabc")
        resp = conn.read_final("POST")
    echo = json.loads(resp.body)
    assert echo["target"] == "/echo/x?y=%20"
    assert ["X-Case", "V"] in echo["headers"]
    (rec,) = origin.requests
    assert rec.body == b"abc"
    assert rec.header("x-case") == "V"
    assert b"X-Case: V" in origin.raw_received()


def test_keep_alive_and_connection_counting(origin: Origin):
    with RawConn(origin.port) as conn:
        for _ in range(3):
            assert conn.request("GET", "/echo").status == 200
    assert origin.connections_accepted == 1
    assert len({r.conn_id for r in origin.requests}) == 1


def test_close_idle(origin: Origin):
    with RawConn(origin.port) as conn:
        assert conn.request("GET", "/echo").status == 200
        assert origin.close_idle() == 1
        assert conn.closed_by_peer(3.0)


def test_truncated_bodies_are_reported_incomplete(origin: Origin):
    for target in ("/close-mid-body", "/close-mid-chunked"):
        with RawConn(origin.port) as conn:
            resp = conn.request("GET", target)
        assert resp.status == 200
        assert not resp.complete


def test_chunked_and_big_bodies(origin: Origin):
    with RawConn(origin.port) as conn:
        resp = conn.request("GET", "/chunked/5?size=10")
        assert resp.chunked and resp.complete
        assert resp.body == pattern(50)
        big = conn.request("GET", "/big/300000")
        assert hashlib.sha256(big.body).hexdigest() == pattern_sha256(300000)


def test_chunked_upload_hash(origin: Origin):
    with RawConn(origin.port) as conn:
        conn.send(b"POST /upload?sleep_ms=1&chunk=3 HTTP/1.1\r\nHost: h\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        resp = conn.read_final("POST")
    assert json.loads(resp.body) == {"length": 5,
                                     "sha256": hashlib.sha256(b"hello").hexdigest()}


def test_slow_and_headers_routes(origin: Origin):
    with RawConn(origin.port) as conn:
        start = time.monotonic()
        assert conn.request("GET", "/slow/200").status == 200
        assert time.monotonic() - start >= 0.19
        resp = conn.request("GET", "/headers?Location=/x&URI=/y")
        assert resp.header("Location") == "/x"
        assert resp.header("URI") == "/y"


def test_unix_origin(unix_origin: Origin):
    transport = httpx.HTTPTransport(uds=unix_origin.unix_path)
    with httpx.Client(transport=transport, base_url="http://localhost") as c:
        assert c.get("/status/204").status_code == 204
    assert unix_origin.requests[0].target == "/status/204"


def test_tls_origin(tls_origin: Origin, tls_ca_file):
    ctx = ssl.create_default_context(cafile=str(tls_ca_file))
    with httpx.Client(verify=ctx) as c:
        resp = c.get(f"https://localhost:{tls_origin.port}/echo")
    assert resp.status_code == 200
    assert resp.json()["target"] == "/echo"
