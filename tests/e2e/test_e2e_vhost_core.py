"""Core connection settings inside <VirtualHost>: KeepAlive, MaxKeepAliveRequests,
KeepAliveTimeout and Timeout apply to the requests of the host they select (httpd's
r->server), Timeout also as the default backend timeout; LimitRequestLine and co. are read
before any Host is known, so the host the address defaults to (the first listed) sets them
for every request on it. Checked against httpd with PORTICO_E2E_SERVER=httpd.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.rawhttp import RawConn
from tests.support.origin import Origin
from tests.support.proxy import Portico, server_kind

# The first host is the default for the address: its LimitRequestLine holds for all.
CONF = """
<VirtualHost 127.0.0.1:{{port}}>
    ServerName main.test
    LimitRequestLine 1024
    ProxyPass / {{o}}/
</VirtualHost>
<VirtualHost 127.0.0.1:{{port}}>
    ServerName noka.test
    KeepAlive Off
    ProxyPass / {{o}}/
</VirtualHost>
<VirtualHost 127.0.0.1:{{port}}>
    ServerName few.test
    MaxKeepAliveRequests 2
    LimitRequestLine 100
    ProxyPass / {{o}}/
</VirtualHost>
<VirtualHost 127.0.0.1:{{port}}>
    ServerName brief.test
    KeepAliveTimeout 1
    ProxyPass / {{o}}/
</VirtualHost>
<VirtualHost 127.0.0.1:{{port}}>
    ServerName short.test
    Timeout 1
    ProxyPass / {{o}}/
</VirtualHost>
"""

HTTPD = server_kind() == "httpd"
# A read timeout on the backend: httpd's mod_proxy_http answers 502 (reference §5.3).
TIMEOUT_STATUS = 502


@pytest.fixture(scope="module")
def proxy(module_origin: Origin, module_proxy_factory) -> Portico:
    return module_proxy_factory(CONF, o=module_origin.url)


def test_keepalive_off_in_a_vhost_closes(proxy, morigin):
    with RawConn(proxy.port) as conn:
        resp = conn.request("GET", "/echo/noka", host="noka.test")
        assert resp.status == 200
        assert (resp.header("Connection") or "").lower() == "close"
        assert conn.closed_by_peer(3.0)
    with RawConn(proxy.port) as conn:   # the main host keeps its connections
        for _ in range(3):
            resp = conn.request("GET", "/echo/main", host="main.test")
            assert resp.status == 200
            assert (resp.header("Connection") or "").lower() != "close"
        assert not conn.closed_by_peer(0.3)


def test_max_keepalive_requests_in_a_vhost(proxy, morigin):
    with RawConn(proxy.port) as conn:
        # MaxKeepAliveRequests 2 counts reuses: the third request is the last.
        for i in range(2):
            resp = conn.request("GET", f"/echo/few{i}", host="few.test")
            assert (resp.header("Connection") or "").lower() != "close", i
        resp = conn.request("GET", "/echo/few2", host="few.test")
        assert resp.status == 200
        assert (resp.header("Connection") or "").lower() == "close"
        assert conn.closed_by_peer(3.0)
    with RawConn(proxy.port) as conn:   # the main host's limit is httpd's default, 100
        for i in range(4):
            resp = conn.request("GET", f"/echo/many{i}", host="main.test")
            assert (resp.header("Connection") or "").lower() != "close", i


def test_keepalive_timeout_in_a_vhost(proxy, morigin):
    with RawConn(proxy.port) as conn:
        assert conn.request("GET", "/echo/brief", host="brief.test").status == 200
        started = time.monotonic()
        assert conn.closed_by_peer(4.0)
        assert time.monotonic() - started < 3.5   # its own 1 s, not the main server's 5 s
    with RawConn(proxy.port) as conn:
        assert conn.request("GET", "/echo/main", host="main.test").status == 200
        assert not conn.closed_by_peer(2.0)


def test_timeout_in_a_vhost_is_the_backend_timeout(proxy_factory, origin):
    # A fresh server: httpd sets a backend socket's timeout when it connects, so the
    # request of the host with Timeout 1 must be the one that opens the connection.
    p = proxy_factory(CONF, o=origin.url)
    with RawConn(p.port) as conn:
        resp = conn.request("GET", "/slow/2500", host="short.test")
        assert resp.status == TIMEOUT_STATUS
    with RawConn(p.port) as conn:
        resp = conn.request("GET", "/slow/2500", host="main.test")
        assert resp.status == 200
        assert json.loads(resp.body)["target"] == "/slow/2500"


def test_timeout_in_a_vhost_applies_on_a_reused_connection(proxy_factory, origin):
    if HTTPD:
        pytest.skip("httpd keeps the timeout a backend connection was opened with "
                    "(docs/compat.md)")
    p = proxy_factory(CONF, o=origin.url)
    with RawConn(p.port) as conn:
        assert conn.request("GET", "/echo/warm", host="main.test").status == 200
    with RawConn(p.port) as conn:
        assert conn.request("GET", "/slow/2500", host="short.test").status == TIMEOUT_STATUS
    assert origin.connections_accepted == 1   # the pooled connection was the one used


def test_request_line_limit_is_the_default_hosts(proxy, morigin):
    # few.test's own LimitRequestLine 100 is never read: the limit is main.test's 1024.
    with RawConn(proxy.port) as conn:
        resp = conn.request("GET", "/echo/" + "x" * 300, host="few.test")
        assert resp.status == 200
    with RawConn(proxy.port) as conn:
        resp = conn.request("GET", "/echo/" + "x" * 2000, host="noka.test")
        assert resp.status == 414


@pytest.mark.skipif(HTTPD, reason="httpd's Keep-Alive max= counts down")
def test_keep_alive_header_shows_the_selected_hosts_values(proxy, morigin):
    # Keep-Alive is sent to an HTTP/1.0 client that asked for keep-alive
    ask = [("Connection", "keep-alive")]
    with RawConn(proxy.port) as conn:
        main = conn.request("GET", "/echo/a", headers=ask, host="main.test", version="HTTP/1.0")
    with RawConn(proxy.port) as conn:
        brief = conn.request("GET", "/echo/b", headers=ask, host="brief.test",
                             version="HTTP/1.0")
    assert main.header("Keep-Alive") is not None and main.header("Keep-Alive").startswith(
        "timeout=5,")
    assert brief.header("Keep-Alive") is not None and brief.header("Keep-Alive").startswith(
        "timeout=1,")   # KeepAliveTimeout 1 in that host
