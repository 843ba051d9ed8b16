"""Backend connection pooling (§6.1, §6.2): keep-alive reuse, disablereuse, max, and a
pooled connection that the origin closed while idle."""

from __future__ import annotations

import threading
import time

from tests.e2e.rawhttp import RawConn
from tests.support.origin import Origin
from tests.support.proxy import Portico


def get(proxy: Portico, target: str, timeout: float = 5.0) -> int:
    with RawConn(proxy.port, timeout=timeout) as conn:
        return conn.request("GET", target).status


def test_backend_connections_are_reused(proxy_factory, origin: Origin):
    p = proxy_factory("ProxyPass / {{o}}/\n", o=origin.url)
    for i in range(20):  # a new client connection each time: reuse is on the backend side
        assert get(p, f"/echo?{i}") == 200
    assert len(origin.requests) == 20
    assert origin.connections_accepted <= 2, origin.connections_accepted


def test_disablereuse_opens_one_connection_per_request(proxy_factory, origin: Origin):
    p = proxy_factory("ProxyPass / {{o}}/ disablereuse=On\n", o=origin.url)
    for i in range(8):
        assert get(p, f"/echo?{i}") == 200
    assert origin.connections_accepted == 8
    assert len({r.conn_id for r in origin.requests}) == 8


def test_max_bounds_concurrent_backend_connections(proxy_factory, origin: Origin):
    p = proxy_factory("ProxyPass / {{o}}/ max=2\n", o=origin.url)
    statuses: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        status = get(p, f"/slow/300?{i}", timeout=10)
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert statuses == [200] * 6
    assert origin.max_open_connections <= 2, origin.max_open_connections
    assert origin.max_inflight <= 2


def test_pooled_connection_closed_by_origin_is_retried_transparently(
        proxy_factory, origin: Origin):
    p = proxy_factory("ProxyPass / {{o}}/\n", o=origin.url)
    assert get(p, "/echo/first") == 200
    assert origin.close_idle() == 1  # the backend's keep-alive timer fires
    deadline = time.monotonic() + 5
    while origin.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert origin.open_connections == 0
    for i in range(3):
        assert get(p, f"/echo/again{i}") == 200  # no 502 leaks out of the dead pooled socket
    assert [r.target for r in origin.requests][-3:] == [f"/echo/again{i}" for i in range(3)]
