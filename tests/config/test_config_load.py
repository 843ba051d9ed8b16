"""load_config on good configs: every directive, merging, locations, workers."""

from __future__ import annotations

import logging
import re

import pytest

from portico.config import load_config
from portico.config.model import (
    BadHeader,
    EncodedSlashes,
    ProxyVia,
    RouteKind,
)
from tests.config.conftest import FIXTURES

FULL = FIXTURES / "full"


@pytest.fixture(scope="module")
def full():
    return load_config(str(FULL / "main.conf"))


def test_listen_and_names(full) -> None:
    assert [(item.host, item.port, item.protocol) for item in full.listens] == [
        (None, 8080, None), ("127.0.0.1", 8081, "http"), ("::1", 8082, None)]
    assert full.main.server_name == "front.example"
    assert full.main.port == 8443
    assert full.main.addresses == ()
    alpha, beta, gamma = full.vhosts
    assert alpha.server_name == "alpha.example"
    assert alpha.server_aliases == ("www.alpha.example", "*.alpha.example")
    assert alpha.addresses == (("*", 8080), ("127.0.0.1", 8081))
    assert (beta.server_name, beta.port) == ("beta.example", 8080)
    assert gamma.addresses == (("::1", 8082), ("_default_", None))
    assert gamma.server_name == "front.example"  # inherited from the main server


def test_core_settings_and_files(full) -> None:
    core = full.core
    assert (core.timeout, core.keepalive, core.keepalive_timeout) == (30.0, False, 0.5)
    assert core.max_keepalive_requests == 0
    assert (core.limit_request_line, core.limit_request_field_size) == (4096, 2048)
    assert core.limit_request_fields == 50
    assert full.main.settings.limit_request_body == 1048576
    assert core.graceful_shutdown_timeout == 7.0
    assert full.main.core == core
    assert full.vhosts[0].core.timeout == 9.0
    assert full.vhosts[0].core.keepalive is False  # the rest inherited
    assert full.pid_file == str(FULL / "run/portico.pid")
    assert full.error_log == str(FULL / "logs/error.log")
    assert full.vhosts[0].error_log == str(FULL / "logs/alpha-error.log")
    assert full.vhosts[1].error_log is None
    assert full.log_level == "warn"
    assert dict(full.module_log_levels) == {"proxy": "debug", "ssl": "info"}
    assert full.server_root == str(FULL)
    assert full.defines["BACKEND"] == "127.0.0.1:9001"
    assert full.defines["WITH_TLS"] == ""


def test_proxy_settings(full) -> None:
    settings = full.main.settings
    assert settings.preserve_host is True
    assert settings.add_headers is False
    assert settings.via is ProxyVia.FULL
    assert settings.timeout == 20.0
    assert settings.error_override is True
    assert settings.error_override_codes == {502, 503}
    assert settings.bad_header is BadHeader.START_BODY
    assert (settings.iobuffersize, settings.receivebuffersize) == (16384, 4096)
    assert settings.max_forwards == 10
    assert settings.proxy_100_continue is False
    assert settings.source_address == "127.0.0.1"
    assert settings.interpolate_env is True
    assert settings.proxy_requests is False
    assert settings.allow_encoded_slashes is EncodedSlashes.NO_DECODE
    assert dict(settings.error_documents) == {
        404: "/errors/404.html", 500: '"Something broke', 503: "http://status.example/down"}


def test_tls_client_settings(full) -> None:
    tls = full.main.settings.tls
    assert tls.engine is True
    assert (tls.verify, tls.verify_depth) == ("require", 3)
    assert not (tls.check_peer_name or tls.check_peer_cn or tls.check_peer_expire)
    assert tls.ca_certificate_file == str(FULL / "certs/ca.pem")
    assert tls.ca_certificate_path == str(FULL / "certs")
    assert tls.machine_certificate_file == str(FULL / "certs/client.pem")
    assert tls.machine_certificate_chain_file == str(FULL / "certs/ca.pem")
    assert tls.protocol == "all -SSLv3 -TLSv1"
    assert (tls.cipher_suite, tls.cipher_suite_tls13) == ("HIGH:!aNULL",
                                                          "TLS_AES_256_GCM_SHA384")


