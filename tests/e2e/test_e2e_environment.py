"""The request environment (§4.8): SetEnvIf*, BrowserMatch*, SetEnvIfExpr, SetEnv/UnsetEnv and
the mod_proxy switches they drive. Assertions are on what the origin received (a real origin
over loopback), on the client's response and on the access log.

Also run against real httpd (PORTICO_E2E_SERVER=httpd) to check the expectations.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.rawhttp import RawConn, request_bytes
from tests.support.origin import Origin
from tests.support.proxy import Portico, server_kind

CONF = r"""
LogFormat "%U tenant=%{TENANT}e tag=%{tag}e ua=%{agent_kind}e" envlog
CustomLog {{access_log}} envlog env=!quiet

SetEnvIf Request_URI "^/quiet" quiet
SetEnvIf Request_URI "^/tenant/(\w+)" TENANT=$1
SetEnvIf X-Debug "^yes$" tag=debug
SetEnvIf TENANT "^blue$" tag=blue-tenant
SetEnvIf X-Missing "^$" missing_ok
BrowserMatchNoCase "curl/(\d+)" agent_kind=curl-$1
SetEnvIfExpr "req('X-Flag') == 'on' && %{REQUEST_METHOD} == 'GET'" tag=flagged
SetEnvIf Request_URI "^/skip" no-proxy

ProxyPass /quiet {{o}}/echo
ProxyPass /tenant {{o}}/echo
ProxyPass /skip {{o}}/echo
ProxyPass /plain {{o}}/echo
ProxyPass /nokeep {{o}}/echo
ProxyPass /old {{o}}/echo
ProxyPass /chunk {{o}}/echo
ProxyPass /hints {{o}}/early-hints
ProxyPass /quiethints {{o}}/early-hints
ProxyPass /fresh {{o}}/echo
ProxyPass /unset {{o}}/echo

<Location /nokeep>
    SetEnv proxy-nokeepalive 1
</Location>
<Location /old>
    SetEnv force-proxy-request-1.0 1
</Location>
<Location /chunk>
    SetEnv proxy-sendchunked 1
</Location>
<Location /quiethints>
    SetEnv proxy-interim-response Suppress
</Location>
<Location /fresh>
    SetEnv proxy-initial-not-pooled 1
</Location>
<Location /unset>
    SetEnvIf Request_URI "." tag=from-location
    UnsetEnv TENANT
