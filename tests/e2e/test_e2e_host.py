"""Which host a request is for: an absolute-form target's authority replaces the Host field
(RFC 9112 §3.2.2; httpd rewrites the Host header), for choosing the virtual host, for
X-Forwarded-Host and for what ProxyPreserveHost sends; a request without any Host (HTTP/1.0)
under ProxyPreserveHost On sends the ServerName (reference §4.1). Checked against httpd with
PORTICO_E2E_SERVER=httpd.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.rawhttp import RawConn
from tests.support.origin import Origin
from tests.support.proxy import Portico

CONF = """
<VirtualHost 127.0.0.1:{{port}}>
    ServerName pre.test
    ProxyPreserveHost On
    ProxyPass / {{o}}/pre/
</VirtualHost>
<VirtualHost 127.0.0.1:{{port}}>
    ServerName b.test
    ProxyPreserveHost On
    ProxyPass / {{o}}/b/
</VirtualHost>
<VirtualHost 127.0.0.1:{{port}}>
    ServerName c.test
    ProxyPass / {{o}}/c/
</VirtualHost>
"""


@pytest.fixture(scope="module")
def proxy(module_origin: Origin, module_proxy_factory) -> Portico:
    return module_proxy_factory(CONF, o=module_origin.url)


def seen(conn: RawConn, raw: bytes) -> dict:
    conn.send(raw)
    resp = conn.read_final()
    assert resp.status == 200, resp
    return json.loads(resp.body)


def header(echo: dict, name: str) -> str | None:
    return next((v for k, v in echo["headers"] if k.lower() == name.lower()), None)


def test_absolute_form_authority_chooses_the_vhost_and_is_preserved(proxy, morigin):
    with RawConn(proxy.port) as conn:
        echo = seen(conn, b"GET http://b.test/echo?x=1 HTTP/1.1\r\nHost: c.test\r\n\r\n")
    assert echo["target"] == "/b/echo?x=1"           # b.test's ProxyPass, not c.test's
    assert header(echo, "Host") == "b.test"           # ProxyPreserveHost sends the authority
    assert header(echo, "X-Forwarded-Host") == "b.test"


def test_absolute_form_authority_with_a_port_in_x_forwarded_host(proxy, morigin):
    with RawConn(proxy.port) as conn:
        echo = seen(conn, b"GET http://c.test:8080/echo HTTP/1.1\r\nHost: b.test\r\n\r\n")
    assert echo["target"] == "/c/echo"
    assert header(echo, "Host") == morigin.hostport   # c.test does not preserve the host
    assert header(echo, "X-Forwarded-Host") == "c.test:8080"


def test_preserve_host_without_a_host_sends_the_server_name(proxy, morigin):
    with RawConn(proxy.port) as conn:
        echo = seen(conn, b"GET /echo HTTP/1.0\r\n\r\n")   # the address's default host
    assert echo["target"] == "/pre/echo"
    assert header(echo, "Host") == "pre.test"
    assert header(echo, "X-Forwarded-Host") is None
