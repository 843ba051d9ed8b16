"""Failover over real sockets (§6.4, §7.1, §7.5, §9.1): a member that refuses connections
goes into error and its requests go elsewhere without a client-visible error; it is retried
after ``retry`` seconds; all members down is a 503; maxattempts bounds the tries;
forcerecovery; failonstatus; lbsets; hot standbys (+H) and spares (+R).

Stopping a member (`IdServers.stop`) closes its listener and its open connections, so the
proxy's next connect is refused and any pooled connection is gone.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.support.idservers import IdServers, wait_until
from tests.support.lbclient import fetch
from tests.support.lbconf import start_balanced


def _who(port: int, path: str, n: int = 1) -> list[str]:
    return [fetch(port, f"{path}{i}").who for i in range(n)]


REFUSED = """\
<Proxy "balancer://lb">
    BalancerMember {{a}}
    BalancerMember {{b}} retry=1
    BalancerMember {{c}}
</Proxy>
ProxyPass "/" "balancer://lb/"
"""


def test_refused_member_is_skipped_then_retried_after_retry(tmp_path: Path) -> None:
    with IdServers(["a", "b", "c"]) as servers, \
            start_balanced(REFUSED, tmp_path, servers) as proxy:
        assert _who(proxy.port, "/warm", 3) == ["a", "b", "c"]
        servers.stop("b")
        down = _who(proxy.port, "/down", 12)
        # No client sees the refusal: b's turn fails over to another member.
        assert "503" not in down and "b" not in down, down
        assert set(down) == {"a", "c"}
        servers.start("b")
        # retry=1: once a second has passed since the error, b is tried again and serves.
        back = wait_until(lambda: fetch(proxy.port, "/back").who == "b", timeout=5.0,
                          interval=0.1)
        assert back, proxy.error_log[-2000:]
        later = _who(proxy.port, "/later", 9)
    assert set(later) == {"a", "b", "c"}, later


ALL_DOWN = """\
<Proxy "balancer://fr">
    BalancerMember {{a}}
    BalancerMember {{b}}
</Proxy>
ProxyPass "/fr/" "balancer://fr/"
<Proxy "balancer://nofr">
    BalancerMember {{c}}
    BalancerMember {{d}}
    ProxySet forcerecovery=Off
</Proxy>
ProxyPass "/nofr/" "balancer://nofr/"
"""


def test_all_members_down_is_503_and_forcerecovery(tmp_path: Path) -> None:
    with IdServers(["a", "b", "c", "d"], dead=["a", "b", "c", "d"]) as servers, \
            start_balanced(ALL_DOWN, tmp_path, servers) as proxy:
        assert _who(proxy.port, "/fr/", 2) == ["503", "503"]
        assert _who(proxy.port, "/nofr/", 2) == ["503", "503"]
        for ident in ("a", "b", "c", "d"):
            servers.start(ident)
        # Every member of fr is in error: forcerecovery (default On) clears them all and
        # tries at once, without waiting out retry=60.
        recovered = _who(proxy.port, "/fr/", 2)
        # forcerecovery=Off: they stay in error until retry (60 s) runs out.
        still = _who(proxy.port, "/nofr/", 2)
    assert "503" not in recovered and set(recovered) <= {"a", "b"}, recovered
    assert still == ["503", "503"]
    assert servers.counts()["c"] == servers.counts()["d"] == 0


ATTEMPTS = """\
<Proxy "balancer://one">
    BalancerMember {{a}}
    BalancerMember {{b}}
    BalancerMember {{c}}
    ProxySet maxattempts=1
</Proxy>
ProxyPass "/one/" "balancer://one/"
<Proxy "balancer://dflt">
    BalancerMember {{a}}
    BalancerMember {{b}}
    BalancerMember {{c}}
</Proxy>
ProxyPass "/dflt/" "balancer://dflt/"
<Proxy "balancer://zero">
    BalancerMember {{a}}
    BalancerMember {{c}}
    ProxySet maxattempts=0
</Proxy>
ProxyPass "/zero/" "balancer://zero/"
"""


def test_maxattempts_bounds_the_tries(tmp_path: Path) -> None:
    """a and b refuse, c serves. byrequests tries a, then b (ties go to the first member),
    then c: one failover is not enough, the default (members-1 = 2) is."""
    with IdServers(["a", "b", "c"], dead=["a", "b"]) as servers, \
            start_balanced(ATTEMPTS, tmp_path, servers) as proxy:
        one = _who(proxy.port, "/one/", 3)
        dflt = _who(proxy.port, "/dflt/", 3)
        zero = _who(proxy.port, "/zero/", 3)
    assert one == ["503", "c", "c"]     # a, b tried and failed; then both are in error
    assert dflt == ["c", "c", "c"]      # a, b, c tried in one request
    assert zero == ["503", "c", "c"]    # no failover at all
    assert servers.counts() == Counter({"c": 7})


FAILONSTATUS = """\
<Proxy "balancer://fs">
    BalancerMember {{a}}
    BalancerMember {{b}}
    ProxySet failonstatus=503
</Proxy>
ProxyPass "/fs/" "balancer://fs/"
<Proxy "balancer://plain">
    BalancerMember {{a}}
    BalancerMember {{b}}
