"""BalancerPersist On: manager edits survive a restart and a graceful reload; Off: a restart
goes back to the configuration."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.admin.managerkit import MANAGER_ROUTES, who
from tests.support.idservers import IdServers
from tests.support.lbconf import start_balanced
from tests.support.proxy import Portico, server_kind

pytestmark = pytest.mark.skipif(server_kind() != "portico", reason="portico's own handlers")

CONF = """\
LogLevel info
DefaultRuntimeDir {{tmp}}
BalancerPersist {{persist}}
<Proxy "balancer://lb">
    BalancerMember {{a}}
    BalancerMember {{b}}
</Proxy>
""" + MANAGER_ROUTES
MANAGER = "/balancer-manager"


def _disable_a(proxy: Portico, servers: IdServers) -> None:
    state = httpx.get(proxy.url + MANAGER + "/api/balancers", timeout=10).json()
    (balancer,) = state["balancers"]
    r = httpx.post(proxy.url + MANAGER, timeout=10,
                   headers={"Referer": proxy.url + MANAGER},
                   data={"b": "balancer://lb", "w": servers.url("a"),
                         "nonce": balancer["nonce"], "w_status_D": "1", "w_lf": "3"})
    assert r.status_code == 200


def test_edits_survive_restart_and_reload_with_persist_on(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers:
        with start_balanced(CONF, tmp_path, servers, persist="On") as proxy:
            _disable_a(proxy, servers)
            assert who(proxy, 4) == {"b": 4}
        assert (tmp_path / "portico-balancers.json").exists()
        # A new process: the state file brings the edit back.
        with start_balanced(CONF, tmp_path, servers, persist="On") as proxy:
            assert who(proxy, 4) == {"b": 4}
            # A graceful reload keeps it too (in memory, with the settings).
            since = len(proxy.error_log)
            r = subprocess.run(Portico.command(proxy.conf, tmp_path, "-k", "graceful"),
                               timeout=10, capture_output=True, stdin=subprocess.DEVNULL)
            assert r.returncode == 0
            proxy.wait_for_log("error_log", "reloaded configuration", timeout=10, since=since)
            assert who(proxy, 4) == {"b": 4}


def test_without_persist_a_restart_returns_to_the_config(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers:
        with start_balanced(CONF, tmp_path, servers, persist="Off") as proxy:
            _disable_a(proxy, servers)
            assert who(proxy, 4) == {"b": 4}
        assert not (tmp_path / "portico-balancers.json").exists()
        with start_balanced(CONF, tmp_path, servers, persist="Off") as proxy:
            assert who(proxy, 4) == {"a": 2, "b": 2}


GROW = """\
<Proxy "balancer://lb">
    BalancerMember {{a}}
    ProxySet growth=1
</Proxy>
""" + MANAGER_ROUTES


@pytest.mark.parametrize("args", [(), ("-w", "2")])
def test_a_member_added_in_the_manager_gets_traffic(tmp_path: Path, args: tuple) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(
            GROW, tmp_path, servers, extra_args=args) as proxy:
        assert who(proxy, 4) == {"a": 4}
        state = httpx.get(proxy.url + MANAGER + "/api/balancers", timeout=10).json()
        nonce = state["balancers"][0]["nonce"]
        form = {"b": "balancer://lb", "nonce": nonce, "b_nwrkr": servers.url("b"),
                "b_wyes": "1"}
        referer = {"Referer": proxy.url + MANAGER}
        r = httpx.post(proxy.url + MANAGER, data=form, headers=referer, timeout=10)
        assert r.status_code == 200, r.text
        after = httpx.get(proxy.url + MANAGER + "/api/balancers", timeout=10).json()
        assert servers.url("b").rstrip("/") in [
            m["name"].rstrip("/") for m in after["balancers"][0]["members"]], after
        # New members start Disabled (as in httpd's manager): enable it.
        enable = {"b": "balancer://lb", "w": servers.url("b"), "nonce": nonce,
                  "w_status_D": "0"}
        r = httpx.post(proxy.url + MANAGER, data=enable, headers=referer, timeout=10)
        assert r.status_code == 200, r.text
        assert who(proxy, 40) == {"a": 20, "b": 20}
