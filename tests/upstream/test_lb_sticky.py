"""Sticky sessions (§8): value parsing from URL and cookie, routes, redirect, nofailover."""

from __future__ import annotations

import doctest

import pytest

from portico.upstream import sticky
from portico.upstream.candidates import BalancerView
from portico.upstream.status import (
    DISABLED,
    DRAIN,
    ERROR,
    INIT,
    STANDBY,
    STOPPED,
    LocalMemberState,
)
from portico.upstream.sticky import (
    StickyConfig,
    cookie_param,
    find_route_member,
    find_session_route,
    split_route,
    url_param,
)


def test_doctests() -> None:
    assert doctest.testmod(sticky).failed == 0


@pytest.mark.parametrize(("url", "scolon", "value"), [
    ("/p?jsessionid=abc.n2", False, "abc.n2"),
    ("/p?a=1&jsessionid=abc.n2&b=2", False, "abc.n2"),
    ("/p;jsessionid=abc.n2", False, "abc.n2"),
    ("/p;jsessionid=abc.n2;x=1", False, "abc.n2;x=1"),     # ';' ends it only with scolon
    ("/p;jsessionid=abc.n2;x=1", True, "abc.n2"),
    ("/p;jsessionid=abc.n2?q", True, "abc.n2"),
    ("/p?xjsessionid=q.n1", False, "q.n1"),               # not anchored (httpd quirk)
    ("/p?jsessionid=", False, None),
    ("/p?jsessionid", False, None),
    ("/p?jsessionidx=1&jsessionid=.n3", False, ".n3"),    # first hit without '=' is skipped
    ("/p?jsessionid=&.n3", False, ".n3"),                 # leading delimiters skipped
    ("/p?jsessionid=&&", False, None),
    ("/p", False, None),
])
def test_url_param(url: str, scolon: bool, value: str | None) -> None:
    assert url_param(url, "jsessionid", scolon) == value


@pytest.mark.parametrize(("header", "value"), [
    ("ROUTEID=.r1", ".r1"),
    ("a=1; ROUTEID=x.r2; b=2", "x.r2"),
    ("a=1,ROUTEID=.r3", ".r3"),
    ("ROUTEID = .r1", " .r1"),           # spaces before '=' skipped, after it kept
    ("XROUTEID=.r1", None),              # must start at a cookie boundary
    ("XROUTEID=.r1; ROUTEID=.r2", ".r2"),
    ("routeid=.r1", None),               # names are case-sensitive
    ("ROUTEID=", None),
    ("ROUTEID=.r1, other=2", ".r1"),
    ("ROUTEID", None),
    (None, None),
])
def test_cookie_param(header: str | None, value: str | None) -> None:
    assert cookie_param(header, "ROUTEID") == value


def test_split_route() -> None:
    assert split_route("abc.n2", ".") == "n2"
    assert split_route("a.b.c", ".") == "b.c"
    assert split_route("n2", ".") is None
    assert split_route("n2.", ".") is None
    assert split_route("n2", None) == "n2"
    assert split_route("abc_n2", "_") == "n2"
    assert split_route(None, ".") is None


def test_config_from_params() -> None:
    c = StickyConfig.from_params("JSESSIONID|jsessionid")
    assert (c.cookie, c.url, c.sep) == ("JSESSIONID", "jsessionid", ".")
    c = StickyConfig.from_params("SID", "off", scolonpathdelim=True, nofailover=True)
    assert (c.cookie, c.url, c.sep, c.scolonpathdelim, c.nofailover) == (
        "SID", "SID", None, True, True)
    with pytest.raises(ValueError, match="single character"):
        StickyConfig.from_params("SID", "::")
    with pytest.raises(ValueError, match="< 64"):
        StickyConfig.from_params("S" * 64)


def cluster(*routes: tuple[str, int, str]) -> BalancerView:
    """Members from (route, status bits besides INIT, redirect)."""
    return BalancerView([LocalMemberState(status=INIT | bits, route=r, redirect=red)
                         for r, bits, red in routes])