def test_vhost_inherits_unset_settings(full) -> None:
    alpha, beta, _ = full.vhosts
    assert alpha.settings.via is ProxyVia.BLOCK
    assert alpha.settings.timeout == 3.0
    assert alpha.settings.preserve_host is True            # inherited
    assert alpha.settings.tls.verify == "none"              # overridden field ...
    assert alpha.settings.tls.verify_depth == 3             # ... others inherited
    assert 404 not in alpha.settings.error_documents        # "default" removed it
    assert alpha.settings.error_documents[500] == '"Something broke'
    assert beta.settings == full.main.settings


def test_routes_and_flags(full) -> None:
    routes = {route.path: route for route in full.main.routes}
    assert routes["/static"].is_exclusion and routes["/static"].worker is None
    app = routes["/app/"]
    assert (app.kind, app.target, app.nocanon) == (RouteKind.PREFIX,
                                                   "http://127.0.0.1:9001/app/", True)
    img = routes[r"^/img/(.*)\.png$"]
    assert img.kind is RouteKind.REGEX
    assert img.pattern is not None and img.pattern.match("/img/a/b.png").group(1) == "a/b"
    tilde = routes["^/re/(.*)$"]
    assert tilde.kind is RouteKind.REGEX and tilde.target == "http://regex.example/$1"
    enc = routes["/enc/"]
    assert (enc.mapping, enc.noquery, enc.interpolate) == ("encoded", True, True)
    # Include order: glob sorted by name, then the directory included by 20-second.conf
    assert [route.path for route in full.main.routes][-3:] == ["/first", "/second", "/sub"]


def test_route_inheritance(full) -> None:
    alpha, beta, gamma = full.vhosts
    main_paths = [route.path for route in full.main.routes]
    assert [route.path for route in alpha.routes] == [*main_paths, "/own/"]
    assert [route.path for route in beta.routes] == ["/beta/"]   # ProxyPassInherit Off
    assert [route.path for route in gamma.routes] == [*main_paths, "/"]
    # reverse and cookie rules always inherit, main server first
    assert [(rule.fake, rule.real) for rule in beta.reverse] == [
        ("/app/", "http://127.0.0.1:9001/app/"), ("/i/", "http://internal.example/"),
        ("/beta/", "http://beta.example/")]
    assert full.main.reverse[1].interpolate is True
    assert [(rule.fake, rule.real) for rule in beta.cookie_domains] == [
        ("front.example", "backend.internal")]
    assert [(rule.fake, rule.real) for rule in beta.cookie_paths] == [("/r/app", "/app")]


def test_locations(full) -> None:
    loc, match = full.main.locations
    assert loc.path == "/loc/" and loc.pattern is None
    assert loc.proxy_pass is not None and loc.proxy_pass.path == "/loc/"
    assert loc.proxy_pass.worker == "http://loc.example/"
    assert [(rule.fake, rule.real) for rule in loc.reverse] == [("/loc/", "http://loc.example/")]
    assert [(rule.fake, rule.real) for rule in loc.cookie_paths] == [("/loc", "/int")]
    assert loc.overrides["preserve_host"] is False
    assert dict(loc.overrides["error_documents"])[502] == '"loc bad gateway'
    assert dict(loc.overrides["error_documents"])[404] == "/errors/404.html"
    assert set(loc.overrides) == {"preserve_host", "error_documents"}
    assert match.pattern is not None and match.pattern.pattern == r"^/lm/(\d+)"
    assert match.proxy_pass is not None and match.proxy_pass.kind is RouteKind.REGEX
    assert match.handler == "proxy:http://lm.example/"
    alpha = full.vhosts[0]
    assert [location.path for location in alpha.locations] == [
        "/loc/", r"^/lm/(\d+)", "/alpha-loc"]
    # the main server's Location is rebuilt with the vhost's error documents as base
    assert 404 not in alpha.locations[0].overrides["error_documents"]


