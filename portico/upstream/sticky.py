"""Sticky sessions exactly as httpd does them (§8): find the route a request carries, and
the member that route leads to.

How it works:

* ``stickysession=NAME`` looks for ``NAME`` in the URL and in the Cookie header;
  ``stickysession=COOKIE|urlname`` uses different names for the two.
* The URL is searched first, the *whole* target (path and query) as a plain substring:
  ``name=`` anywhere counts, so ``sid`` also matches ``xsid=...`` and a path parameter
  ``/p;sid=...``. The value runs to the next ``?`` or ``&`` (and ``;`` with
  ``scolonpathdelim=On``); like httpd's tokenizer, delimiters right after ``=`` are skipped.
  Only when the URL gives nothing is the cookie read: a name at the start of the header or
  after ``;``, ``,`` or whitespace, optional spaces, ``=``, a non-empty value up to ``;`` or ``,``.
* The route is what follows the *first* ``stickysessionsep`` (default ``.``) in the value;
  no separator means no route. With ``stickysessionsep=Off`` the whole value is the route.
* The member whose ``route`` equals it (case-sensitive) is searched among non-standby members
  first, then among hot standbys (``H``), in configuration order. A member that is not usable
  gets `retry_worker`; if still unusable, its ``redirect=`` route is followed (recursively,
  bounded by the member count). Draining members are usable, so they keep their sessions.
* No member found: with ``nofailover=On`` and a route that is some member's route, the
  request must get 503; otherwise it is load-balanced normally.

Locking: `find_session_route` may clear error flags (retry); call it under the balancer lock.
"""

from __future__ import annotations

__all__ = [
    "StickyConfig", "StickyResult", "cookie_param", "find_route_member", "find_session_route",
    "split_route", "url_param",
]

from dataclasses import dataclass

from portico.upstream.candidates import BalancerView, retry_worker
from portico.upstream.status import STANDBY, is_usable

_SPACE = " \t\n\v\f\r"


@dataclass(frozen=True, slots=True)
class StickyConfig:
    """A balancer's sticky-session parameters.

    ``sep`` is the one-character ``stickysessionsep``, or None for ``Off``.
    """

    cookie: str
    url: str
    sep: str | None = "."
    scolonpathdelim: bool = False
    nofailover: bool = False

    @classmethod
    def from_params(
        cls, stickysession: str, stickysessionsep: str = ".", *,
        scolonpathdelim: bool = False, nofailover: bool = False,
    ) -> StickyConfig:
        """Build from the parameter texts; ValueError for what httpd's config would refuse.

        ``stickysession`` is ``NAME`` or ``COOKIE|urlname`` (each under 64 characters);
        ``stickysessionsep`` one character or ``Off`` (any case).
        """
        if not stickysession:
            raise ValueError("stickysession needs a name")
        if len(stickysession) >= 64:
            raise ValueError("stickysession length must be < 64 characters")
        cookie, bar, url = stickysession.partition("|")
        if not bar:
            url = cookie
        if len(stickysessionsep) == 1:
            sep: str | None = stickysessionsep
        elif stickysessionsep.lower() == "off":
            sep = None
        else:
            raise ValueError("stickysessionsep must be a single character or Off")
        return cls(cookie, url, sep, scolonpathdelim, nofailover)


@dataclass(frozen=True, slots=True)
class StickyResult:
    """What the sticky lookup decided for one request.

    ``route``: the route the request carried (None when it carried none).
    ``source``: the cookie or URL parameter name that supplied it ("" when none), for
    BALANCER_SESSION_STICKY. ``index``: the member to use, or None to load-balance.
    ``refuse``: answer 503 (nofailover and the route's member is unusable).
    ``changed``: BALANCER_ROUTE_CHANGED must be set (no route, an unknown one, or a member
    reached through ``redirect=``); a caller that load-balances sets it anyway.
    """

    route: str | None = None
    source: str = ""
    index: int | None = None
    refuse: bool = False
    changed: bool = True


