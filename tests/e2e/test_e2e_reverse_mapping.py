"""Response rewriting (§3): ProxyPassReverse on Location, Content-Location, URI and
Destination; ProxyPassReverseCookieDomain / ProxyPassReverseCookiePath on Set-Cookie.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.e2e.rawhttp import RawConn
from tests.support.origin import Origin
from tests.support.proxy import Portico

CONF = """
ProxyPass /r {{o}}
ProxyPassReverse /r {{o}}
ProxyPass /p {{o}}
ProxyPassReverse /pub /internal
ProxyPassReverseCookieDomain backend.internal public.example
ProxyPassReverseCookiePath /app /r/app
"""

FRONT = "front.example:8080"


@pytest.fixture(scope="module")
def proxy(module_origin: Origin, module_proxy_factory) -> Portico:
    return module_proxy_factory(CONF, o=module_origin.url)


def get(proxy: Portico, target: str):
    with RawConn(proxy.port) as conn:
        resp = conn.request("GET", target, host=FRONT)
    assert resp.status in (200, 302), resp
    return resp


def response_header(proxy: Portico, name: str, value: str) -> str | None:
    """Have the origin answer with ``name: value``; return what the client got."""
    resp = get(proxy, f"/r/headers?{name}={quote(value, safe='')}")
    return resp.header(name)


def test_location_is_mapped_to_the_front_end(proxy, morigin):
    target = f"{morigin.url}/target/x"
    resp = get(proxy, f"/r/redirect?to={quote(target, safe='')}")
    assert resp.status == 302
    assert resp.header("Location") == f"http://{FRONT}/r/target/x"


@pytest.mark.parametrize("name", ["Location", "Content-Location", "URI", "Destination"])
def test_each_mapped_header(proxy, morigin, name):
    assert response_header(proxy, name, f"{morigin.url}/a/b?c=d") == f"http://{FRONT}/r/a/b?c=d"


def test_prefix_comparison_ignores_case(proxy, morigin):
    upper = morigin.url.replace("http://", "HTTP://")
    assert response_header(proxy, "Location", f"{upper}/x") == f"http://{FRONT}/r/x"


def test_other_hosts_are_left_alone(proxy, morigin):
    assert response_header(proxy, "Location", "http://elsewhere.example/x") == (
        "http://elsewhere.example/x")


def test_unlisted_headers_are_not_rewritten(proxy, morigin):
    assert response_header(proxy, "Refresh", f"0; url={morigin.url}/x") == (
        f"0; url={morigin.url}/x")


def test_path_only_reverse_rule_maps_relative_location(proxy, morigin):
    # A path-only "real" ignores the host; the result is made absolute with the client's Host.
    assert response_header(proxy, "Location", "/internal/x") == f"http://{FRONT}/pub/x"


def test_path_only_reverse_rule_maps_absolute_location_of_any_host(proxy, morigin):
    assert response_header(proxy, "Location", "http://any.example/internal/y") == (
        f"http://{FRONT}/pub/y")


def cookies(proxy: Portico, *values: str) -> list[str]:
    query = "&".join(f"c={quote(v, safe='')}" for v in values)
    return get(proxy, f"/r/set-cookie?{query}").header_all("Set-Cookie")


def test_cookie_path_and_domain_are_replaced_whole(proxy, morigin):
    (c,) = cookies(proxy, "s=1; Path=/app/sub; Domain=backend.internal; HttpOnly")
    attrs = [a.strip() for a in c.split(";")]
    assert attrs[0] == "s=1"
    assert "Path=/r/app" in attrs
    assert "Domain=public.example" in attrs
    assert "HttpOnly" in attrs


def test_cookie_attribute_names_are_case_insensitive(proxy, morigin):
    (c,) = cookies(proxy, "s=2; path=/app; domain=BACKEND.internal")
    attrs = [a.strip() for a in c.split(";")]
    assert any(a.lower() == "path=/r/app" for a in attrs), c
    assert any(a.lower() == "domain=public.example" for a in attrs), c


def test_cookie_domain_with_leading_dot_is_not_a_prefix_match(proxy, morigin):
    (c,) = cookies(proxy, "s=3; Domain=.backend.internal; Path=/other")
    assert "Domain=.backend.internal" in c
    assert "Path=/other" in c


def test_every_set_cookie_header_is_mapped(proxy, morigin):
    got = cookies(proxy, "a=1; Path=/app", "b=2; Path=/app/x")
    assert len(got) == 2
    assert all("Path=/r/app" in c for c in got), got
