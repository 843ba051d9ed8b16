"""Backend transports: https origins with SSLProxy* verification (§15.11) and unix-socket
origins (§15.4)."""

from __future__ import annotations

import json

from tests.e2e.rawhttp import RawConn
from tests.support.proxy import Portico, server_kind

# httpd 2.4.71 answers 500 "Error during SSL Handshake" when backend verification fails;
# portico treats it as any other backend failure, 502 (DESIGN rule 3). See docs/compat.md.
TLS_FAILURE = 500 if server_kind() == "httpd" else 502

TLS_CONF = """
SSLProxyEngine On
SSLProxyVerify require
SSLProxyCACertificateFile {{ca}}
SSLProxyCheckPeerName {{check_name}}
SSLProxyCheckPeerCN {{check_name}}
ProxyPass /tls {{tls}}
"""


def get(proxy: Portico, target: str):
    with RawConn(proxy.port) as conn:
        return conn.request("GET", target)


def start_tls(proxy_factory, origin, ca, check_name: str = "on") -> Portico:
    # By name: certificate name checks are about DNS names (localhost is 127.0.0.1 only here).
    url = f"https://localhost:{origin.port}"
    return proxy_factory(TLS_CONF, tls=url, ca=ca, check_name=check_name)


def test_https_origin_verified_with_the_right_ca(proxy_factory, tls_origin, tls_ca_file):
    p = start_tls(proxy_factory, tls_origin, tls_ca_file)
    resp = get(p, "/tls/echo/secure")
    assert resp.status == 200
    assert json.loads(resp.body)["target"] == "/echo/secure"
    assert tls_origin.requests[0].target == "/echo/secure"


def test_https_origin_with_an_untrusted_ca_fails(proxy_factory, tls_origin, other_ca_file):
    p = start_tls(proxy_factory, tls_origin, other_ca_file)
    assert get(p, "/tls/echo").status == TLS_FAILURE
    assert tls_origin.requests == []


def test_https_origin_with_a_mismatched_name_fails(
        proxy_factory, tls_origin_wrong_name, tls_ca_file):
    p = start_tls(proxy_factory, tls_origin_wrong_name, tls_ca_file)
    assert get(p, "/tls/echo").status == TLS_FAILURE
    assert tls_origin_wrong_name.requests == []


def test_mismatched_name_accepted_when_name_check_is_off(
        proxy_factory, tls_origin_wrong_name, tls_ca_file):
    p = start_tls(proxy_factory, tls_origin_wrong_name, tls_ca_file, check_name="off")
    assert get(p, "/tls/echo").status == 200


def test_unix_socket_origin(proxy_factory, unix_origin):
    p = proxy_factory("ProxyPass /u/ unix:{{sock}}|http://localhost/\n",
                      sock=unix_origin.unix_path)
    resp = get(p, "/u/echo/over-unix?q=1")
    assert resp.status == 200
    (rec,) = unix_origin.wait_for_requests(1)
    assert rec.target == "/echo/over-unix?q=1"
    assert rec.header("Host") == "localhost"  # the nominal host after "|"


PRESERVE_CONF = """
SSLProxyEngine On
SSLProxyVerify require
SSLProxyCACertificateFile {{ca}}
ProxyPreserveHost On
ProxyPass /tls {{tls}}
"""


def test_a_pooled_tls_connection_serves_only_its_own_server_name(
        proxy_factory, tls_origin, tls_ca_file):
    """With ProxyPreserveHost the server name (SNI and the certificate check) follows the
    client's Host: a connection checked for "localhost" must not carry a request for another
    name, whose check would fail (§4.1)."""
    url = f"https://localhost:{tls_origin.port}"
    p = proxy_factory(PRESERVE_CONF, tls=url, ca=tls_ca_file)
    with RawConn(p.port) as conn:
        assert conn.request("GET", "/tls/echo/a", host="localhost").status == 200
    with RawConn(p.port) as conn:   # the pool now holds a connection made for "localhost"
        assert conn.request("GET", "/tls/echo/b", host="evil.example").status == TLS_FAILURE
    with RawConn(p.port) as conn:
        assert conn.request("GET", "/tls/echo/c", host="localhost").status == 200
    assert [r.target for r in tls_origin.requests] == ["/echo/a", "/echo/c"]
