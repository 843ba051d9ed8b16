"""Client-side keep-alive directives: KeepAlive Off, MaxKeepAliveRequests, KeepAliveTimeout."""

from __future__ import annotations

import time

from tests.e2e.rawhttp import RawConn
from tests.support.origin import Origin


def test_keepalive_off_closes_after_each_response(proxy_factory, origin: Origin):
    p = proxy_factory("KeepAlive Off\nProxyPass / {{o}}/\n", o=origin.url)
    with RawConn(p.port) as conn:
        resp = conn.request("GET", "/echo")
        assert resp.status == 200
        assert (resp.header("Connection") or "").lower() == "close"
        assert conn.closed_by_peer(3.0)


def test_max_keepalive_requests_closes_after_the_last_one(proxy_factory, origin: Origin):
    p = proxy_factory("MaxKeepAliveRequests 3\nProxyPass / {{o}}/\n", o=origin.url)
    # httpd counts the requests *after* the first: with 3, the 4th response closes [O].
    with RawConn(p.port) as conn:
        for _ in range(3):
            assert conn.request("GET", "/echo").status == 200
        assert not conn.closed_by_peer(0.1)
        last = conn.request("GET", "/echo")
        assert last.status == 200
        assert (last.header("Connection") or "").lower() == "close"
        assert conn.closed_by_peer(3.0)


def test_keepalive_timeout_closes_an_idle_client(proxy_factory, origin: Origin):
    p = proxy_factory("KeepAliveTimeout 1\nProxyPass / {{o}}/\n", o=origin.url)
    with RawConn(p.port) as conn:
        assert conn.request("GET", "/echo").status == 200
        start = time.monotonic()
        assert conn.closed_by_peer(4.0)
        assert 0.5 < time.monotonic() - start < 3.0
