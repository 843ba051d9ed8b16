"""Request construction (§4): hop-by-hop removal, X-Forwarded-*, Via (§4.3, request and
response), Host with and without ProxyPreserveHost (§4.1), Max-Forwards (§4.6),
ProxyAddHeaders Off. Assertions are on the header list the origin actually received.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.rawhttp import RawConn
from tests.support.origin import Origin
from tests.support.proxy import Portico

CONF = """
ProxyPass /e {{o}}/echo
ProxyPass /preserve {{o}}/echo
ProxyPass /noadd {{o}}/echo
ProxyPass /h {{o}}/headers
<Location /preserve>
    ProxyPreserveHost On
</Location>
<Location /noadd>
    ProxyAddHeaders Off
</Location>

<VirtualHost *:{{port}}>
    ServerName proxy.test
</VirtualHost>
<VirtualHost *:{{port}}>
    ServerName via-on.test
    ProxyVia On
</VirtualHost>
<VirtualHost *:{{port}}>
    ServerName via-full.test
    ProxyVia Full
</VirtualHost>
<VirtualHost *:{{port}}>
    ServerName via-block.test
    ProxyVia Block
</VirtualHost>
<VirtualHost *:{{port}}>
    ServerName maxfwd.test
    ProxyMaxForwards 5
</VirtualHost>
"""


@pytest.fixture(scope="module")
def proxy(module_origin: Origin, module_proxy_factory) -> Portico:
    return module_proxy_factory(CONF, o=module_origin.url)


def send(proxy: Portico, target: str, headers: list[tuple[str, str]] | None = None,
         host: str = "proxy.test", method: str = "GET"):
    """Send one raw request; returns the client's response."""
    with RawConn(proxy.port) as conn:
        return conn.request(method, target, headers=headers or [], host=host)


def forwarded(proxy: Portico, origin: Origin, target: str = "/e",
              headers: list[tuple[str, str]] | None = None, host: str = "proxy.test",
              method: str = "GET"):
    """Send a request that must reach the origin; return (client response, origin record)."""
    resp = send(proxy, target, headers, host, method)
    assert resp.status == 200, resp
    (rec,) = origin.wait_for_requests(1)
    return resp, rec


# §4.4 hop-by-hop ------------------------------------------------------------------------

def test_hop_by_hop_and_connection_listed_headers_are_removed(proxy, morigin):
    _, rec = forwarded(proxy, morigin, headers=[
        ("Connection", "keep-alive, X-Custom-Hop"),
        ("X-Custom-Hop", "secret"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "X-Sum"),
        ("Proxy-Connection", "keep-alive"),
        ("Upgrade", "made-up/1"),
        ("X-End-To-End", "kept"),
    ])
    names = {k.lower() for k, _ in rec.headers}
    for gone in ("x-custom-hop", "keep-alive", "te", "trailer", "proxy-connection", "upgrade"):
        assert gone not in names, (gone, rec.headers)
    assert "x-custom-hop" not in (rec.header("Connection") or "").lower()
    assert rec.header("X-End-To-End") == "kept"


def test_host_is_the_first_header_sent(proxy, morigin):
    _, rec = forwarded(proxy, morigin, headers=[("X-A", "1")])
    assert rec.headers[0][0].lower() == "host"


def test_request_line_is_http11(proxy, morigin):
    _, rec = forwarded(proxy, morigin)
    assert rec.version == "HTTP/1.1"


# §4.1 Host ------------------------------------------------------------------------------

def test_host_is_backend_authority_without_preserve(proxy, morigin):
    _, rec = forwarded(proxy, morigin, host="front.example:8081")
    assert rec.header_all("Host") == [morigin.hostport]


def test_host_is_client_host_with_preserve(proxy, morigin):
    _, rec = forwarded(proxy, morigin, "/preserve", host="front.example:8081")
    assert rec.header_all("Host") == ["front.example:8081"]


# §4.2 X-Forwarded-* ---------------------------------------------------------------------

def test_x_forwarded_headers_added(proxy, morigin):
    _, rec = forwarded(proxy, morigin, host="front.example")
    assert rec.header_all("X-Forwarded-For") == ["127.0.0.1"]
    assert rec.header_all("X-Forwarded-Host") == ["front.example"]
    assert rec.header_all("X-Forwarded-Server") == ["proxy.test"]
    # httpd adds neither of these; deployments set them with RequestHeader.
    assert rec.header("Forwarded") is None
    assert rec.header("X-Forwarded-Proto") is None