</Proxy>
ProxyPass "/plain/" "balancer://plain/"
"""


def test_failonstatus_puts_the_member_in_error(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers, \
            start_balanced(FAILONSTATUS, tmp_path, servers) as proxy:
        servers.set_status("a", 503)
        first = fetch(proxy.port, "/fs/0")
        fs = _who(proxy.port, "/fs/", 5)
        plain = [fetch(proxy.port, f"/plain/{i}") for i in range(4)]
    # The backend's 503 still reaches the client (no failover on an answered request)...
    assert (first.status, first.member) == (503, "a")
    # ...but a is now in error and the rest go to b.
    assert fs == ["b"] * 5
    # Without failonstatus a backend 503 is just relayed; a stays in the rotation.
    assert [(r.status, r.member) for r in plain] == [(503, "a"), (200, "b")] * 2


LBSETS = """\
<Proxy "balancer://lb">
    BalancerMember {{a}} lbset=0
    BalancerMember {{b}} lbset=0
    BalancerMember {{c}} lbset=1
    BalancerMember {{d}} lbset=1 loadfactor=2
</Proxy>
ProxyPass "/" "balancer://lb/"
"""


def test_lower_lbset_is_preferred_until_all_of_it_is_down(tmp_path: Path) -> None:
    with IdServers(["a", "b", "c", "d"]) as servers, \
            start_balanced(LBSETS, tmp_path, servers) as proxy:
        both = _who(proxy.port, "/both", 6)
        servers.stop("a")
        one = _who(proxy.port, "/one", 4)
        servers.stop("b")
        upper = _who(proxy.port, "/upper", 6)
    assert both == ["a", "b"] * 3
    assert one == ["b"] * 4
    assert Counter(upper) == Counter({"d": 4, "c": 2}), upper


STANDBY = """\
<Proxy "balancer://lb">
    BalancerMember {{a}}
    BalancerMember {{b}}
    BalancerMember {{h}} status=+H
</Proxy>
ProxyPass "/" "balancer://lb/"
"""


def test_hot_standby_only_when_all_others_are_down(tmp_path: Path) -> None:
    with IdServers(["a", "b", "h"]) as servers, \
            start_balanced(STANDBY, tmp_path, servers) as proxy:
        both = _who(proxy.port, "/both", 6)
        servers.stop("a")
        one = _who(proxy.port, "/one", 4)  # b alone still keeps the standby out
        servers.stop("b")
        last = _who(proxy.port, "/last", 4)
        servers.start("a")
        servers.start("b")
    assert both == ["a", "b"] * 3
    assert one == ["b"] * 4
    assert last == ["h"] * 4
    assert servers.counts()["h"] == 4


SPARE = """\
<Proxy "balancer://lb">
    BalancerMember {{a}}
    BalancerMember {{b}}
    BalancerMember {{s}} status=+R
</Proxy>
ProxyPass "/" "balancer://lb/"
"""


def test_spare_stands_in_for_a_down_member(tmp_path: Path) -> None:
    with IdServers(["a", "b", "s"]) as servers, \
            start_balanced(SPARE, tmp_path, servers) as proxy:
        both = _who(proxy.port, "/both", 6)
        servers.stop("a")
        one = _who(proxy.port, "/one", 8)  # unlike a standby, the spare joins b at once
        servers.stop("b")
        none = _who(proxy.port, "/none", 4)
    assert both == ["a", "b"] * 3
    assert "503" not in one and set(one) == {"b", "s"}, one
    assert none == ["s"] * 4


CLOSING = """\
<Proxy "balancer://lb">
    BalancerMember {{a}}
    BalancerMember {{b}}
</Proxy>
ProxyPass "/" "balancer://lb/"
"""


def test_member_that_closes_without_answering_is_a_502_and_no_failover(
        tmp_path: Path) -> None:
    """Only a failed connect fails over (§7.5): a backend that accepts the connection and
    closes it without a status line has had the request, so the client gets 502 and the
    member stays in the rotation (httpd 2.4.71 does the same)."""
    with IdServers(["a", "b"]) as servers, \
            start_balanced(CLOSING, tmp_path, servers) as proxy:
        servers.set_close("a", True)
        got = _who(proxy.port, "/x", 6)
    assert got == ["502", "b"] * 3
    assert servers.members["a"].accepted == 3


TIMEOUTS = """\
<Proxy "balancer://ft">
    BalancerMember {{a}} timeout=1
    BalancerMember {{b}} timeout=1
    ProxySet failontimeout=On
</Proxy>
ProxyPass "/ft/" "balancer://ft/"
<Proxy "balancer://pl">
    BalancerMember {{a}} timeout=1
    BalancerMember {{b}} timeout=1
</Proxy>
ProxyPass "/pl/" "balancer://pl/"
"""


def test_failontimeout_puts_a_slow_member_in_error(tmp_path: Path) -> None:
    """A read timeout is a 502 without failover either way; failontimeout=On also puts the
    member in error, so the following requests avoid it."""
    with IdServers(["a", "b"]) as servers, \
            start_balanced(TIMEOUTS, tmp_path, servers) as proxy:
        servers.set_delay("a", 1.6)
        ft = _who(proxy.port, "/ft/", 4)
        pl = _who(proxy.port, "/pl/", 4)
    assert ft == ["502", "b", "b", "b"]
    assert pl == ["502", "b", "502", "b"]
