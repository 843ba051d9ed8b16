"""`portico ctl` run as a subprocess against a running portico: its output, its refusals and
the effect of its edits on routing; `export` loads back with `portico -t`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from portico.admin.ctl import CtlError, export_config, resolve_member
from tests.admin.managerkit import MANAGER_ROUTES, ctl, ctl_url, who
from tests.support.idservers import IdServers
from tests.support.lbclient import fetch
from tests.support.lbconf import start_balanced
from tests.support.proxy import free_port, run_cli, server_kind

needs_portico = pytest.mark.skipif(server_kind() != "portico", reason="portico's own API")

CONF = """\
<Proxy "balancer://lb">
    BalancerMember {{a}} route=ra
    BalancerMember {{b}} route=rb
    ProxySet growth=1
</Proxy>
""" + MANAGER_ROUTES


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """A refusal: exit 1, nothing on stdout, one ``portico ctl:`` line on stderr."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("portico ctl: ") and result.stderr.count("\n") == 1
    return result.stderr


@needs_portico
def test_list_show_and_json(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        who(proxy, 4)
        table = ok(ctl(proxy, "list")).splitlines()
        assert table[0].split() == ["BALANCER", "#", "URL", "ROUTE", "LF", "SET", "STATUS",
                                    "ELECTED", "BUSY"]
        rows = [line.split() for line in table[1:]]
        assert rows == [["balancer://lb", "0", servers.url("a"), "ra", "1", "0", "Init", "Ok",
                         "2", "0"],
                        ["balancer://lb", "1", servers.url("b"), "rb", "1", "0", "Init", "Ok",
                         "2", "0"]]
        shown = ok(ctl(proxy, "show", "balancer://lb"))
        assert "lbmethod      byrequests" in shown and servers.url("b") in shown
        # --json before or after the command word: the API's document
        document = json.loads(ok(ctl(proxy, "--json", "list")))
        assert [m["route"] for m in document["balancers"][0]["members"]] == ["ra", "rb"]
        one = json.loads(ok(ctl(proxy, "show", "lb", "--json")))
        assert (one["name"], one["growth"]) == ("balancer://lb", 1)


@needs_portico
def test_state_commands_change_routing(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        # by route
        out = ok(ctl(proxy, "disable", "lb", "ra"))
        assert "member 0" in out and "Init Dis" in out
        servers.reset()
        assert who(proxy, 6) == {"b": 6}
        assert servers.counts()["a"] == 0
        # by URL (with a trailing slash); enable also clears drain and standby
        ok(ctl(proxy, "drain", "lb", "0"))
        member = json.loads(ok(ctl(proxy, "--json", "enable", "lb", servers.url("a") + "/")))
        assert member["flags"] == "O"
        assert who(proxy, 6) == {"a": 3, "b": 3}
        # by index: stop, then standby after enabling
        assert json.loads(ok(ctl(proxy, "--json", "stop", "lb", "1")))["flags"] == "OS"
        assert who(proxy, 4) == {"a": 4}
        ok(ctl(proxy, "enable", "lb", "1"))
        assert json.loads(ok(ctl(proxy, "--json", "standby", "lb", "rb")))["flags"] == "OH"
        assert who(proxy, 4) == {"a": 4}


@needs_portico
def test_set_loadfactor_changes_the_split(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        out = ok(ctl(proxy, "set", "lb", "ra", "--lf", "3", "--route", "r1"))
        assert "lf 3" in out and "route r1" in out
        assert who(proxy, 40) == {"a": 30, "b": 10}
        member = json.loads(ok(ctl(proxy, "--json", "set", "lb", "r1", "--lbset", "2",
                                   "--redirect", "rb")))
        assert (member["lbset"], member["redirect"], member["loadfactor"]) == (2, "rb", 3.0)
        # lbset 0 is tried first: all traffic to b now
        assert who(proxy, 4) == {"b": 4}
        cleared = json.loads(ok(ctl(proxy, "--json", "set", "lb", "0", "--route", "")))
        assert cleared["route"] == ""


@needs_portico
def test_balancer_lbmethod_add_and_export(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        assert "bybusyness" in ok(ctl(proxy, "lbmethod", "lb", "bybusyness"))
        state = json.loads(ok(ctl(proxy, "--json", "balancer", "lb", "--timeout", "5",
                                  "--maxattempts", "3", "--sticky", "JSESSIONID|jsid",
                                  "--nofailover", "on")))
        assert (state["timeout"], state["maxattempts"], state["stickysession"],
                state["nofailover"]) == (5.0, 3, "JSESSIONID|jsid", True)
        answers = {fetch(proxy.port, "/s", cookie="JSESSIONID=x.rb").member for _ in range(4)}
        assert answers == {"b"}
        added = json.loads(ok(ctl(proxy, "--json", "add", "lb", "http://127.0.0.1:9")))
        assert (added["index"], added["flags"]) == (2, "OD")
        ok(ctl(proxy, "set", "lb", "1", "--lf", "2.5", "--lbset", "1", "--redirect", "ra"))
        ok(ctl(proxy, "drain", "lb", "ra"))
        exported = ok(ctl(proxy, "export"))
    assert '<Proxy "balancer://lb">' in exported
    assert (f"BalancerMember {servers.url('a')} loadfactor=1 lbset=0 route=ra status=+N"
            in exported)
    assert (f"BalancerMember {servers.url('b')} loadfactor=2.5 lbset=1 route=rb redirect=ra"
            in exported)
    assert "BalancerMember http://127.0.0.1:9 loadfactor=1 lbset=0 status=+D" in exported
    assert ("ProxySet lbmethod=bybusyness maxattempts=3 nofailover=On timeout=5 "
            "stickysession=JSESSIONID|jsid\n") in exported   # growth used up: not repeated
    conf = tmp_path / "exported.conf"
    conf.write_text(f"Listen 127.0.0.1:{free_port()}\nServerName proxy.test\n"
                    f"ErrorLog {tmp_path / 'check.log'}\n{exported}"
                    'ProxyPass "/" "balancer://lb/"\n')
    check = run_cli(["-t", "-f", str(conf)])
    assert check.returncode == 0, check.stderr
    assert "Syntax OK" in check.stdout


@needs_portico
def test_refusals_exit_1_with_a_message(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        assert "no member 'zz' in balancer://lb" in refused(ctl(proxy, "disable", "lb", "zz"))
        assert "404 no balancer 'nope'" in refused(ctl(proxy, "show", "nope"))
        assert "400" in refused(ctl(proxy, "set", "lb", "0", "--lf", "500"))
        assert "400" in refused(ctl(proxy, "lbmethod", "lb", "nope"))
        assert "nothing to change" in refused(ctl(proxy, "set", "lb", "0"))
        ok(ctl(proxy, "add", "lb", "http://127.0.0.1:9"))
        assert "400" in refused(ctl(proxy, "add", "lb", "http://127.0.0.1:10"))
        # a URL that is not the manager answers something that is not the API's JSON
        assert "not JSON" in refused(ctl_url(proxy.url + "/elsewhere", "list"))
        member = json.loads(ok(ctl(proxy, "--json", "show", "lb")))["members"][0]
        assert (member["flags"], member["loadfactor"]) == ("O", 1.0)
    assert "cannot reach" in refused(ctl_url(f"http://127.0.0.1:{free_port()}/bm", "list"))


def test_bad_usage_is_exit_2() -> None:
    result = ctl_url("http://127.0.0.1:1/bm", "balancer", "lb", "--nofailover", "maybe")
    assert result.returncode == 2
    assert "expects on or off" in result.stderr


_LB = {"name": "balancer://lb", "id": "lb", "lbmethod": "byrequests", "stickysession": "",
       "timeout": 0.0, "maxattempts": 1, "nofailover": False, "nonce": None, "growth": 2,
       "growth_used": 0, "paths": ["/"],
       "members": [{"index": 0, "name": "http://h:1", "route": "7", "redirect": "",
                    "loadfactor": 1.0, "lbset": 0, "flags": "OEC", "status": "Init Err HcFl"},
                   {"index": 1, "name": "http://h:2", "route": "x y", "redirect": "",
                    "loadfactor": 1.0, "lbset": 0, "flags": "ODH", "status": "Init Dis Stby"},
                   {"index": 2, "name": "http://h:3", "route": "x y", "redirect": "",
                    "loadfactor": 1.0, "lbset": 0, "flags": "O", "status": "Init Ok"}]}


def test_resolve_member_index_url_route() -> None:
    assert resolve_member(_LB, "1") == 1
    assert resolve_member(_LB, "HTTP://h:3/") == 2
    assert resolve_member(_LB, "7") == 0            # not an index in range: the route
    with pytest.raises(CtlError, match="more than one member has route 'x y'"):
        resolve_member(_LB, "x y")
    with pytest.raises(CtlError, match="no member 'q'"):
        resolve_member(_LB, "q")


def test_export_quotes_and_leaves_out_runtime_flags() -> None:
    text = export_config([_LB], "http://x/bm")
    assert "BalancerMember http://h:1 loadfactor=1 lbset=0 route=7\n" in text  # no E, C
    assert 'BalancerMember http://h:2 loadfactor=1 lbset=0 "route=x y" status=+DH' in text
    assert "ProxySet lbmethod=byrequests maxattempts=1 nofailover=Off growth=2 nonce=None" in text
