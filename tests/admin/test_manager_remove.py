"""Removing members added at run time (DELETE …/members/{index}, `portico ctl remove`) over
real sockets against a running portico with two serving processes: an added member gets
traffic, a removed one gets none, its growth slot can be taken again, and a member from the
config cannot be removed."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from tests.admin.managerkit import MANAGER_ROUTES, ctl, who
from tests.support.idservers import IdServers, wait_until
from tests.support.lbclient import fetch
from tests.support.lbconf import start_balanced
from tests.support.proxy import Portico, server_kind

pytestmark = pytest.mark.skipif(server_kind() != "portico", reason="portico's own API")

CONF = """\
<Proxy "balancer://lb">
    BalancerMember {{a}}
    ProxySet growth=1
</Proxy>
""" + MANAGER_ROUTES


def _api(proxy: Portico) -> str:
    return proxy.url + "/balancer-manager/api/balancers/lb"


def _add_enabled(proxy: Portico, url: str, nonce: str) -> int:
    """POST a member, then clear its Disabled flag; its index."""
    headers = {"X-Portico-Nonce": nonce}
    r = httpx.post(_api(proxy) + "/members", json={"url": url}, headers=headers, timeout=10)
    assert r.status_code == 201, r.text
    index = r.json()["index"]
    r = httpx.patch(f"{_api(proxy)}/members/{index}", json={"status": {"D": False}},
                    headers=headers, timeout=10)
    assert r.status_code == 200 and r.json()["flags"] == "O", r.text
    return index


def test_api_add_route_remove_and_reuse_the_slot(tmp_path: Path) -> None:
    with IdServers(["a", "b", "c"]) as servers:
        proxy = start_balanced(CONF, tmp_path, servers, extra_args=["-w", "2"])
        with proxy:
            state = httpx.get(_api(proxy), timeout=10).json()
            nonce = state["nonce"]
            headers = {"X-Portico-Nonce": nonce}
            assert set(who(proxy, 10)) == {"a"}
            index = _add_enabled(proxy, servers.url("b"), nonce)
            assert index == 1
            assert set(who(proxy, 40)) == {"a", "b"}     # both processes route to it
            # a config member is refused (409), an unknown one is 404, no nonce is 403
            member = f"{_api(proxy)}/members"
            assert httpx.delete(f"{member}/0", headers=headers).status_code == 409
            assert httpx.delete(f"{member}/7", headers=headers).status_code == 404
            assert httpx.delete(f"{member}/1").status_code == 403
            assert httpx.delete(f"{member}/1", headers={"X-Portico-Nonce": "x"}
                                ).status_code == 403
            r = httpx.delete(f"{member}/1", headers=headers)
            assert r.status_code == 200, r.text
            assert (r.json()["name"], r.json()["removed"]) == (servers.url("b"), True)
            after = httpx.get(_api(proxy), timeout=10).json()
            assert [m["name"] for m in after["members"]] == [servers.url("a")]
            assert after["growth_used"] == 0
            servers.reset()
            assert set(who(proxy, 40)) == {"a"}          # no process routes to b any more
            assert servers.counts()["b"] == 0
            assert httpx.delete(f"{member}/1", headers=headers).status_code == 404
            # the freed slot takes a new member, which starts clean and gets traffic
            index = _add_enabled(proxy, servers.url("c"), nonce)
            added = httpx.get(f"{member}/{index}").json()
            assert (added["name"], added["route"], added["lbset"]) == (servers.url("c"), "", 0)
            assert set(who(proxy, 40)) == {"a", "c"}


def test_ctl_remove(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        done = ctl(proxy, "add", "lb", servers.url("b"))
        assert done.returncode == 0, done.stderr
        done = ctl(proxy, "enable", "lb", servers.url("b"))
        assert done.returncode == 0, done.stderr
        assert set(who(proxy, 10)) == {"a", "b"}
        refused = ctl(proxy, "remove", "lb", "0")
        assert refused.returncode == 1 and refused.stdout == ""
        assert "409" in refused.stderr and "configured" in refused.stderr
        done = ctl(proxy, "remove", "lb", servers.url("b"))
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"removed member 1 {servers.url('b')}\n"
        servers.reset()
        assert set(who(proxy, 10)) == {"a"}
        listed = ctl(proxy, "list")
        assert servers.url("b") not in listed.stdout and servers.url("a") in listed.stdout


def test_scoreboard_remove_worker_frees_a_clean_slot() -> None:
    from portico.state.scoreboard import Scoreboard

    board = Scoreboard.create(balancers={"balancer://lb": ["http://a"]}, growth=1)
    try:
        with pytest.raises(ValueError, match="configured"):
            board.remove_worker("http://a", "balancer://lb")
        with pytest.raises(KeyError):
            board.remove_worker("http://nope", "balancer://lb")
        added = board.add_worker("http://b", "balancer://lb")
        added.route, added.lbset = "rb", 3
        before = board.members("balancer://lb")
        board.remove_worker("http://b", "balancer://lb")
        after = board.members("balancer://lb")
        assert after is not before and [m.name for m in after] == ["http://a"]
        record = board.balancer("balancer://lb")
        assert record.growth_used == 0
        again = board.add_worker("http://c", "balancer://lb")
        assert again.index == added.index                 # the same slot, reused
        assert (again.name, again.route, again.lbset, again.lbfactor) == ("http://c", "", 0, 100)
        with pytest.raises(KeyError):
            board.worker("http://b", "balancer://lb")
    finally:
        board.close()


GROWN = CONF.replace("growth=1", "growth=2")


def _busy(proxy: Portico, name: str) -> int:
    members = httpx.get(_api(proxy), timeout=10).json()["members"]
    return next(m["busy"] for m in members if m["name"] == name)


def test_a_request_in_flight_ends_on_its_member_after_one_before_it_went(tmp_path: Path):
    """Added members move down when one before them is removed. A request already on a
    member that moved must still settle on that member: its busy count goes back to 0
    (it stayed at 1 when the end was counted by the old position)."""
    with IdServers(["a", "b", "c"]) as servers, \
            start_balanced(GROWN, tmp_path, servers) as proxy:
        nonce = httpx.get(_api(proxy), timeout=10).json()["nonce"]
        headers = {"X-Portico-Nonce": nonce}
        assert _add_enabled(proxy, servers.url("b"), nonce) == 1
        assert _add_enabled(proxy, servers.url("c"), nonce) == 2
        for index in (0, 1):   # only c takes requests
            r = httpx.patch(f"{_api(proxy)}/members/{index}", json={"status": {"D": True}},
                            headers=headers, timeout=10)
            assert r.status_code == 200, r.text
        servers.set_delay("c", 1.5)
        answers: list = []
        slow = threading.Thread(target=lambda: answers.append(fetch(proxy.port, "/p/slow")))
        slow.start()
        try:
            assert wait_until(lambda: _busy(proxy, servers.url("c")) == 1)
            r = httpx.delete(f"{_api(proxy)}/members/1", headers=headers, timeout=10)
            assert r.status_code == 200, r.text
            # The next request makes the process take the new member list (c is now at
            # position 1) while the first one is still on c.
            after = fetch(proxy.port, "/p/after")
        finally:
            slow.join(15)
        assert [a.member for a in answers] == ["c"] and after.member == "c"
        assert answers[0].status == 200 and after.status == 200
        assert wait_until(lambda: _busy(proxy, servers.url("c")) == 0), \
            httpx.get(_api(proxy), timeout=10).json()["members"]