def test_workers(full) -> None:
    workers = full.workers
    app = workers["http://127.0.0.1:9001/app/"]
    assert app.params.timeout == 5.0                 # timeout=99 ignored: shared worker
    assert app.params.connectiontimeout == 0.25
    assert (app.params.retry, app.params.keepalive, app.params.max) == (0.0, True, 20)
    assert app.params.ttl == 30.0                    # from ProxySet
    assert (app.params.status_set, app.params.status_clear) == ("H", "E")
    assert "http://127.0.0.1:9001/app/special/" not in workers
    routes = {route.path: route for route in full.main.routes}
    assert routes["/app/special/"].worker == app.name
    img = workers["http://images.example:8080/png/$1"]
    assert img.has_placeholders and img.params.enablereuse is True   # explicit
    regex = workers["http://regex.example/$1"]
    assert regex.has_placeholders and regex.params.enablereuse is False
    sock = workers["unix:sockets/app.sock|http://nominal/app/"]
    assert sock.unix_path == str(FULL / "run/sockets/app.sock")
    assert (sock.scheme, sock.host, sock.port, sock.path) == ("http", "nominal", 80, "/app/")
    proxy_set = workers["http://proxyset.example/"]
    assert (proxy_set.params.acquire, proxy_set.params.loadfactor) == (0.1, 250)
    assert workers["http://first.example"].path == ""


def test_logs(full) -> None:
    logs = full.main.access_logs
    assert [log.target for log in logs] == [
        str(FULL / "logs/access.log"), "|/usr/bin/logger -t portico",
        str(FULL / "logs/expr.log"), str(FULL / "logs/transfer.log")]
    assert logs[0].format == full.log_formats["combined"]
    assert logs[1].format == '%h %>s "%r"' and logs[1].env_condition == "!dontlog"
    assert logs[2].format == "%h %{X-Id}i"
    assert logs[2].expr_condition == "%{REQUEST_STATUS} >= 500"
    assert logs[3].format == "%h %t default-for-transfer"
    assert set(full.log_formats) >= {"common", "combined", "referer", "agent", "short"}
    alpha, beta, _ = full.vhosts
    assert [(log.target, log.format) for log in alpha.access_logs] == [
        (str(FULL / "logs/alpha.log"), "%v %h")]
    assert beta.access_logs == logs                  # no logs of its own: main's


def test_default_log_format_and_late_nickname(load) -> None:
    config = load("""
        TransferLog /tmp/t.log
        CustomLog /tmp/c.log later
        LogFormat "%h later" later
    """)
    assert [log.format for log in config.main.access_logs] == [
        '%h %l %u %t "%r" %>s %b', "%h later"]


def test_worker_naming_and_sharing(load, caplog) -> None:
    with caplog.at_level(logging.WARNING, "portico.config"):
        config = load("""
            ProxyPass /a HTTP://Back.Example:80/Path timeout=60
            ProxyPass /e http://back.example/PathMore timeout=10
            ProxyPass /o http://back.example:8080/Path
            ProxyPass /lower http://back.example/path
            ProxyPass /v6 http://[::1]:9000/
            ProxyPass /bb http://back.examplex/Path
            ProxyPass /s1 unix:/run/a.sock|http://localhost/
            ProxyPass /s2 unix:/run/b.sock|http:///
        """)
    names = list(config.workers)
    assert names == [
        "http://back.example/Path", "http://back.example:8080/Path", "http://back.example/path",
        "http://[::1]:9000/", "http://back.examplex/Path",
        "unix:/run/a.sock|http://localhost/", "unix:/run/b.sock|http://localhost/"]
    routes = {route.path: route for route in config.main.routes}
    assert routes["/e"].worker == "http://back.example/Path"
    assert config.workers["http://back.example/Path"].params.timeout == 60.0
    assert "sharing worker 'http://back.example/Path' instead of creating new worker " \
           "'http://back.example/PathMore'" in caplog.text
    assert "ignoring parameter 'timeout=10'" in caplog.text
    assert re.search(r"main\.conf:2: sharing", caplog.text)


def test_longest_prefix_worker_is_shared(load) -> None:
    config = load("""
        ProxyPass /a http://b/
        ProxyPass /b http://b/app/
        ProxyPass /c http://b/app/deeper
    """)
    assert [route.worker for route in config.main.routes] == [
        "http://b/", "http://b/", "http://b/"]
    config = load("""
        ProxyPass /b http://b/app/
        ProxyPass /a http://b/
        ProxyPass /c http://b/app/deeper
    """)
    assert [route.worker for route in config.main.routes] == [
        "http://b/app/", "http://b/", "http://b/app/"]


