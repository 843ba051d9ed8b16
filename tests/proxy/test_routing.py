"""Route matching and backend URL construction (reference §2.1.1, §2.2), on model objects."""

from __future__ import annotations

import re
from types import MappingProxyType

import pytest

from portico.config.model import (
    EncodedSlashes,
    Route,
    RouteKind,
    Source,
    VirtualHost,
    WorkerParams,
    WorkerSpec,
)
from portico.proxy.routing import Router
from portico.proxy.uri import BadTarget, parse_target

SRC = Source("test.conf", 1)


def worker(name: str, host: str = "b", port: int = 80, placeholders: bool = False) -> WorkerSpec:
    path = name.split("//", 1)[1].partition("/")[2]
    return WorkerSpec(name=name, scheme=name.split(":", 1)[0], host=host, port=port,
                      path="/" + path if path else "", params=WorkerParams(), source=SRC,
                      has_placeholders=placeholders)


def router(*rules: tuple[str, str | None], regex: bool = False) -> Router:
    workers: dict[str, WorkerSpec] = {}
    routes = []
    for path, target in rules:
        name = None
        if target is not None:
            placeholders = "$" in target
            host = target.split("//", 1)[1].split("/", 1)[0]
            name = target
            workers.setdefault(name, worker(name, host=host.split(":")[0],
                                            placeholders=placeholders))
        routes.append(Route(
            kind=RouteKind.REGEX if regex else RouteKind.PREFIX, path=path, target=target,
            source=SRC, pattern=re.compile(path) if regex else None, worker=name))
    vh = VirtualHost(server_name="front", source=SRC, routes=tuple(routes))
    return Router(vh, MappingProxyType(workers))


def backend_path(r: Router, target: bytes) -> str | None:
    m = r.route(parse_target(target, EncodedSlashes.OFF))
    return None if m is None else m.path


@pytest.mark.parametrize(("alias", "url", "target", "expected"), [
    ("/a", "http://b", b"/a", "/"),
    ("/a", "http://b", b"/a/x", "/x"),
    ("/a", "http://b", b"/ax", None),
    ("/b/", "http://b/", b"/b", None),
    ("/c", "http://b/", b"/c/x", "//x"),
    ("/a", "http://b", b"/a//x", "/x"),
    ("/a", "http://b", b"/a/%7Efoo?x=%20y", "/~foo?x=%20y"),
])
def test_prefix_table(alias: str, url: str, target: bytes, expected: str | None) -> None:
    assert backend_path(router((alias, url)), target) == expected


def test_host_concatenation_is_an_error() -> None:
    # ProxyPass /d/ http://b with /d/x gives httpd the URL http://bx: a 500.
    with pytest.raises(BadTarget) as info:
        backend_path(router(("/d/", "http://b")), b"/d/x")
    assert info.value.status == 500


def test_encoded_slash_is_404_by_default() -> None:
    with pytest.raises(BadTarget) as info:
        parse_target(b"/a/x%2Fy", EncodedSlashes.OFF)
    assert info.value.status == 404
    assert parse_target(b"/a/x%2Fy", EncodedSlashes.NO_DECODE).path == "/a/x%2Fy"
    assert parse_target(b"/a/x%2Fy", EncodedSlashes.ON).path == "/a/x/y"


def test_first_match_wins_and_exclusion_stops() -> None:
    r = router(("/app/static", None), ("/app", "http://b/one"), ("/", "http://c/two/"))
    assert backend_path(r, b"/app/static/x.css") is None
    assert backend_path(r, b"/app/x") == "/one/x"
    assert backend_path(r, b"/other") == "/two/other"


def test_regex_substitution_and_whole_path_default() -> None:
    r = router((r"^/m/(.*)\.json$", "http://b/json/$1"), regex=True)
    assert backend_path(r, b"/m/foo/bar.json?q=1") == "/json/foo/bar?q=1"
    r = router((r"^/n/.*\.txt$", "http://b/base"), regex=True)
    assert backend_path(r, b"/n/x/y.txt?q=2") == "/base/n/x/y.txt?q=2"