def test_x_forwarded_values_are_appended_to_existing(proxy, morigin):
    _, rec = forwarded(proxy, morigin, host="front.example", headers=[
        ("X-Forwarded-For", "1.2.3.4"),
        ("X-Forwarded-Host", "outer.example"),
        ("X-Forwarded-Server", "outer-proxy"),
    ])
    assert rec.header_all("X-Forwarded-For") == ["1.2.3.4, 127.0.0.1"]
    assert rec.header_all("X-Forwarded-Host") == ["outer.example, front.example"]
    assert rec.header_all("X-Forwarded-Server") == ["outer-proxy, proxy.test"]


def test_x_forwarded_server_is_the_vhost_servername(proxy, morigin):
    _, rec = forwarded(proxy, morigin, host="via-on.test")
    assert rec.header_all("X-Forwarded-Server") == ["via-on.test"]


def test_proxy_add_headers_off(proxy, morigin):
    _, rec = forwarded(proxy, morigin, "/noadd", headers=[("X-Forwarded-For", "1.2.3.4")])
    assert rec.header_all("X-Forwarded-For") == ["1.2.3.4"]  # untouched
    assert rec.header("X-Forwarded-Host") is None
    assert rec.header("X-Forwarded-Server") is None


# §4.3 Via -------------------------------------------------------------------------------

def test_via_off_passes_existing_via_and_adds_none(proxy, morigin):
    resp, rec = forwarded(proxy, morigin, headers=[("Via", "1.0 upstream")])
    assert rec.header_all("Via") == ["1.0 upstream"]
    assert resp.header("Via") is None


@pytest.mark.parametrize(("host", "via"), [
    # The port comes from the client's Host (UseCanonicalName Off) and is shown only when
    # it is not the scheme's default.
    ("via-on.test", "1.1 via-on.test"),
    ("via-on.test:8081", "1.1 via-on.test:8081"),
])
def test_via_on_appends_to_request_and_response(proxy, morigin, host, via):
    resp, rec = forwarded(proxy, morigin, host=host, headers=[("Via", "1.0 upstream")])
    assert rec.header_all("Via") == [f"1.0 upstream, {via}"]
    assert resp.header_all("Via") == [via]


def test_via_full_adds_a_server_comment(proxy, morigin):
    resp, rec = forwarded(proxy, morigin, host="via-full.test")
    # The comment names the server software (Apache/2.4.x there, portico/x.y here).
    pat = re.compile(r"^1\.1 via-full\.test \(.+\)$")
    assert pat.match(rec.header("Via") or ""), rec.headers
    assert pat.match(resp.header("Via") or ""), resp.headers


def test_via_block_removes_request_via(proxy, morigin):
    resp, rec = forwarded(proxy, morigin, host="via-block.test", headers=[("Via", "1.0 up")])
    assert rec.header_all("Via") == []
    assert resp.header("Via") is None


def test_via_block_leaves_the_backends_response_via_alone(proxy, morigin):
    resp = send(proxy, "/h?Via=1.1%20backend", host="via-block.test")
    assert resp.status == 200
    assert resp.header_all("Via") == ["1.1 backend"]


def test_via_on_appends_to_backend_response_via(proxy, morigin):
    resp = send(proxy, "/h?Via=1.1%20backend", host="via-on.test")
    assert resp.status == 200
    # httpd adds a second Via field; one comma-joined field means the same (RFC 9110 §5.3).
    assert ", ".join(resp.header_all("Via")) == "1.1 backend, 1.1 via-on.test"


# §4.6 Max-Forwards ----------------------------------------------------------------------

@pytest.mark.parametrize("value", ["abc", "-1"])
def test_max_forwards_unparsable_or_negative_is_400(proxy, morigin, value):
    assert send(proxy, "/e", [("Max-Forwards", value)]).status == 400
    assert morigin.requests == []


def test_max_forwards_zero_on_get_is_400(proxy, morigin):
    assert send(proxy, "/e", [("Max-Forwards", "0")]).status == 400
    assert morigin.requests == []


def test_max_forwards_zero_on_options_is_answered_locally(proxy, morigin):
    resp = send(proxy, "/e", [("Max-Forwards", "0")], method="OPTIONS")
    assert resp.status == 200
    assert morigin.requests == []


def test_max_forwards_positive_is_decremented(proxy, morigin):
    _, rec = forwarded(proxy, morigin, headers=[("Max-Forwards", "7")])
    assert rec.header_all("Max-Forwards") == ["6"]


def test_max_forwards_absent_with_configured_value(proxy, morigin):
    _, rec = forwarded(proxy, morigin, host="maxfwd.test")
    assert rec.header_all("Max-Forwards") == ["5"]


def test_max_forwards_absent_by_default_adds_nothing(proxy, morigin):
    _, rec = forwarded(proxy, morigin)
    assert rec.header("Max-Forwards") is None