</Location>
"""


@pytest.fixture(scope="module")
def proxy(module_origin: Origin, module_proxy_factory) -> Portico:
    return module_proxy_factory(CONF, o=module_origin.url)


def get(proxy: Portico, target: str, headers=None, method: str = "GET"):
    with RawConn(proxy.port) as conn:
        return conn.request(method, target, headers=headers or [])


def test_setenvif_values_reach_the_log_and_a_variable_can_test_another(proxy, morigin):
    before = len(proxy.access_log)
    assert get(proxy, "/tenant/blue/x", [("X-Debug", "no"),
                                         ("User-Agent", "CURL/8.1")]).status == 200
    assert get(proxy, "/plain", [("X-Debug", "yes")]).status == 200
    assert get(proxy, "/plain", [("X-Flag", "on")]).status == 200
    lines = proxy.wait_for_log("access_log", "tag=flagged", since=before).splitlines()
    # $1 from the URI; the TENANT rule then fed the `tag` rule that tests TENANT
    assert lines[0] == "/tenant/blue/x tenant=blue tag=blue-tenant ua=curl-8"
    assert lines[1] == "/plain tenant=- tag=debug ua=-"
    assert lines[2] == "/plain tenant=- tag=flagged ua=-"


def test_env_condition_keeps_a_request_out_of_the_log(proxy, morigin):
    before = proxy.access_log
    assert get(proxy, "/quiet").status == 200
    assert get(proxy, "/plain?after-quiet").status == 200
    text = proxy.wait_for_log("access_log", "/plain tenant=- tag=- ua=-", since=len(before))
    assert "/quiet" not in text


def test_no_proxy_from_a_server_rule_skips_proxypass(proxy, morigin):
    resp = get(proxy, "/skip/me")
    assert resp.status == 404
    assert morigin.requests == []
    # the same rule does not touch other paths
    assert get(proxy, "/plain").status == 200


def test_proxy_nokeepalive_closes_every_backend_connection(proxy, morigin):
    for _ in range(3):
        assert get(proxy, "/nokeep").status == 200
    recs = morigin.wait_for_requests(3)
    assert [r.header("Connection") for r in recs] == ["close"] * 3
    assert len({r.conn_id for r in recs}) == 3


def test_force_proxy_request_1_0_sends_http10_and_spools_a_chunked_body(proxy, morigin):
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (b"hello ", b"chunked ", b"world"))
    raw = request_bytes("POST", "/old", [("Transfer-Encoding", "chunked")], host="proxy.test")
    with RawConn(proxy.port) as conn:
        conn.send(raw + body + b"0\r\n\r\n")
        resp = conn.read_final("POST")
    assert resp.status == 200
    (rec,) = morigin.wait_for_requests(1)
    assert rec.version == "HTTP/1.0"
    assert rec.header("Transfer-Encoding") is None
    assert rec.header("Content-Length") == str(len(b"hello chunked world"))
    assert rec.body == b"hello chunked world"
    # 1.0 without keep-alive closes: portico says so, httpd leaves it to the version
    assert rec.header("Connection") == (None if server_kind() == "httpd" else "close")


def test_force_proxy_request_1_0_answers_expect_itself(proxy, morigin):
    raw = request_bytes("POST", "/old", [("Expect", "100-continue"), ("Content-Length", "4")],
                        host="proxy.test")
    with RawConn(proxy.port) as conn:
        conn.send(raw)
        interim = conn.read_response("POST")
        assert interim.status == 100   # from the proxy: an HTTP/1.0 backend would not send it
        conn.send(b"data")
        resp = conn.read_final("POST")
    assert resp.status == 200
    (rec,) = morigin.wait_for_requests(1)
    assert rec.header("Expect") is None
    assert rec.body == b"data"


def test_proxy_sendchunked_keeps_a_known_length(proxy, morigin):
    # No input filter can change the body, so its length stands (as in httpd, which
    # chunks a sized body only when a filter may change it); a chunked body stays chunked.
    body = bytes(range(256)) * 1200
    with RawConn(proxy.port) as conn:
        assert conn.request("POST", "/chunk", body=body).status == 200
        piece = b"c" * 4096   # more than httpd reads ahead, so it streams this one too
        conn.send(request_bytes("POST", "/chunk", [("Transfer-Encoding", "chunked")])
                  + b"1000\r\n%s\r\n" % piece * 64 + b"0\r\n\r\n")
        assert conn.read_final("POST").status == 200
    sized, chunked = morigin.wait_for_requests(2)
    assert not sized.chunked
    assert sized.header("Content-Length") == str(len(body))
    assert sized.body == body
    assert chunked.chunked
    assert chunked.body == piece * 64


def test_interim_responses_pass_unless_suppressed(proxy, morigin):
    with RawConn(proxy.port) as conn:
        conn.send(request_bytes("GET", "/hints"))
        first = conn.read_response()
        assert first.status == 103
        assert first.header("Link") == "</style.css>; rel=preload"
        assert conn.read_response().status == 200
        conn.send(request_bytes("GET", "/quiethints"))
        assert conn.read_response().status == 200   # the 103 was dropped


def test_initial_not_pooled_takes_a_new_connection_for_a_first_request(proxy, morigin):
    assert get(proxy, "/plain").status == 200   # leaves an idle pooled connection
    with RawConn(proxy.port) as conn:
        assert conn.request("GET", "/fresh").status == 200
        assert conn.request("GET", "/fresh").status == 200
    first, second, third = morigin.wait_for_requests(3)
    assert second.conn_id != first.conn_id   # first request: not the pooled one
    assert third.conn_id in (first.conn_id, second.conn_id)   # later ones may reuse


def test_location_rules_add_to_the_servers_and_unsetenv_removes(proxy, morigin):
    resp = get(proxy, "/unset/tenant/blue")
    assert resp.status == 200
    assert json.loads(resp.body)["target"] == "/echo/tenant/blue"
    text = proxy.wait_for_log("access_log", "/unset/tenant/blue tenant")
    line = [x for x in text.splitlines() if x.startswith("/unset/")][-1]
    assert line == "/unset/tenant/blue tenant=- tag=from-location ua=-"


@pytest.mark.skipif(server_kind() == "httpd", reason="portico's own error text")
@pytest.mark.parametrize(("directive", "line", "message"), [
    ('SetEnvIf Request_URI "(" x', 3, "SetEnvIf: bad regular expression"),
    ("SetEnvIf Request_URI ^/a", 3, "SetEnvIf: takes at least 3 arguments"),
    ("BrowserMatch ^x !", 3, "BrowserMatch: '!' names no environment variable"),
    ("SetEnvIfExpr \"%{NO_SUCH_VAR} == 'x'\" v", 3, "SetEnvIfExpr: bad expression"),
    ("<Proxy *>\nSetEnv a b\n</Proxy>", 4, "SetEnv: not allowed in <Proxy>"),
])
def test_bad_environment_rules_name_file_line_and_directive(tmp_path, directive, line,
                                                            message):
    from tests.support.proxy import run_cli
    conf = tmp_path / "bad.conf"
    conf.write_text(f"Listen 127.0.0.1:1\nServerName t\n{directive}\n")
    result = run_cli(["-t", "-f", str(conf)])
    assert result.returncode != 0
    assert f"{conf}:{line}: {message}" in result.stderr


LOG_EXPR_CONF = r"""
LogFormat "%U %>s" short
CustomLog {{access_log}} short \
    "expr=%{REQUEST_STATUS} >= 400 || resp('X-Log') == 'yes' || -R '10.0.0.0/8'"