def url_param(url: str, name: str, scolonpathdelim: bool = False) -> str | None:
    """httpd's path-parameter search: the value of ``name=`` anywhere in ``url``, or None.

    >>> url_param("/app;jsessionid=abc.n2?x=1", "jsessionid")
    'abc.n2'
    >>> url_param("/a?xsid=q.r1", "sid")
    'q.r1'
    """
    if not name:
        return None
    delims = ";?&" if scolonpathdelim else "?&"
    pos = url.find(name)
    while pos >= 0:
        start = pos + len(name)
        if url.startswith("=", start) and start + 1 < len(url):
            # apr_strtok: skip leading delimiters, then take up to the next one.
            i = start + 1
            while i < len(url) and url[i] in delims:
                i += 1
            if i == len(url):
                return None
            j = i
            while j < len(url) and url[j] not in delims:
                j += 1
            return url[i:j]
        pos = url.find(name, pos + 1)
    return None


def cookie_param(cookie_header: str | None, name: str) -> str | None:
    """httpd's cookie search: the value of cookie ``name`` in the (merged) Cookie header.

    Repeated Cookie headers should be joined with ``", "`` first, as httpd merges them.

    >>> cookie_param("a=1; ROUTEID=.r2; b=2", "ROUTEID")
    '.r2'
    >>> cookie_param("XROUTEID=.r2", "ROUTEID") is None
    True
    """
    if not cookie_header or not name:
        return None
    text = cookie_header
    pos = text.find(name)
    while pos >= 0:
        if pos == 0 or text[pos - 1] in ";," or text[pos - 1] in _SPACE:
            i = pos + len(name)
            while i < len(text) and text[i] in _SPACE:
                i += 1
            if i < len(text) and text[i] == "=" and i + 1 < len(text):
                value = text[i + 1:]
                for stop in ";,":
                    k = value.find(stop)
                    if k >= 0:
                        value = value[:k]
                return value
        pos = text.find(name, pos + 1)
    return None


def split_route(value: str | None, sep: str | None) -> str | None:
    """The route in a session value: after the first ``sep``; the whole value when sep is
    None (``Off``); None when there is no separator or nothing after it.

    >>> split_route("abc.n2", "."), split_route("a.b.c", "."), split_route("n2", ".")
    ('n2', 'b.c', None)
    """
    if value is None:
        return None
    if sep is not None:
        k = value.find(sep)
        if k < 0:
            return None
        value = value[k + 1:]
    return value or None


def find_route_member(view: BalancerView, route: str, now: float, depth: int = 1) -> int | None:
    """The member ``route`` leads to (non-standby first, then ``H``), following ``redirect=``.

    Returns a usable member's index or None. Unusable matches get `retry_worker` first.
    """
    members = view.members
    for standby_pass in (False, True):
        for i, m in enumerate(members):
            if bool(m.status & STANDBY) != standby_pass or m.route != route or not m.route:
                continue
            if not is_usable(m.status):
                retry_worker(m, view.retry_of(i), now)
            if is_usable(m.status):
                return i
            if m.redirect and depth < len(members):
                r = find_route_member(view, m.redirect, now, depth + 1)
                if r is not None:
                    target = members[r]
                    if not is_usable(target.status):
                        retry_worker(target, view.retry_of(r), now)
                    if is_usable(target.status):
                        return r
    return None


def find_session_route(
    config: StickyConfig | None, view: BalancerView, url: str, cookie_header: str | None,
    now: float,
) -> StickyResult:
    """Decide the sticky outcome of one request (§8, plus §7.4's nofailover check).

    ``url`` is the proxied target as httpd searches it (path and query, e.g.
    ``balancer://lb/app;jsessionid=x.n1?a=b``); ``cookie_header`` the merged Cookie header.
    """
    if config is None or not config.cookie:
        return StickyResult(changed=False)
    source = config.url
    value = url_param(url, config.url, config.scolonpathdelim)
    if value is None:
        value = cookie_param(cookie_header, config.cookie)
        source = config.cookie
    route = split_route(value, config.sep)
    if route is None:
        return StickyResult()
    index = find_route_member(view, route, now)
    if index is not None:
        changed = view.members[index].route != route
        return StickyResult(route, source, index, changed=changed)
    refuse = config.nofailover and any(m.route == route for m in view.members)
    return StickyResult(route, source, None, refuse=refuse)
