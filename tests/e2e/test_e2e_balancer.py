"""balancer:// over real sockets (§7, §9): the member sequences Apache httpd 2.4.71 produced,
replayed against portico -X; status flags; bybusyness with a slow member; and two worker
processes sharing the lb state through the scoreboard.

The recordings in tests/upstream/httpd_sequences/*.json each hold the httpd config, the
members (ids, loadfactors, flags, body sizes, which ones refuse connections), the requests and
the member that answered each. Here the recorded config is used as it is (only ports and the
temp dir are replaced), the requests are sent the same way (a fresh connection each, the
headers http.client sends) and the answering members must be exactly httpd's. Keeping the
config verbatim (ServerName recorder.test included) matters for bytraffic: it counts the
request head sent to the backend, so the forwarded head must have httpd's size (194 bytes).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.support.idservers import IdServers
from tests.support.lbclient import fetch, fetch_many, member_sequence
from tests.support.lbconf import start_balanced
from tests.support.proxy import Portico, run_cli, server_kind

DATA = Path(__file__).resolve().parents[1] / "upstream" / "httpd_sequences"
RECORDINGS = sorted(DATA.glob("*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _template(scenario: dict, servers: IdServers) -> str:
    """The recorded httpd config with its placeholders turned into this run's values."""
    text = scenario["config"].replace("TMP", "{{tmp}}").replace(":PORT", ":{{port}}")
    # Highest index first, so BACKEND1 never eats the front of BACKEND10.
    for i in reversed(range(len(scenario["members"]))):
        text = text.replace(f"http://127.0.0.1:BACKEND{i}",
                            servers.url(scenario["members"][i]["id"]))
    assert not re.search(r"BACKEND\d|\bTMP\b|:PORT\b", text), text
    return text


def _requests(scenario: dict) -> list[tuple[str, str | None]]:
    reqs = scenario.get("requests") or [{} for _ in scenario["sequence"]]
    return [(r.get("path", f"/p/{i:02d}"), r.get("cookie")) for i, r in enumerate(reqs)]


def test_every_recording_is_replayed() -> None:
    """Nothing is skipped silently: every file is a case below, and they cover 3 methods."""
    assert len(RECORDINGS) >= 30
    assert {_load(p)["lbmethod"] for p in RECORDINGS} == {"byrequests", "bytraffic",
                                                          "bybusyness"}


@pytest.mark.parametrize("path", RECORDINGS, ids=[p.stem for p in RECORDINGS])
def test_member_sequence_is_httpds(path: Path, tmp_path: Path) -> None:
    scenario = _load(path)
    members = scenario["members"]
    with IdServers([m["id"] for m in members],
                   sizes={m["id"]: m.get("size", 2) for m in members},
                   dead=[m["id"] for m in members if m.get("dead")]) as servers:
        template = _template(scenario, servers)
        if "config_error" in scenario:
            # httpd refused this config (loadfactor below 1); so must portico, same line.
            conf, _ = Portico.write_config(template, tmp_path, prologue=False)
            r = run_cli(["-t", "-f", str(conf)])
            line = re.search(r"line (\d+)", scenario["config_error"])
            assert line is not None
            assert r.returncode != 0, r.stdout + r.stderr
            if server_kind() == "portico":
                assert f":{line.group(1)}:" in r.stderr + r.stdout, r.stderr
                assert "loadfactor" in (r.stderr + r.stdout).lower()
            return
        with Portico.start(template, tmp_path, prologue=False) as proxy:
            got = member_sequence(proxy.port, _requests(scenario))
            error_log = proxy.error_log
    want = scenario["sequence"]
    heads = sorted({h.head_bytes for h in servers.hits})
    recorded_heads = sorted({n for n in scenario["request_head_bytes"] if n})
    assert got == want, (
        f"\nportico: {' '.join(got)}\nhttpd:   {' '.join(want)}\n"
        f"request heads forwarded: portico {heads} bytes, httpd {recorded_heads} bytes "
        f"(bytraffic counts them)\n--- error log ---\n{error_log[-2000:]}")


# --------------------------------------------------------------------------- status flags

FLAGS = """\
<Proxy "balancer://off">
    BalancerMember {{d}} status=+D
    BalancerMember {{s}} status=S
</Proxy>
ProxyPass "/off/" "balancer://off/"
<Proxy "balancer://lb">
    BalancerMember {{a}}
    BalancerMember {{d}} status=+D
    BalancerMember {{s}} status=+S
    BalancerMember {{b}}
    BalancerMember {{ds}} status=+DS
</Proxy>
ProxyPass "/" "balancer://lb/"
"""


