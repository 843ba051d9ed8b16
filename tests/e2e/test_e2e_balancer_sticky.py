"""Sticky sessions over real sockets (§8): routes from a cookie, a URL path parameter or a
query parameter; ``COOKIE|urlparam``; stickysessionsep; failover of a sticky request whose
member is down unless nofailover=On; draining members keep their sessions; ``redirect=``.

Every member's backend listens unless the test says otherwise, so "never chosen" is proved by
a member that could have answered and did not.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.support.idservers import IdServers
from tests.support.lbclient import fetch
from tests.support.lbconf import start_balanced

ROUTED = """\
<Proxy "balancer://ck">
    BalancerMember {{a}} route=r1
    BalancerMember {{b}} route=r2
    BalancerMember {{c}} route=r3
    ProxySet stickysession=JSESSIONID
</Proxy>
ProxyPass "/ck/" "balancer://ck/"
<Proxy "balancer://tc">
    BalancerMember {{a}} route=r1
    BalancerMember {{b}} route=r2
    BalancerMember {{c}} route=r3
    ProxySet stickysession=JSESSIONID|jsessionid
</Proxy>
ProxyPass "/tc/" "balancer://tc/"
<Proxy "balancer://sep">
    BalancerMember {{a}} route=r1
    BalancerMember {{b}} route=r2
    BalancerMember {{c}} route=r3
    ProxySet stickysession=SID stickysessionsep=_
</Proxy>
ProxyPass "/sep/" "balancer://sep/"
<Proxy "balancer://whole">
    BalancerMember {{a}} route=r1
    BalancerMember {{b}} route=r2
    BalancerMember {{c}} route=r3
    ProxySet stickysession=SID stickysessionsep=Off
</Proxy>
ProxyPass "/whole/" "balancer://whole/"
"""


def _who(port: int, path: str, cookie: str | None = None, n: int = 1) -> list[str]:
    return [fetch(port, path, cookie).who for _ in range(n)]


def test_cookie_route_sticks(tmp_path: Path) -> None:
    with IdServers(["a", "b", "c"]) as servers, \
            start_balanced(ROUTED, tmp_path, servers) as proxy:
        assert _who(proxy.port, "/ck/x", "JSESSIONID=abc.r2", 5) == ["b"] * 5
        assert _who(proxy.port, "/ck/x", "other=1; JSESSIONID=zz.r3", 3) == ["c"] * 3
        # The first separator wins: "a.b.r1" names route "b.r1", which no member has.
        # An unknown route is load-balanced; so is a value without a separator.
        spread = _who(proxy.port, "/ck/x", "JSESSIONID=a.b.r1", 3)
        spread += _who(proxy.port, "/ck/x", "JSESSIONID=r1", 3)
        # The URL parameter has the cookie's name when no "|" is given.
        assert _who(proxy.port, "/ck/x?JSESSIONID=q.r1", n=3) == ["a"] * 3
    assert len(set(spread)) >= 2, spread
    assert [h.header("Cookie") for h in servers.hits[:1]] == ["JSESSIONID=abc.r2"]


def test_url_path_and_query_parameters_route(tmp_path: Path) -> None:
    with IdServers(["a", "b", "c"]) as servers, \
            start_balanced(ROUTED, tmp_path, servers) as proxy:
        assert _who(proxy.port, "/tc/app;jsessionid=x.r3", n=3) == ["c"] * 3
        assert _who(proxy.port, "/tc/app?jsessionid=x.r2", n=3) == ["b"] * 3
        assert _who(proxy.port, "/tc/app?a=1&jsessionid=.r1&b=2", n=2) == ["a"] * 2
        # Cookie JSESSIONID, URL parameter jsessionid: the URL beats the cookie.
        assert _who(proxy.port, "/tc/app?jsessionid=x.r2", "JSESSIONID=x.r1") == ["b"]
        assert _who(proxy.port, "/tc/app", "JSESSIONID=x.r1", 2) == ["a"] * 2
        # The cookie name is not the URL name here: ?JSESSIONID= is not looked at.
        spread = _who(proxy.port, "/tc/app?JSESSIONID=x.r3", n=3)
        targets = [h.target for h in servers.hits]
    assert set(spread) != {"c"}, spread
    # The session parameter travels on to the backend untouched.
    assert "/app;jsessionid=x.r3" in targets, targets
    assert "/app?a=1&jsessionid=.r1&b=2" in targets, targets


def test_stickysessionsep(tmp_path: Path) -> None:
    with IdServers(["a", "b", "c"]) as servers, \
            start_balanced(ROUTED, tmp_path, servers) as proxy:
        assert _who(proxy.port, "/sep/x", "SID=abc_r2", 4) == ["b"] * 4
        dotted = _who(proxy.port, "/sep/x", "SID=abc.r2", 4)  # no "_": no route
        assert _who(proxy.port, "/whole/x", "SID=r3", 4) == ["c"] * 4
        assert _who(proxy.port, "/whole/x?SID=r1", n=2) == ["a"] * 2
        unknown = _who(proxy.port, "/whole/x", "SID=x.r3", 3)  # "x.r3" is the whole route
    assert len(set(dotted)) >= 2, dotted
    assert len(set(unknown)) >= 2, unknown
    assert sum(servers.counts().values()) == 17


DOWN = """\
<Proxy "balancer://fo">
    BalancerMember {{a}} route=r1
    BalancerMember {{b}} route=r2
    BalancerMember {{c}} route=r3
    ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass "/fo/" "balancer://fo/"
