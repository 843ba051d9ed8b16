"""One check against real loopback members: request bytes, pass ranges, failures, timeouts."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from portico.config.load import load_config
from portico.config.model import (
    ServerConfig,
    Source,
    VirtualHost,
    WorkerParams,
    WorkerSpec,
)
from portico.health.checker import targets_for
from portico.health.probes import ProbeTarget, check_path, probe
from tests.conftest import tls_server_context
from tests.health.backend import HealthBackends
from tests.support.origin import Origin
from tests.support.proxy import free_port

SRC = Source("test.conf", 1)
CONFIG = ServerConfig("test.conf", VirtualHost("proxy.test", SRC))


def member(port: int, path: str = "", **params: object) -> WorkerSpec:
    p = WorkerParams(**{"hcinterval": 2.0, **params})  # type: ignore[arg-type]
    return WorkerSpec(f"http://127.0.0.1:{port}{path}", "http", "127.0.0.1", port, path, p,
                      SRC, balancer="balancer://pool")


def target(port: int, path: str = "", **params: object) -> ProbeTarget:
    return ProbeTarget.from_spec(member(port, path, **params), CONFIG)


@pytest.mark.parametrize(("path", "hcuri", "want"), [
    ("", "/health", "/health"), ("/", "/health", "/health"), ("", "health", "/health"),
    ("/app/", "/health", "/app/health"), ("/app", "", "/app"), ("", "", "/"), ("/", "", "/"),
])
def test_check_path_joins_with_one_slash(path: str, hcuri: str, want: str) -> None:
    assert check_path(path, hcuri) == want


def test_request_bytes_are_exactly_httpds() -> None:
    t = target(8080, "/", hcmethod="GET11", hcuri="/health")
    assert t.request == b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
    t = target(8080, "", hcmethod="OPTIONS", hcuri="/health")
    assert t.request == b"OPTIONS * HTTP/1.0\r\nHost: 127.0.0.1:8080\r\n\r\n"
    assert target(8080, hcmethod="TCP").request == b""


@pytest.mark.parametrize(("status", "ok"), [
    (200, True), (204, True), (301, True), (399, True), (404, False), (503, False),
])
async def test_default_pass_range_is_200_to_399(backends: HealthBackends, status: int,
                                                ok: bool) -> None:
    backends.set_health("a", status)
    result = await probe(target(backends.port("a"), hcmethod="GET", hcuri="/health"))
    assert result.ok is ok
    assert result.status == status
    assert result.reason == f"GET /health → {status}"
    assert result.latency_ms >= 0


@pytest.mark.parametrize(("method", "verb", "version"), [
    ("GET", "GET", "HTTP/1.0"), ("HEAD", "HEAD", "HTTP/1.0"), ("GET11", "GET", "HTTP/1.1"),
    ("HEAD11", "HEAD", "HTTP/1.1"),
])
async def test_http_methods_reach_the_member(backends: HealthBackends, method: str, verb: str,
                                             version: str) -> None:
    port = backends.port("a")
    result = await probe(target(port, "/", hcmethod=method, hcuri="/health"))
    assert result.ok, result.reason
    seen = backends.probes("a")[-1]
    assert (seen.method, seen.target, seen.version) == (verb, "/health", version)
    assert seen.host == f"127.0.0.1:{port}"


async def test_options_asks_for_asterisk(backends: HealthBackends) -> None:
    result = await probe(target(backends.port("a"), hcmethod="OPTIONS11", hcuri="/health"))
    assert result.ok and result.reason == "OPTIONS * → 200"
    assert backends.traffic()["a"] == 1   # "*" is not /health: the backend counted it apart


async def test_tcp_check_passes_on_connect_and_fails_on_a_closed_port(
        backends: HealthBackends) -> None:
    assert (await probe(target(backends.port("a"), hcmethod="TCP"))).ok
    closed = await probe(target(free_port(), hcmethod="TCP"))
    assert not closed.ok
    assert closed.reason == "TCP → connection refused"
    assert backends.probes("a") == []     # a TCP check sends nothing


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener accepts (the kernel does) but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


async def test_a_silent_member_fails_within_the_interval(silent_port: int) -> None:
    t = target(silent_port, hcmethod="GET", hcuri="/health", hcinterval=0.3)
    started = time.monotonic()
    result = await probe(t)
    elapsed = time.monotonic() - started
    assert not result.ok
    assert "timed out after 0.3 s" in result.reason
    assert 0.25 <= elapsed < 1.5


async def test_a_non_http_answer_fails() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        import asyncio

        async def answer() -> None:
            loop = asyncio.get_running_loop()
            s.setblocking(False)
            conn, _ = await loop.sock_accept(s)
            with conn:
                await loop.sock_sendall(conn, b"SSH-2.0-OpenSSH\r\n\r\n")

        task = asyncio.create_task(answer())
        result = await probe(target(port, hcmethod="GET", hcuri="/health"))
        await task
    assert not result.ok
    assert result.reason.startswith("GET /health → bad response")


async def test_undefined_hcexpr_fails_every_check(backends: HealthBackends) -> None:
    t = target(backends.port("a"), hcmethod="GET", hcuri="/health", hcexpr="nosuch")
    result = await probe(t)
    assert not result.ok
    assert "'nosuch' is not defined" in result.reason


async def test_hcexpr_sees_status_and_body(backends: HealthBackends) -> None:
    expr = pytest.importorskip("portico.expr")
    import dataclasses
    import types
    exprs = {
        "in_maint": types.SimpleNamespace(
            expr=expr.compile_expr("hc('body') !~ /Under maintenance/")),
        "ok234": types.SimpleNamespace(expr=expr.compile_expr("%{REQUEST_STATUS} =~ /^[234]/")),
    }
    config = dataclasses.replace(CONFIG, hc_exprs=exprs)  # type: ignore[call-arg]
    port = backends.port("a")

    def spec(name: str) -> ProbeTarget:
        return ProbeTarget.from_spec(member(port, hcmethod="GET", hcuri="/health",
                                            hcexpr=name), config)

    backends.set_health("a", 200, b"Under maintenance until noon")
    result = await probe(spec("in_maint"))
    assert not result.ok and result.reason == "GET /health → 200, hcexpr false"
    backends.set_health("a", 404, b"fine")
    assert (await probe(spec("in_maint"))).ok
    assert (await probe(spec("ok234"))).ok          # 4xx passes ok234
    backends.set_health("a", 503)
    assert not (await probe(spec("ok234"))).ok


def tls_member(port: int) -> WorkerSpec:
    p = WorkerParams(hcinterval=2.0, hcmethod="GET", hcuri="/echo/hc")  # type: ignore[arg-type]
    return WorkerSpec(f"https://localhost:{port}", "https", "localhost", port, "", p,
                      SRC, balancer="balancer://pool")


@pytest.mark.parametrize(("names", "passes"), [
    (("localhost",), True),
    (("wrong.example",), False),
])
async def test_a_tls_check_applies_the_certificate_name_check(
        tls_ca, tmp_path, names, passes) -> None:
    # SSLProxyVerify none (the default): the chain is not verified, but the certificate must
    # still name the member, for checks as for requests (upstream/peercert.py).
    conf = tmp_path / "main.conf"
    conf.write_text("Listen 80\nServerName t\nSSLProxyEngine On\n")
    config = load_config(str(conf))
    with Origin(ssl_context=tls_server_context(tls_ca, *names)) as origin:
        result = await probe(ProbeTarget.from_spec(tls_member(origin.port), config))
        if passes:
            assert result.ok, result.reason
            assert [r.target for r in origin.requests] == ["/echo/hc"]
        else:
            assert not result.ok
            assert result.reason == ("GET /echo/hc → TLS check failed: the certificate does "
                                     "not name localhost (wrong.example)")
            assert origin.requests == []


async def test_a_members_checks_use_the_tls_settings_of_the_host_defining_its_balancer(
        tls_ca, tls_ca_file, other_ca_file, tmp_path) -> None:
    # The main server trusts another CA; the virtual host that defines the balancer trusts
    # the member's. httpd checks a member with its defining server's SSLProxy* settings.
    with Origin(ssl_context=tls_server_context(tls_ca, "localhost")) as origin:
        conf = tmp_path / "main.conf"
        conf.write_text(f"""
Listen 80
ServerName t
SSLProxyEngine On
SSLProxyVerify require
SSLProxyCACertificateFile {other_ca_file}
<Proxy balancer://mainpool>
    BalancerMember https://localhost:{origin.port} hcmethod=GET hcuri=/echo/main
</Proxy>
<VirtualHost *:80>
    ServerName v
    SSLProxyEngine On
    SSLProxyVerify require
    SSLProxyCACertificateFile {tls_ca_file}
    <Proxy balancer://vpool>
        BalancerMember https://localhost:{origin.port} hcmethod=GET hcuri=/echo/vhost
    </Proxy>
    ProxyPass / balancer://vpool/
</VirtualHost>
""")
        config = load_config(str(conf))
        results = {spec.balancer: await probe(target) for spec, target in targets_for(config)}
        assert results["balancer://vpool"].ok, results["balancer://vpool"].reason
        assert not results["balancer://mainpool"].ok   # the main server's CA does not fit
        assert [r.target for r in origin.requests] == ["/echo/vhost"]
