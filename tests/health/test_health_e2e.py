"""Whole-proxy health checks: real portico processes, real members whose /health flips."""

from __future__ import annotations

import dataclasses
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from portico.config import load_config
from portico.config.model import ServerConfig
from tests.health.backend import HealthBackends
from tests.support.proxy import Portico, free_port

LB = """\
LogLevel warn
<Proxy balancer://pool>
{{members}}</Proxy>
ProxyPass /app balancer://pool
"""
HC = "hcmethod=GET hcuri=/health hcinterval=1 hcfails=2 hcpasses=2"


def fetch(proxy: Portico) -> str:
    """One request through the proxy; the answering member's id ("" when not 200)."""
    try:
        with urllib.request.urlopen(f"{proxy.url}/app", timeout=5) as resp:
            return resp.headers.get("X-Member", "")
    except OSError:
        return ""


def seconds_until(predicate: Callable[[], bool], limit: float) -> float:
    """Seconds until ``predicate()`` holds (polled), or ``inf`` after ``limit`` seconds."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)  # a poll interval inside a deadline
    return float("inf")


def avoids(proxy: Portico, ident: str, n: int = 6) -> bool:
    return all(fetch(proxy) != ident for _ in range(n))


def test_traffic_leaves_a_failing_member_and_returns(tmp_path: Path) -> None:
    with HealthBackends(["a", "b", "c"]) as be:
        members = "".join(f"  BalancerMember {be.url(i)} {HC}\n" for i in "ab")
        members += f"  BalancerMember {be.url('c')} {HC} status=+S\n"
        with Portico.start(LB, tmp_path, members=members) as proxy:
            assert {fetch(proxy) for _ in range(4)} == {"a", "b"}
            be.set_health("a", 503)
            left = seconds_until(lambda: avoids(proxy, "a"), 6)
            assert left <= 2 * 1 + 1, left
            proxy.wait_for_log("error_log", "failed 2 checks: GET /health → 503")
            be.set_health("a", 200)
            back = seconds_until(lambda: fetch(proxy) == "a" or fetch(proxy) == "a", 6)
            assert back <= 2 * 1 + 1, back
            proxy.wait_for_log("error_log", "passed 2 checks: back in service")
            assert be.probes("c") == []            # a stopped member is never checked
            assert len(be.probes("b")) >= 3


VHOST_LB = """\
LogLevel warn
<VirtualHost *:{{port}}>
    ServerName vh.test
    ErrorLog {{tmp}}/vh-error.log
    <Proxy balancer://vpool>
        BalancerMember http://127.0.0.1:{{dead}} hcmethod=TCP hcinterval=1
    </Proxy>
    ProxyPass /app balancer://vpool
</VirtualHost>
"""


def test_a_members_transitions_go_to_the_error_log_of_the_host_defining_it(
        tmp_path: Path) -> None:
    dead = free_port()
    with Portico.start(VHOST_LB, tmp_path, dead=dead) as proxy:
        proxy.wait_for_log("vh-error.log", f"member http://127.0.0.1:{dead} of "
                           "balancer://vpool failed 1 check: TCP → connection refused",
                           timeout=3)
        assert "balancer://vpool failed" not in proxy.error_log


def test_tcp_check_marks_a_closed_port(tmp_path: Path) -> None:
    with HealthBackends(["a"]) as be:
        dead = free_port()
        members = (f"  BalancerMember {be.url('a')} hcmethod=TCP hcinterval=1\n"
                   f"  BalancerMember http://127.0.0.1:{dead} hcmethod=TCP hcinterval=1\n")
        with Portico.start(LB, tmp_path, members=members) as proxy:
            proxy.wait_for_log(
                "error_log", f"member http://127.0.0.1:{dead} of balancer://pool failed 1 "
                "check: TCP → connection refused", timeout=3)
            assert all(fetch(proxy) == "a" for _ in range(6))
            assert f"{be.url('a')} of balancer://pool failed" not in proxy.error_log


def test_workers_share_one_checker(tmp_path: Path) -> None:
    with HealthBackends(["a", "b"]) as be:
        members = "".join(f"  BalancerMember {be.url(i)} {HC}\n" for i in "ab")
        with Portico.start(LB, tmp_path, members=members, extra_args=["-w", "2"]) as proxy:
            first = len(be.probes("a"))
            time.sleep(3.0)   # counting probes over a fixed span is the measurement
            counted = len(be.probes("a")) - first
            # One checker: about one probe per interval, not one per worker process.
            assert 2 <= counted <= 4, counted
            be.set_health("a", 503)
            assert seconds_until(lambda: avoids(proxy, "a", 10), 6) <= 3
            assert be.traffic()["b"] >= 10       # both processes send to b only


def _expr_available() -> bool:
    try:
        import portico.expr  # noqa: F401
    except ImportError:
        return False
    return "hc_exprs" in {f.name for f in dataclasses.fields(ServerConfig)}


@pytest.mark.skipif(not _expr_available(), reason="portico.expr / ProxyHCExpr not there yet")
def test_hcexpr_on_status_and_body(tmp_path: Path) -> None:
    template = """\
ProxyHCExpr ok234 {%{REQUEST_STATUS} =~ /^[234]/}
ProxyHCExpr in_maint {hc('body') !~ /Under maintenance/}
""" + LB
    with HealthBackends(["a", "b"]) as be:
        members = (f"  BalancerMember {be.url('a')} {HC} hcexpr=in_maint\n"
                   f"  BalancerMember {be.url('b')} {HC} hcexpr=ok234\n")
        conf, _ = Portico.write_config(template, tmp_path / "probe", members=members)
        if not load_config(str(conf)).hc_exprs:  # type: ignore[attr-defined]
            pytest.skip("ProxyHCExpr is parsed but not in the loaded config yet")
        with Portico.start(template, tmp_path, members=members) as proxy:
            be.set_health("b", 404)                  # 4xx passes ok234
            be.set_health("a", 200, b"Under maintenance until noon")
            assert seconds_until(lambda: avoids(proxy, "a"), 6) <= 3
            assert fetch(proxy) == "b"
            be.set_health("a", 200, b"all good")
            assert seconds_until(lambda: fetch(proxy) == "a" or fetch(proxy) == "a", 6) <= 3
            be.set_health("b", 503)
            assert seconds_until(lambda: avoids(proxy, "b"), 6) <= 3
