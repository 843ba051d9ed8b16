"""Client-side framing and security: request smuggling vectors and malformed heads are refused
with 400 and a closed connection, and the origin receives nothing; pipelining, keep-alive,
100-continue, HEAD, and the LimitRequest* limits. Raw sockets throughout: a normalising client
library would hide exactly the bytes under test.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.rawhttp import RawConn, request_bytes
from tests.support.origin import Origin
from tests.support.proxy import Portico, server_kind

CONF = """
LimitRequestLine 1024
LimitRequestFieldSize 1024
LimitRequestFields 20
ProxyPass / {{o}}/
"""

# A separate proxy, so that a directive problem here cannot take the module's tests down.
LIMITED_CONF = """
ProxyPass / {{o}}/
<Location /limited>
    LimitRequestBody 1000
</Location>
"""

HTTPD = server_kind() == "httpd"


def portico_differs(why: str) -> None:
    """Skip a check that portico does deliberately better than httpd, when the suite runs
    against real httpd (PORTICO_E2E_SERVER=httpd). The difference is in docs/compat.md."""
    if HTTPD:
        pytest.skip(f"httpd differs: {why} (docs/compat.md)")


@pytest.fixture(scope="module")
def proxy(module_origin: Origin, module_proxy_factory) -> Portico:
    return module_proxy_factory(CONF, o=module_origin.url)


def assert_nothing_reached_origin(proxy: Portico, origin: Origin) -> None:
    """Prove a negative without sleeping: a sentinel request on a fresh connection must be the
    only thing the origin recorded, and no smuggled marker may appear in its raw bytes."""
    with RawConn(proxy.port) as conn:
        assert conn.request("GET", "/echo/sentinel").status == 200
    recs = origin.wait_for_requests(1)
    assert [r.target for r in recs] == ["/echo/sentinel"], recs
    assert b"SMUGGLE" not in origin.raw_received()


def assert_rejected(proxy: Portico, origin: Origin, raw: bytes, status: int = 400) -> None:
    with RawConn(proxy.port) as conn:
        conn.send(raw)
        resp = conn.read_response()
        assert resp.status == status, resp
        assert conn.closed_by_peer(3.0), "connection left open after a framing error"
    assert_nothing_reached_origin(proxy, origin)


SMUGGLED = b"GET /echo/SMUGGLE HTTP/1.1\r\nHost: x\r\n\r\n"


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# Smuggling and malformed heads ---------------------------------------------------------

def test_content_length_with_transfer_encoding(proxy, morigin):
    portico_differs("httpd drops Content-Length and uses chunked; portico refuses")
    raw = head("POST /echo/SMUGGLE-a HTTP/1.1", "Host: proxy.test", "Content-Length: 6",
               "Transfer-Encoding: chunked") + b"0\r\n\r\n" + SMUGGLED
    assert_rejected(proxy, morigin, raw)


def test_differing_duplicate_content_length(proxy, morigin):
    raw = head("POST /echo/SMUGGLE-b HTTP/1.1", "Host: proxy.test", "Content-Length: 5",
               "Content-Length: 6") + b"hello!"
    assert_rejected(proxy, morigin, raw)


def test_bad_chunk_size(proxy, morigin):
    raw = head("POST /echo/SMUGGLE-c HTTP/1.1", "Host: proxy.test",
               "Transfer-Encoding: chunked") + b"zz\r\nhello\r\n0\r\n\r\n"
    assert_rejected(proxy, morigin, raw)


def test_obs_fold(proxy, morigin):
    portico_differs("httpd unfolds obs-fold; portico refuses it (RFC 9112 §5.2 allows both)")
    raw = head("GET /echo/SMUGGLE-d HTTP/1.1", "Host: proxy.test", "X-Folded: a", " b")
    assert_rejected(proxy, morigin, raw)


def test_bare_cr_in_header_value(proxy, morigin):
    raw = head("GET /echo/SMUGGLE-e HTTP/1.1", "Host: proxy.test", "X-Cr: a\rb")
    assert_rejected(proxy, morigin, raw)


def test_nul_in_header_value(proxy, morigin):
    raw = head("GET /echo/SMUGGLE-f HTTP/1.1", "Host: proxy.test", "X-Nul: a\x00b")
    assert_rejected(proxy, morigin, raw)


def test_whitespace_before_colon(proxy, morigin):
    raw = head("GET /echo/SMUGGLE-g HTTP/1.1", "Host: proxy.test", "X-Space : a")
    assert_rejected(proxy, morigin, raw)


def test_unknown_transfer_encoding(proxy, morigin):
    raw = head("POST /echo/SMUGGLE-h HTTP/1.1", "Host: proxy.test",
               "Transfer-Encoding: gzip") + b"abc"
    assert_rejected(proxy, morigin, raw)


# Connection reuse ----------------------------------------------------------------------

def test_pipelined_requests_are_answered_in_order(proxy, morigin):
    with RawConn(proxy.port) as conn:
        conn.send(request_bytes("GET", "/slow/300?n=1")
                  + request_bytes("GET", "/echo?n=2")
                  + request_bytes("POST", "/echo?n=3", body=b"three"))
        got = [json.loads(conn.read_final().body)["target"] for _ in range(3)]
    assert got == ["/slow/300?n=1", "/echo?n=2", "/echo?n=3"]


def test_keep_alive_serves_many_requests_on_one_connection(proxy, morigin):
    with RawConn(proxy.port) as conn:
        for i in range(10):
            resp = conn.request("GET", f"/echo?i={i}")
            assert resp.status == 200
            assert json.loads(resp.body)["target"] == f"/echo?i={i}"
        assert not conn.closed_by_peer(0.2)


def test_client_connection_close_is_honoured(proxy, morigin):
    with RawConn(proxy.port) as conn:
        resp = conn.request("GET", "/echo", headers=[("Connection", "close")])
        assert resp.status == 200
        assert conn.closed_by_peer(3.0)


def test_expect_100_continue(proxy, morigin):
    body = b"payload after continue"
    with RawConn(proxy.port) as conn:
        conn.send(head("POST /echo HTTP/1.1", "Host: proxy.test", "Expect: 100-continue",
                       f"Content-Length: {len(body)}"))
        interim = conn.read_response("POST")  # the client holds the body until this arrives
        assert interim.status == 100
        conn.send(body)
        final = conn.read_final("POST")
    assert final.status == 200
    (rec,) = morigin.wait_for_requests(1)
    assert rec.body == body


# HEAD ----------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/big/1000", "/chunked/3"])
def test_head_has_no_body_and_connection_stays_usable(proxy, morigin, target):
    with RawConn(proxy.port) as conn:
        resp = conn.request("HEAD", target)
        assert resp.status == 200
        if target == "/big/1000":
            assert resp.header("Content-Length") == "1000"
        # Had a body been sent, it would be parsed as the next status line and fail here.
        nxt = conn.request("GET", "/echo?after-head")
        assert nxt.status == 200
        assert json.loads(nxt.body)["target"] == "/echo?after-head"
    assert morigin.requests[0].method == "HEAD"


# Limits --------------------------------------------------------------------------------

def test_long_request_line_is_414(proxy, morigin):
    assert_rejected(proxy, morigin, head(f"GET /echo/{'x' * 2000} HTTP/1.1",
                                         "Host: proxy.test"), 414)


# httpd answers 400 for an oversized field or too many fields; portico uses RFC 6585's 431.
# See docs/compat.md.
FIELD_STATUS = 400 if HTTPD else 431


def test_big_header_field_is_431(proxy, morigin):
    raw = head("GET /echo/SMUGGLE-i HTTP/1.1", "Host: proxy.test", f"X-Big: {'y' * 2000}")
    assert_rejected(proxy, morigin, raw, FIELD_STATUS)


def test_too_many_header_fields_is_431(proxy, morigin):
    fields = [f"X-F{i}: v" for i in range(30)]
    raw = head("GET /echo/SMUGGLE-j HTTP/1.1", "Host: proxy.test", *fields)
    assert_rejected(proxy, morigin, raw, FIELD_STATUS)


def test_body_over_limit_is_413(proxy_factory, origin):
    portico_differs("httpd 2.4.71 does not apply LimitRequestBody to proxied requests")
    p = proxy_factory(LIMITED_CONF, o=origin.url)
    with RawConn(p.port) as conn:
        conn.send(request_bytes("POST", "/limited/SMUGGLE-k", body=b"z" * 2000))
        assert conn.read_response().status == 413
    assert_nothing_reached_origin(p, origin)


def test_body_under_limit_passes(proxy_factory, origin):
    p = proxy_factory(LIMITED_CONF, o=origin.url)
    with RawConn(p.port) as conn:
        assert conn.request("POST", "/limited/ok", body=b"z" * 500).status == 200
    (rec,) = origin.wait_for_requests(1)
    assert rec.body_len == 500


# A bad body after the head went on ---------------------------------------------------------

def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)  # a poll interval inside a deadline


def test_bad_chunk_after_the_head_was_forwarded_is_400(proxy_factory, origin):
    p = proxy_factory(CONF, o=origin.url)
    with RawConn(p.port) as conn:
        conn.send(head("POST /echo/partial HTTP/1.1", "Host: proxy.test",
                       "Transfer-Encoding: chunked") + b"5\r\nhello\r\n")
        if not HTTPD:
            # The head and the first chunk reach the backend before the bad chunk is sent.
            # (httpd holds a small body back until it is complete, so nothing goes on.)
            _wait_for(lambda: b"hello" in origin.raw_received())
        conn.send(b"zz\r\nworld\r\n0\r\n\r\n")
        resp = conn.read_response("POST")   # well before Timeout (10 s)
        assert resp.status == 400, resp
        assert conn.closed_by_peer(3.0)
    # The backend connection holds half a request: it is closed, never reused.
    _wait_for(lambda: origin.open_connections == 0)
    assert origin.requests == []
    with RawConn(p.port) as conn:
        assert conn.request("GET", "/echo/after").status == 200
    assert origin.connections_accepted == (1 if HTTPD else 2)


def test_request_before_a_bad_one_in_the_same_write_is_answered(proxy, morigin):
    raw = request_bytes("GET", "/echo/first") + head(
        "GET /echo/SMUGGLE-l HTTP/1.1", "Host: proxy.test", "X-Space : a")
    with RawConn(proxy.port) as conn:
        conn.send(raw)
        first = conn.read_final()
        assert first.status == 200
        assert json.loads(first.body)["target"] == "/echo/first"
        assert conn.read_response().status == 400
        assert conn.closed_by_peer(3.0)
    assert b"SMUGGLE" not in morigin.raw_received()