<Proxy "balancer://nf">
    BalancerMember {{a}} route=r1
    BalancerMember {{b}} route=r2
    BalancerMember {{c}} route=r3
    ProxySet stickysession=ROUTEID nofailover=On
</Proxy>
ProxyPass "/nf/" "balancer://nf/"
"""


def test_sticky_member_down_fails_over(tmp_path: Path) -> None:
    with IdServers(["a", "b", "c"]) as servers, \
            start_balanced(DOWN, tmp_path, servers) as proxy:
        assert _who(proxy.port, "/fo/x", "ROUTEID=.r2", 2) == ["b"] * 2
        servers.stop("b")
        after = _who(proxy.port, "/fo/x", "ROUTEID=.r2", 6)
    assert "b" not in after and all(w in ("a", "c") for w in after), after


def test_sticky_member_down_with_nofailover_is_503(tmp_path: Path) -> None:
    with IdServers(["a", "b", "c"]) as servers, \
            start_balanced(DOWN, tmp_path, servers) as proxy:
        assert _who(proxy.port, "/nf/x", "ROUTEID=.r2", 2) == ["b"] * 2
        servers.stop("b")
        stuck = _who(proxy.port, "/nf/x", "ROUTEID=.r2", 3)
        others = _who(proxy.port, "/nf/x", "ROUTEID=.r3", 2)
        fresh = _who(proxy.port, "/nf/x", None, 4)  # no session: balanced over a and c
        unknown = _who(proxy.port, "/nf/x", "ROUTEID=.r9", 2)  # names no member: balanced
    assert stuck == ["503"] * 3
    assert others == ["c"] * 2
    assert sorted(set(fresh)) == ["a", "c"], fresh
    assert set(unknown) <= {"a", "c"}, unknown


DRAIN = """\
<Proxy "balancer://dr">
    BalancerMember {{a}} route=r1
    BalancerMember {{b}} route=r2
    BalancerMember {{n}} route=r3 status=+N
    ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass "/" "balancer://dr/"
"""


def test_draining_member_keeps_its_sessions_only(tmp_path: Path) -> None:
    with IdServers(["a", "b", "n"]) as servers, \
            start_balanced(DRAIN, tmp_path, servers) as proxy:
        sticky = _who(proxy.port, "/x", "ROUTEID=s1.r3", 5)
        fresh = _who(proxy.port, "/y", None, 10)
        unknown = _who(proxy.port, "/z", "ROUTEID=s1.r7", 4)
    assert sticky == ["n"] * 5
    assert Counter(fresh) == Counter({"a": 5, "b": 5}), fresh
    assert "n" not in unknown, unknown
    assert servers.counts()["n"] == 5


REDIRECT = """\
<Proxy "balancer://rd">
    BalancerMember {{a}} route=r1 redirect=r2
    BalancerMember {{b}} route=r2
    BalancerMember {{c}} route=r3
    BalancerMember {{d}} route=r4 redirect=r3 status=+D
    ProxySet stickysession=ROUTEID
</Proxy>
ProxyPass "/" "balancer://rd/"
"""


def test_redirect_sends_a_down_members_sessions_to_the_named_route(tmp_path: Path) -> None:
    with IdServers(["a", "b", "c", "d"]) as servers, \
            start_balanced(REDIRECT, tmp_path, servers) as proxy:
        # A usable member keeps its own sessions; redirect= only applies when it is down.
        assert _who(proxy.port, "/x", "ROUTEID=.r1", 2) == ["a"] * 2
        # d is disabled: its sessions go to r3 (c), never elsewhere, never to d.
        assert _who(proxy.port, "/x", "ROUTEID=.r4", 4) == ["c"] * 4
        servers.stop("a")
        # The first r1 request finds a refusing; a goes into error and the request fails
        # over; from then on redirect=r2 takes r1 sessions to b.
        first = _who(proxy.port, "/x", "ROUTEID=.r1")
        after = _who(proxy.port, "/x", "ROUTEID=.r1", 5)
    assert first[0] in ("b", "c"), first
    assert after == ["b"] * 5
    assert servers.counts()["d"] == 0
