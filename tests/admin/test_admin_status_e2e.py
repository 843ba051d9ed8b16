"""server-status and metrics over real sockets against a running portico (-X and -w 2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.admin.promtext import parse, value
from tests.support.idservers import IdServers
from tests.support.lbclient import fetch, fetch_many
from tests.support.lbconf import start_balanced
from tests.support.proxy import server_kind

pytestmark = pytest.mark.skipif(server_kind() != "portico", reason="portico's own handlers")

CONF = """\
ProxyStatus {{proxy_status}}
<Proxy "balancer://lb">
    BalancerMember {{a}} route=ra
    BalancerMember {{b}} route=rb loadfactor=2
</Proxy>
<Location "/server-status">
    SetHandler server-status
    Require local
</Location>
<Location "/metrics">
    SetHandler metrics
    Require ip 127.0.0.1
</Location>
ProxyPass "/server-status" !
ProxyPass "/metrics" !
ProxyPass "/" "balancer://lb/"
"""


def _auto(port: int) -> dict[str, str]:
    answer = fetch(port, "/server-status?auto")
    assert answer.status == 200
    assert answer.header("Content-Type", ).startswith("text/plain")
    lines = answer.body.decode().splitlines()
    assert lines[0] == "127.0.0.1"           # the first line names the host asked for
    keys = dict(line.split(": ", 1) for line in lines[1:])
    assert len(keys) == len(lines) - 1        # no key twice
    return keys


def test_auto_keys_and_counts_move(tmp_path: Path) -> None:
    with (IdServers(["a", "b"]) as servers,
          start_balanced(CONF, tmp_path, servers, proxy_status="On") as proxy):
        before = _auto(proxy.port)
        for key in ("ServerVersion", "ServerMPM", "CurrentTime", "RestartTime",
                    "ParentServerConfigGeneration", "ServerUptimeSeconds",
                    "ServerUptime", "Total Accesses", "Total kBytes", "Uptime",
                    "BusyWorkers", "IdleWorkers", "Processes", "ConnsTotal",
                    "Scoreboard", "ProxyBalancer[0]Name"):
            assert key in before, key
        assert before["ServerVersion"].startswith("portico/")
        assert before["ProxyBalancer[0]Name"] == "balancer://lb"
        assert before["Scoreboard"] == "W"    # -X: one process, serving this request
        assert before["BusyWorkers"] == "1" and before["ConnsTotal"] == "1"
        answers = [fetch(proxy.port, f"/p/{i}") for i in range(9)]
        after = _auto(proxy.port)
    assert [a.status for a in answers] == [200] * 9
    # The first ?auto request itself is counted once it finished.
    assert int(after["Total Accesses"]) == int(before["Total Accesses"]) + 10
    names = {after[f"ProxyBalancer[0]Worker[{i}]Name"] for i in range(2)}
    assert names == {servers.url("a"), servers.url("b")}
    elected = [int(after[f"ProxyBalancer[0]Worker[{i}]Elected"]) for i in range(2)]
    assert elected == [3, 6]                   # loadfactor 1:2 over 9 requests
    assert after["ProxyBalancer[0]Worker[0]Status"] == "Init Ok "
    assert re.fullmatch(r"\d+K", after["ProxyBalancer[0]Worker[1]Sent"])


def test_html_page_has_balancer_rows(tmp_path: Path) -> None:
    with (IdServers(["a", "b"]) as servers,
          start_balanced(CONF, tmp_path, servers, proxy_status="On") as proxy):
        for i in range(4):
            assert fetch(proxy.port, f"/x/{i}").status == 200
        page = fetch(proxy.port, "/server-status?refresh=7")
    assert page.status == 200
    assert page.header("Refresh") == "7"
    text = page.body.decode()
    assert '<meta http-equiv="refresh" content="7">' in text
    assert "Server Status for 127.0.0.1" in text and "portico/" in text
    assert "Total accesses: 4" in text
    assert "Proxy LoadBalancer Status for balancer://lb" in text
    for header in ("Sch", "Host", "Stat", "Route", "Redir", "F", "Set", "Acc", "Busy", "Wr",
                   "Rd"):
        assert f"<th>{header}</th>" in text
    rows = re.findall(r"<tr><td>http</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]*)</td>"
                      r"<td>[^<]*</td><td class=n>([\d.]+)</td><td class=n>(\d+)</td>"
                      r"<td class=n>(\d+)</td>", text)
    hosts = {servers.url(m).split("//")[1].rstrip("/") for m in ("a", "b")}
    assert {r[0] for r in rows} == hosts
    assert sorted((r[2], r[3], r[5]) for r in rows) == [("ra", "1.00", "1"),
                                                       ("rb", "2.00", "3")]


def test_proxy_status_off_hides_balancers(tmp_path: Path) -> None:
    with (IdServers(["a", "b"]) as servers,
          start_balanced(CONF, tmp_path, servers, proxy_status="Off") as proxy):
        auto = _auto(proxy.port)
        page = fetch(proxy.port, "/server-status").body.decode()
    assert not any(key.startswith("ProxyBalancer") for key in auto)
    assert "LoadBalancer" not in page


def test_two_processes_add_up(tmp_path: Path) -> None:
    n = 60
    with (IdServers(["a", "b"]) as servers,
          start_balanced(CONF, tmp_path, servers, extra_args=["-w", "2"],
                            proxy_status="On") as proxy):
        answers = fetch_many(proxy.port, [f"/p/{i}" for i in range(n)], 6)
        auto = _auto(proxy.port)
        _, samples = parse(fetch(proxy.port, "/metrics").body.decode())
    assert [a.status for a in answers] == [200] * n
    assert auto["Processes"] == "2" and len(auto["Scoreboard"]) == 2
    elected = [int(auto[f"ProxyBalancer[0]Worker[{i}]Elected"]) for i in range(2)]
    assert sum(elected) == n and elected == [n // 3, 2 * n // 3]
    per_process = [v for name, _, v in samples if name == "portico_process_requests_total"]
    assert len(per_process) == 2 and all(v > 0 for v in per_process)   # both served
    member_total = sum(v for name, _, v in samples if name == "portico_member_requests_total")
    assert member_total == n


def test_metrics_parse_and_move(tmp_path: Path) -> None:
    with (IdServers(["a", "b"]) as servers,
          start_balanced(CONF, tmp_path, servers, proxy_status="On") as proxy):
        first = fetch(proxy.port, "/metrics")
        for i in range(6):
            assert fetch(proxy.port, f"/m/{i}").status == 200
        servers.stop("a")
        statuses = [fetch(proxy.port, f"/f/{i}").status for i in range(3)]
        second = fetch(proxy.port, "/metrics")
    assert first.status == 200
    assert first.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    types, before = parse(first.body.decode())
    _, after = parse(second.body.decode())
    assert types["portico_member_requests_total"] == "counter"
    assert types["portico_member_busy"] == "gauge"
    a, b = servers.url("a"), servers.url("b")
    lb = "balancer://lb"
    assert value(before, "portico_member_requests_total", balancer=lb, member=a) == 0
    assert value(after, "portico_member_requests_total", balancer=lb, member=b) >= 4
    assert value(after, "portico_member_sent_bytes_total", balancer=lb, member=b) > 0
    assert value(after, "portico_member_received_bytes_total", balancer=lb, member=b) > 0
    assert value(after, "portico_member_lbfactor", balancer=lb, member=b) == 2
    # The stopped member failed once and went into error state (flag E), failing over to b.
    assert statuses == [200, 200, 200]
    assert value(after, "portico_member_errors_total", balancer=lb, member=a) >= 1
    assert value(after, "portico_member_status", balancer=lb, member=a, flag="E") == 1
    assert value(after, "portico_member_usable", balancer=lb, member=a) == 0
    assert value(after, "portico_member_status", balancer=lb, member=b, flag="E") == 0
    assert value(after, "portico_requests_total") >= 10
    assert value(after, "portico_process_connections", process="0") == 1


def test_metrics_parse_with_the_prometheus_client_parser(tmp_path: Path) -> None:
    """The exposition is read by the reference parser (prometheus_client) too."""
    parser = pytest.importorskip("prometheus_client.parser")
    with (IdServers(["a", "b"]) as servers,
          start_balanced(CONF, tmp_path, servers, proxy_status="On") as proxy):
        for i in range(6):
            assert fetch(proxy.port, f"/m/{i}").status == 200
        text = fetch(proxy.port, "/metrics").body.decode()
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    requests = families["portico_member_requests"]          # counters lose "_total" here
    assert requests.type == "counter"
    assert sum(s.value for s in requests.samples if s.name.endswith("_total")) == 6
    histogram = families["portico_member_request_duration_seconds"]
    assert histogram.type == "histogram"
    counts = [s.value for s in histogram.samples if s.name.endswith("_count")]
    assert sum(counts) == 6