def test_regex_missing_group_is_empty_and_escape_kept_literal() -> None:
    r = router((r"^/p/(a)?(b)$", r"http://b/x$1y\$2"), regex=True)
    assert backend_path(r, b"/p/b") == "/xy$2"


def test_dot_segments_and_bad_escapes() -> None:
    assert parse_target(b"/a/./b/../c", EncodedSlashes.OFF).path == "/a/c"
    with pytest.raises(BadTarget) as info:
        parse_target(b"/../etc/passwd", EncodedSlashes.OFF)
    assert info.value.status == 400
    with pytest.raises(BadTarget):
        parse_target(b"/a%zz", EncodedSlashes.OFF)


def test_absolute_form_target() -> None:
    t = parse_target(b"http://example.com:8080/p/q?x=1", EncodedSlashes.OFF)
    assert (t.authority, t.path, t.query) == ("example.com:8080", "/p/q", "x=1")


def test_reencoding_of_decoded_remainder() -> None:
    r = router(("/a", "http://b"))
    assert backend_path(r, b"/a/sp%20ace") == "/sp%20ace"
    assert backend_path(r, b"/a/caf%C3%A9") == "/caf%C3%A9"


@pytest.mark.parametrize(("alias", "url", "target", "expected"), [
    ("/", "http://b/", b"/small", ("http://b:80/small", "/small")),
    ("/", "http://b/", b"/", ("http://b:80/", "/")),
    ("/", "http://b/base/", b"/x%20y?q=%20", ("http://b:80/base/x%20y", "/base/x%20y?q=%20")),
    ("/a/", "http://b", b"/a/", ("http://b:80/", "/")),
    ("/a", "http://b", b"/a/%C3%A9?", ("http://b:80/%C3%A9", "/%C3%A9?")),
    ("/a", "http://b/", b"/a/x.html", ("http://b:80//x.html", "//x.html")),
])
def test_prefix_match_url_and_path(alias: str, url: str, target: bytes,
                                   expected: tuple[str, str]) -> None:
    r = router((alias, url))
    m = r.route(parse_target(target, EncodedSlashes.OFF))
    assert m is not None
    assert (m.url, m.path) == expected
    assert (m.worker, m.host, m.port, m.balancer) == (url, "b", 80, None)


def mapped_router(*rules: tuple[str, str | None, str]) -> Router:
    """Prefix rules (path, target, mapping) on model objects."""
    workers = {t: worker(t, host=t.split("//", 1)[1].split("/", 1)[0])
               for _, t, _ in rules if t is not None}
    routes = tuple(Route(kind=RouteKind.PREFIX, path=p, target=t, source=SRC, worker=t,
                         mapping=m) for p, t, m in rules)
    return Router(VirtualHost(server_name="front", source=SRC, routes=routes),
                  MappingProxyType(workers))


def test_mapped_rules_go_first_and_see_the_encoded_path() -> None:
    r = mapped_router(("/a", "http://b/plain", ""), ("/a", "http://b/enc", "encoded"),
                      ("/s/", "http://b/servlet/", "servlet"))
    assert backend_path(r, b"/a/x%e9?q") == "/enc/x%e9?q"
    assert backend_path(r, b"/s;j=1/x;k=2") == "/servlet/x;k=2"
    r = mapped_router(("/a", None, "encoded"), ("/a", "http://b/plain", ""))
    assert backend_path(r, b"/a/x%e9") == "/plain/x%E9"   # a mapped ! ends only that phase


def test_plain_prefix_rules_stay_on_the_direct_branch() -> None:
    # Router.route builds a plain rule's Match inline (the hot path); mapped and
    # interpolating rules must not push plain ones off it.
    r = mapped_router(("/a", "http://b/x", ""), ("/e", "http://b/y", "encoded"))
    assert [c.direct for c in r._routes] == [True]
    assert not r.interpolates


def test_an_environment_changes_nothing_without_interpolate() -> None:
    r = router(("/${X}", "http://b/${X}/"))
    target = parse_target(b"/$%7BX%7D/z", EncodedSlashes.OFF)
    assert not r.interpolates
    found = r.route(target, (), {"X": "x"})
    assert found is not None and found.path == "/$%7BX%7D//z"   # braces encoded, as httpd
    assert found == r.route(target)