ProxyPass / {{o}}/
"""


def test_customlog_expr_logs_only_what_it_selects(module_origin, proxy_factory):
    proxy = proxy_factory(LOG_EXPR_CONF, o=module_origin.url)
    with RawConn(proxy.port) as conn:
        assert conn.request("GET", "/echo/plain").status == 200
        assert conn.request("GET", "/status/404").status == 404
        assert conn.request("GET", "/headers?X-Log=yes").status == 200
        assert conn.request("GET", "/headers?X-Log=no").status == 200
        assert conn.request("GET", "/status/503").status == 503
    text = proxy.wait_for_log("access_log", "/status/503 503")
    assert text.splitlines() == ["/status/404 404", "/headers 200", "/status/503 503"]


REQUIRE_CONF = r"""
SetEnvIf X-Api-Key "^k-[0-9]+$" api_client
SetEnv set_too_late 1
ProxyPass / {{o}}/
<Location /by-env>
    Require env api_client
</Location>
<Location /late-env>
    Require env set_too_late
</Location>
<Location /by-method>
    Require method GET HEAD
</Location>
<Location /by-expr>
    Require expr "req('X-Team') in {'red', 'blue'} && %{QUERY_STRING} !~ /debug/"
</Location>
<Location /not-env>
    <RequireAll>
        Require all granted
        Require not env api_client
    </RequireAll>
</Location>
"""


def test_require_env_method_and_expr(module_origin, proxy_factory):
    proxy = proxy_factory(REQUIRE_CONF, o=module_origin.url)
    cases = [
        ("GET", "/by-env/x", [("X-Api-Key", "k-42")], 200),
        ("GET", "/by-env/x", [("X-Api-Key", "nope")], 403),
        ("GET", "/by-env/x", [], 403),
        ("GET", "/late-env/x", [], 403),   # SetEnv runs after access control, as in httpd
        ("GET", "/by-method/x", [], 200),
        ("HEAD", "/by-method/x", [], 200),
        ("POST", "/by-method/x", [("Content-Length", "0")], 403),
        ("GET", "/by-expr/x", [("X-Team", "red")], 200),
        ("GET", "/by-expr/x?debug=1", [("X-Team", "red")], 403),
        ("GET", "/by-expr/x", [("X-Team", "green")], 403),
        ("GET", "/not-env/x", [], 200),
        ("GET", "/not-env/x", [("X-Api-Key", "k-1")], 403),
    ]
    got = []
    for method, target, headers, _ in cases:
        with RawConn(proxy.port) as conn:
            got.append(conn.request(method, target, headers=headers).status)
    assert got == [status for *_, status in cases]
    # refused requests never reached the origin
    reached = {rec.path for rec in module_origin.requests}
    assert "/by-expr/x" in reached and "/late-env/x" not in reached


INTERPOLATE_CONF = r"""
SetEnvIf Request_URI "^/t/(\w+)/" TENANT=$1
SetEnvIf X-Tenant "^(\w+)$" TENANT=$1
SetEnvIf X-Backend-Port "^([0-9]+)$" PORT=$1
ProxyPassInterpolateEnv On
ProxyPass /t/ {{o}}/echo/${TENANT}/ interpolate
ProxyPass /literal/ {{o}}/echo/${TENANT}/
ProxyPass /rd/ {{o}}/
ProxyPassReverse /t/ {{o}}/echo/${TENANT}/ interpolate
"""


def test_interpolate_takes_setenvif_variables(module_origin, proxy_factory):
    proxy = proxy_factory(INTERPOLATE_CONF, o=module_origin.url)
    target = "/redirect?to=" + module_origin.url + "/echo/blue/next"
    with RawConn(proxy.port) as conn:
        blue = conn.request("GET", "/t/blue/a?x=1")
        red = conn.request("GET", "/t/red/b")
        literal = conn.request("GET", "/literal/d")
        moved = conn.request("GET", "/rd" + target, headers=[("X-Tenant", "blue")])
        not_mapped = conn.request("GET", "/rd" + target, headers=[("X-Tenant", "red")])
    assert json.loads(blue.body)["target"] == "/echo/blue/blue/a?x=1"
    assert json.loads(red.body)["target"] == "/echo/red/red/b"
    assert json.loads(literal.body)["target"] == "/echo/$%7BTENANT%7D/d"   # not flagged
    # the reverse rule is interpolated with each request's own TENANT
    assert moved.header("Location") == "http://proxy.test/t/next"   # Host: proxy.test
    assert not_mapped.header("Location") == module_origin.url + "/echo/blue/next"


@pytest.mark.skipif(server_kind() == "httpd", reason="httpd cannot parse a variable port")
def test_interpolate_a_port_from_a_request_header(module_origin, proxy_factory):
    proxy = proxy_factory(r"""
SetEnvIf X-Backend-Port "^([0-9]+)$" PORT=$1
ProxyPassInterpolateEnv On
ProxyPass /p/ http://127.0.0.1:${PORT}/echo/port/ interpolate
""")
    port = module_origin.url.rsplit(":", 1)[1]
    with RawConn(proxy.port) as conn:
        by_port = conn.request("GET", "/p/c", headers=[("X-Backend-Port", port)])
    assert json.loads(by_port.body)["target"] == "/echo/port/c"