CFG = StickyConfig.from_params("JSESSIONID|jsessionid")


def test_url_beats_cookie() -> None:
    view = cluster(("n1", 0, ""), ("n2", 0, ""))
    r = find_session_route(CFG, view, "balancer://lb/p?jsessionid=abc.n2",
                           "JSESSIONID=abc.n1", 0.0)
    assert (r.route, r.source, r.index, r.changed) == ("n2", "jsessionid", 1, False)
    r = find_session_route(CFG, view, "balancer://lb/p", "JSESSIONID=abc.n1", 0.0)
    assert (r.route, r.source, r.index) == ("n1", "JSESSIONID", 0)


def test_url_value_without_separator_does_not_fall_back_to_the_cookie() -> None:
    view = cluster(("n1", 0, ""), ("n2", 0, ""))
    r = find_session_route(CFG, view, "balancer://lb/p?jsessionid=n2", "JSESSIONID=.n1", 0.0)
    assert r.index is None and r.route is None and r.changed


def test_no_sticky_config_means_no_route_and_no_change_flag() -> None:
    r = find_session_route(None, cluster(("n1", 0, "")), "/p", "JSESSIONID=.n1", 0.0)
    assert r.index is None and not r.changed


def test_draining_member_keeps_its_sessions_but_disabled_does_not() -> None:
    view = cluster(("n1", DRAIN, ""), ("n2", DISABLED, ""))
    assert find_session_route(CFG, view, "/p", "JSESSIONID=.n1", 0.0).index == 0
    r = find_session_route(CFG, view, "/p", "JSESSIONID=.n2", 0.0)
    assert r.index is None and not r.refuse and r.route == "n2"


def test_standbys_are_searched_after_normal_members() -> None:
    view = cluster(("n1", STANDBY, ""), ("n1", 0, ""))
    assert find_route_member(view, "n1", 0.0) == 1
    view.members[1].status |= STOPPED
    assert find_route_member(view, "n1", 0.0) == 0


def test_redirect_chain_and_changed_flag() -> None:
    view = cluster(("n1", DISABLED, "n2"), ("n2", STOPPED, "n3"), ("n3", 0, ""))
    r = find_session_route(CFG, view, "/p", "JSESSIONID=x.n1", 0.0)
    assert (r.index, r.route, r.changed) == (2, "n1", True)


def test_redirect_loop_is_bounded() -> None:
    view = cluster(("n1", DISABLED, "n2"), ("n2", DISABLED, "n1"))
    assert find_route_member(view, "n1", 0.0) is None


def test_error_member_is_retried_by_the_sticky_lookup() -> None:
    view = BalancerView([LocalMemberState(status=INIT | ERROR, route="n1", error_time=10.0)],
                        retry=[5.0])
    assert find_route_member(view, "n1", 15.0) is None
    assert find_route_member(view, "n1", 15.5) == 0
    assert view.members[0].retries == 1


def test_nofailover_refuses_only_routes_of_members() -> None:
    cfg = StickyConfig.from_params("ROUTEID", nofailover=True)
    view = cluster(("r1", DISABLED, ""), ("r2", 0, ""))
    assert find_session_route(cfg, view, "/p", "ROUTEID=.r1", 0.0).refuse
    unknown = find_session_route(cfg, view, "/p", "ROUTEID=.r9", 0.0)
    assert not unknown.refuse and unknown.index is None


def test_separator_off_and_scolonpathdelim() -> None:
    cfg = StickyConfig.from_params("SID|sid", "Off", scolonpathdelim=True)
    view = cluster(("r1", 0, ""), ("r2", 0, ""))
    assert find_session_route(cfg, view, "/p;sid=r2;x=y", None, 0.0).index == 1
    assert find_session_route(cfg, view, "/p", "SID=r1", 0.0).index == 0
    assert find_session_route(cfg, view, "/p", "SID=x.r1", 0.0).index is None
