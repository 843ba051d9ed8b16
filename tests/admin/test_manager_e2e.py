"""balancer-manager over real sockets against a running portico: the HTML page, httpd's form
protocol and its protections (§13.2, §13.3), the effect of edits on routing (-X and -w 2)
and the JSON API."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.admin.managerkit import MANAGER_ROUTES
from tests.support.idservers import IdServers
from tests.support.lbclient import fetch
from tests.support.lbconf import start_balanced
from tests.support.proxy import Portico, server_kind

pytestmark = pytest.mark.skipif(server_kind() != "portico", reason="portico's own handlers")

CONF = """\
LogFormat "%P %s %U" pidstatus
CustomLog {{access_log}} pidstatus
<Proxy "balancer://lb">
    BalancerMember {{a}} route=ra
    BalancerMember {{b}} route=rb
    ProxySet growth=1
</Proxy>
""" + MANAGER_ROUTES
MANAGER = "/balancer-manager"


def _page(proxy: Portico) -> str:
    r = httpx.get(proxy.url + MANAGER, timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    return r.text


def _nonce(page: str) -> str:
    m = re.search(r'name="nonce" value="([0-9a-f-]{36})"', page)
    assert m is not None, page
    return m.group(1)


def _post(proxy: Portico, fields: dict[str, str], referer: str | None = "same") -> httpx.Response:
    headers = {}
    if referer == "same":
        headers["Referer"] = proxy.url + MANAGER
    elif referer is not None:
        headers["Referer"] = referer
    return httpx.post(proxy.url + MANAGER, data=fields, headers=headers, timeout=10)


def _who(proxy: Portico, n: int) -> list[str]:
    answers = [fetch(proxy.port, f"/p/{i}") for i in range(n)]
    assert all(a.status == 200 for a in answers), [a.status for a in answers]
    return [a.member for a in answers]


def _state(proxy: Portico) -> dict:
    r = httpx.get(proxy.url + MANAGER + "/api/balancers", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    (balancer,) = r.json()["balancers"]
    return balancer


def test_page_shows_balancer_and_members(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        _who(proxy, 4)
        page = _page(proxy)
    assert "balancer://lb" in page
    for header in ("Worker URL", "Route", "RouteRedir", "Factor", "Set", "Status", "Elected",
                   "Busy", "Load", "To", "From", "StickySession", "FailoverAttempts",
                   "Method", "Health"):
        assert f"<th>{header}</th>" in page, header
    for ident, route in (("a", "ra"), ("b", "rb")):
        row = re.search(rf"<tr><td[^>]*>\d</td><td>{re.escape(servers.url(ident))}</td>"
                        rf"<td>{route}</td>.*?</tr>", page)
        assert row is not None, ident
        assert "Init Ok" in row.group(0)
        assert '<td class="num">2</td>' in row.group(0)    # elected twice each
    assert 'name="w_lf"' in page and 'name="b_lbm"' in page and 'name="b_nwrkr"' in page
    assert "<script" not in page


def test_form_disable_stops_routing_and_enable_restores_it(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        nonce = _nonce(_page(proxy))
        r = _post(proxy, {"b": "balancer://lb", "w": servers.url("a"), "nonce": nonce,
                          "w_status_D": "1"})
        assert r.status_code == 200
        assert "updated" in r.text
        assert set(_who(proxy, 6)) == {"b"}
        assert _state(proxy)["members"][0]["flags"] == "OD"
        r = _post(proxy, {"b": "balancer://lb", "w": servers.url("a"), "nonce": nonce,
                          "w_status_D": "0"})
        assert r.status_code == 200
        assert Counter(_who(proxy, 6)) == {"a": 3, "b": 3}


@pytest.mark.parametrize("case", ["wrong-nonce", "no-nonce", "foreign-referer", "no-referer"])
def test_refused_edits_change_nothing(tmp_path: Path, case: str) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        nonce = _nonce(_page(proxy))
        fields = {"b": "balancer://lb", "w": servers.url("a"), "nonce": nonce,
                  "w_status_D": "1", "w_lf": "7"}
        referer: str | None = "same"
        if case == "wrong-nonce":
            fields["nonce"] = "00000000-0000-0000-0000-000000000000"
        elif case == "no-nonce":
            del fields["nonce"]
        elif case == "foreign-referer":
            referer = "http://evil.example/balancer-manager"
        else:
            referer = None
        r = _post(proxy, fields, referer)
        assert r.status_code == 403, r.text
        member = _state(proxy)["members"][0]
        assert member["flags"] == "O" and member["loadfactor"] == 1.0
        assert Counter(_who(proxy, 4)) == {"a": 2, "b": 2}


def test_get_query_never_edits(tmp_path: Path) -> None:
    """httpd reads only b, w, nonce and xml from a GET query."""
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        nonce = _nonce(_page(proxy))
        r = httpx.get(proxy.url + MANAGER, params={
            "b": "balancer://lb", "w": servers.url("a"), "nonce": nonce, "w_status_D": "1"},
            headers={"Referer": proxy.url + MANAGER}, timeout=10)
        assert r.status_code == 200
        assert _state(proxy)["members"][0]["flags"] == "O"
        r = httpx.request("DELETE", proxy.url + MANAGER, timeout=10)
        assert r.status_code == 405


def test_lbfactor_edit_changes_the_byrequests_distribution(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        assert Counter(_who(proxy, 8)) == {"a": 4, "b": 4}
        nonce = _nonce(_page(proxy))
        r = _post(proxy, {"b": "balancer://lb", "w": servers.url("a"), "nonce": nonce,
                          "w_lf": "3"})
        assert r.status_code == 200
        assert _state(proxy)["members"][0]["loadfactor"] == 3.0
        assert Counter(_who(proxy, 40)) == {"a": 30, "b": 10}
        # a bad value is ignored, as httpd ignores it
        _post(proxy, {"b": "balancer://lb", "w": servers.url("a"), "nonce": nonce,
                      "w_lf": "500"})
        assert _state(proxy)["members"][0]["loadfactor"] == 3.0


def test_balancer_form_edits_the_record(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        nonce = _nonce(_page(proxy))
        r = _post(proxy, {"b": "balancer://lb", "nonce": nonce, "b_lbm": "bybusyness",
                          "b_tmo": "5", "b_max": "3", "b_sforce": "1", "b_ss": "JSESSIONID"})
        assert r.status_code == 200
        state = _state(proxy)
        assert (state["lbmethod"], state["timeout"], state["maxattempts"],
                state["nofailover"], state["stickysession"]) == (
            "bybusyness", 5.0, 3, True, "JSESSIONID")
        # the sticky name now routes by route: every request with route rb goes to b
        answers = [fetch(proxy.port, "/s", cookie="JSESSIONID=x.rb").member for _ in range(4)]
        assert answers == ["b"] * 4
        # adding a member needs a good URL (400), then takes the growth slot, Disabled
        r = _post(proxy, {"b": "balancer://lb", "nonce": nonce, "b_wyes": "1",
                          "b_nwrkr": "not a url"})
        assert r.status_code == 400
        r = _post(proxy, {"b": "balancer://lb", "nonce": nonce, "b_wyes": "1",
                          "b_nwrkr": "http://127.0.0.1:9"})
        assert r.status_code == 200
        added = _state(proxy)["members"][2]
        assert (added["name"], added["flags"]) == ("http://127.0.0.1:9", "OD")
        assert "No free member slot" in _page(proxy)
        assert set(_who(proxy, 4)) <= {"a", "b"}


def test_an_edit_through_one_process_is_obeyed_by_both(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers:
        proxy = start_balanced(CONF, tmp_path, servers, extra_args=["-w", "2"])
        with proxy:
            nonce = _nonce(_page(proxy))
            r = _post(proxy, {"b": "balancer://lb", "w": servers.url("a"), "nonce": nonce,
                              "w_status_D": "1"})
            assert r.status_code == 200
            assert set(_who(proxy, 60)) == {"b"}
            r = _post(proxy, {"b": "balancer://lb", "nonce": nonce, "b_lbm": "bytraffic"})
            assert r.status_code == 200
            lbmethods = {_state(proxy)["lbmethod"] for _ in range(10)}
        log = proxy.access_log
    assert lbmethods == {"bytraffic"}
    pids = Counter(line.split()[0] for line in log.splitlines()
                   if line.split()[1:] and line.split()[2].startswith("/p/"))
    assert len(pids) == 2, pids   # both processes served, and both obeyed the edit


def test_json_api_get_and_patch(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        api = proxy.url + MANAGER + "/api/balancers"
        state = _state(proxy)
        assert [m["name"] for m in state["members"]] == [servers.url("a"), servers.url("b")]
        nonce = state["nonce"]
        member = f"{api}/lb/members/0"
        # writes without the nonce, with a bad value, an unknown key or a form body: refused
        assert httpx.patch(member, json={"status": {"D": True}}).status_code == 403
        bad = {"X-Portico-Nonce": nonce}
        assert httpx.patch(member, json={"loadfactor": 0.5}, headers=bad).status_code == 400
        assert httpx.patch(member, json={"status": {"E": True}}, headers=bad).status_code == 400
        assert httpx.patch(member, json={"colour": 1}, headers=bad).status_code == 400
        assert httpx.patch(member, data={"loadfactor": "2"}, headers=bad).status_code == 415
        assert httpx.patch(f"{api}/lb/members/9", json={}, headers=bad).status_code == 404
        assert _state(proxy)["members"][0]["flags"] == "O"
        # a valid member edit changes routing
        r = httpx.patch(member, json={"status": {"D": True}, "route": "r1"}, headers=bad)
        assert r.status_code == 200
        assert (r.json()["flags"], r.json()["route"]) == ("OD", "r1")
        assert set(_who(proxy, 4)) == {"b"}
        r = httpx.patch(member, json={"status": {"D": False}, "loadfactor": 3}, headers=bad)
        assert r.status_code == 200
        assert Counter(_who(proxy, 8)) == {"a": 6, "b": 2}
        # balancer edit
        r = httpx.patch(f"{api}/lb", json={"lbmethod": "bybusyness", "maxattempts": 0,
                                           "timeout": 2, "nofailover": False}, headers=bad)
        assert r.status_code == 200
        assert (r.json()["lbmethod"], r.json()["maxattempts"], r.json()["timeout"]) == (
            "bybusyness", 0, 2.0)
        assert httpx.patch(f"{api}/lb", json={"lbmethod": "nope"},
                           headers=bad).status_code == 400
        # add a member into the growth slot; the second add finds no slot
        r = httpx.post(f"{api}/lb/members", json={"url": "http://127.0.0.1:9"}, headers=bad)
        assert r.status_code == 201 and r.json()["flags"] == "OD"
        r = httpx.post(f"{api}/lb/members", json={"url": "http://127.0.0.1:10"}, headers=bad)
        assert r.status_code == 400
        assert httpx.delete(f"{api}/lb").status_code == 405
        assert httpx.get(f"{api}/nope").status_code == 404