def test_disabled_and_stopped_members_are_never_chosen(tmp_path: Path) -> None:
    with IdServers(["a", "d", "s", "b", "ds"]) as servers, \
            start_balanced(FLAGS, tmp_path, servers) as proxy:
        got = member_sequence(proxy.port, [(f"/p/{i}", None) for i in range(20)])
        assert got == ["a", "b"] * 10  # D, S and D+S members all listen, yet get nothing
        off = [fetch(proxy.port, f"/off/{i}").status for i in range(3)]
    assert off == [503] * 3  # only disabled or stopped members: nothing to send to
    assert servers.counts() == Counter({"a": 10, "b": 10})


# --------------------------------------------------------------------------- bybusyness

BUSY = """\
<Proxy "balancer://busy">
    BalancerMember {{slow}}
    BalancerMember {{b}}
    BalancerMember {{c}}
    ProxySet lbmethod=bybusyness
</Proxy>
ProxyPass "/busy/" "balancer://busy/"
<Proxy "balancer://rr">
    BalancerMember {{slow}}
    BalancerMember {{b}}
    BalancerMember {{c}}
</Proxy>
ProxyPass "/rr/" "balancer://rr/"
"""


def test_bybusyness_sends_most_requests_to_the_fast_members(tmp_path: Path) -> None:
    n, clients = 48, 6
    with IdServers(["slow", "b", "c"]) as servers, \
            start_balanced(BUSY, tmp_path, servers) as proxy:
        servers.set_delay("slow", 0.25)
        busy = fetch_many(proxy.port, [f"/busy/{i}" for i in range(n)], clients)
        busy_counts = Counter(a.member for a in busy)
        # Control: byrequests on the same members gives the slow one its full third.
        rr = fetch_many(proxy.port, [f"/rr/{i}" for i in range(n)], clients)
        rr_counts = Counter(a.member for a in rr)
    assert [a.status for a in busy + rr] == [200] * (2 * n)
    assert busy_counts["slow"] <= n * 0.15, busy_counts
    assert busy_counts["b"] >= n * 0.35 and busy_counts["c"] >= n * 0.35, busy_counts
    assert rr_counts["slow"] == n // 3, rr_counts


# --------------------------------------------------------------------------- -w 2

WEIGHTED = """\
LogFormat "%P %s" pidstatus
CustomLog {{access_log}} pidstatus
<Proxy "balancer://lb">
    BalancerMember {{a}} loadfactor=1
    BalancerMember {{b}} loadfactor=2
    BalancerMember {{c}} loadfactor=3
</Proxy>
ProxyPass "/" "balancer://lb/"
"""


def _pids(access_log: str) -> Counter[str]:
    return Counter(line.split()[0] for line in access_log.splitlines() if line.strip())


@pytest.mark.skipif(server_kind() != "portico", reason="portico's -w process model")
def test_two_workers_share_the_lb_state_under_concurrency(tmp_path: Path) -> None:
    n = 300
    with IdServers(["a", "b", "c"]) as servers:
        proxy = start_balanced(WEIGHTED, tmp_path, servers, extra_args=["-w", "2"])
        with proxy:
            answers = fetch_many(proxy.port, [f"/p/{i}" for i in range(n)], 6)
        pids = _pids(proxy.access_log)
    assert [a.status for a in answers] == [200] * n
    counts = Counter(a.member for a in answers)
    for member, weight in (("a", 1), ("b", 2), ("c", 3)):
        want = n * weight / 6
        assert abs(counts[member] - want) <= want * 0.10, (counts, member)
    assert len(pids) == 2, pids  # both processes served: the state really was shared


@pytest.mark.skipif(server_kind() != "portico", reason="portico's -w process model")
def test_two_workers_balance_sequential_requests_like_one(tmp_path: Path) -> None:
    """DESIGN rule 11: with the state in the scoreboard, two processes taking turns at random
    still produce httpd's single-process schedule, request by request."""
    scenario = _load(DATA / "byrequests_1_2_3.json")
    with IdServers(["a", "b", "c"]) as servers:
        proxy = start_balanced(WEIGHTED, tmp_path, servers, extra_args=["-w", "2"])
        with proxy:
            got = member_sequence(proxy.port, _requests(scenario))
        pids = _pids(proxy.access_log)
    assert got == scenario["sequence"]
    assert len(pids) == 2, pids