def test_proxy_section_parameters_and_order(load, caplog) -> None:
    with caplog.at_level(logging.WARNING, "portico.config"):
        config = load("""
            <Proxy "fcgi://localhost/" max=10>
                ProxySet ping=2
            </Proxy>
            ProxyPass /php/ fcgi://localhost/ timeout=5
            ProxyPass /fc fcgi://other/
        """)
    worker = config.workers["fcgi://localhost/"]
    assert (worker.port, worker.params.max, worker.params.ping) == (8000, 10, 2.0)
    assert worker.params.timeout is None                   # ignored: worker existed
    assert worker.params.enablereuse is False              # fcgi default
    assert "ignoring parameter 'timeout=5'" in caplog.text


def test_proxy_requests_and_inherit_at_server_level(load) -> None:
    config = load("""
        ProxyRequests On
        ProxyPassInherit Off
        ProxyPass /main http://m/
        <VirtualHost *:80>
            ProxyPass /v http://v/
        </VirtualHost>
        <VirtualHost *:81>
            ProxyPassInherit On
            ProxyRequests Off
        </VirtualHost>
    """)
    assert config.proxy_requests is True
    first, second = config.vhosts
    assert [route.path for route in first.routes] == ["/v"]
    assert first.settings.proxy_requests is True
    assert [route.path for route in second.routes] == ["/main"]
    assert second.settings.proxy_requests is False


def test_location_forms(load) -> None:
    config = load("""
        <Location ~ "^/t(\\d)">
            ProxyPass http://tilde/
        </Location>
        <Location /pm>
            ProxyPassMatch http://pm/
        </Location>
        <Location /ex>
            ProxyPass !
        </Location>
        <Location /cookie>
            ProxyPassReverseCookieDomain in.example out.example interpolate
            ProxyPassReverse http://c/ interpolate
            ProxyAddHeaders Off
            Proxy100Continue Off
            ProxyErrorOverride On
            ProxyPassInterpolateEnv On
            SetHandler None
        </Location>
    """)
    tilde, pm, ex, cookie = config.main.locations
    assert tilde.pattern is not None and tilde.proxy_pass.kind is RouteKind.REGEX
    assert pm.proxy_pass.kind is RouteKind.REGEX and pm.proxy_pass.pattern.pattern == "/pm"
    assert ex.proxy_pass.is_exclusion
    assert cookie.cookie_domains[0].fake == "out.example"
    assert cookie.cookie_domains[0].interpolate and cookie.reverse[0].interpolate
    assert dict(cookie.overrides) == {
        "add_headers": False, "proxy_100_continue": False, "error_override": True,
        "error_override_codes": frozenset(), "interpolate_env": True}
    assert cookie.handler is None


def test_error_document_forms(load, caplog) -> None:
    with caplog.at_level(logging.WARNING, "portico.config"):
        config = load("""
            ErrorDocument 403 Forbidden
            ErrorDocument 404 "/not a path"
            ErrorDocument 401 http://login.example/
        """)
    assert dict(config.main.settings.error_documents) == {
        403: '"Forbidden', 404: '"/not a path'}
    assert "401 cannot be a full URL" in caplog.text


def test_duration_units(load) -> None:
    config = load("""
        Timeout 2min
        KeepAliveTimeout 3
        ProxyPass /a http://a/ connectiontimeout=1h acquire=5 ping=300ms
    """)
    assert (config.core.timeout, config.core.keepalive_timeout) == (120.0, 3.0)
    params = config.workers["http://a/"].params
    assert (params.connectiontimeout, params.acquire, params.ping) == (3600.0, 0.005, 0.3)


def test_ignored_directives_log_debug(load, caplog) -> None:
    with caplog.at_level(logging.DEBUG, "portico.config"):
        config = load("""
            LoadModule proxy_module modules/mod_proxy.so
            DocumentRoot /var/www
            <Files "*.txt">
                Whatever goes here
            </Files>
            Require all granted
        """)
    assert config.main.routes == ()
    assert "ignoring httpd-only directive LoadModule" in caplog.text
    assert "ignoring httpd-only section Files" in caplog.text


def test_proxy_requests_on_warns_that_there_is_no_forward_proxy(load, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="portico.config"):
        config = load("Listen 80\nServerName t\nProxyRequests On\n")
    assert config.main.settings.proxy_requests
    assert any("main.conf:3: ProxyRequests On: portico does not forward-proxy" in r.message
               for r in caplog.records)
