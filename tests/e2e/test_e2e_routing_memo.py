"""The pipeline remembers what a request-target decides, per virtual host: repeated and
interleaved targets must still reach exactly where they did the first time, each with its own
query string, and the same target in two virtual hosts must keep going to each one's backend.
(Requests whose Host names no virtual host are served by the first one, which inherits the
main server's rules ahead of its own, as in httpd.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.rawhttp import RawConn
from tests.support.origin import Origin
from tests.support.proxy import Portico

CONF = """
ProxyPass /a/ {{o}}/one/
ProxyPass /b {{o}}/two
<Location /c>
    ProxyPass {{o}}/three
</Location>
<VirtualHost *:{{port}}>
    ServerName first.test
    ProxyPass /v/ {{o}}/first/
</VirtualHost>
<VirtualHost *:{{port}}>
    ServerName second.test
    ProxyPass /v/ {{o2}}/second/
</VirtualHost>
"""


@pytest.fixture(scope="module")
def other_origin() -> Iterator[Origin]:
    with Origin() as o:
        yield o


@pytest.fixture(scope="module")
def proxy(module_origin: Origin, other_origin: Origin, module_proxy_factory) -> Portico:
    return module_proxy_factory(CONF, o=module_origin.url, o2=other_origin.url)


def _targets_seen(origin: Origin, count: int) -> list[str]:
    return [r.target for r in origin.wait_for_requests(count)]


def test_repeated_and_interleaved_targets_keep_their_routes(proxy, morigin):
    sent = ["/a/x?q=1", "/b/y", "/a/x?q=2", "/c/z?k=v", "/a/x?q=1", "/b/y", "/a/x",
            "/c/z?k=w", "/b/y?last"]
    with RawConn(proxy.port, timeout=10) as conn:
        for target in sent:
            resp = conn.request("GET", target)
            assert resp.status == 200, (target, resp.status)
    assert _targets_seen(morigin, len(sent)) == [
        "/one/x?q=1", "/two/y", "/one/x?q=2", "/three/z?k=v", "/one/x?q=1", "/two/y",
        "/one/x", "/three/z?k=w", "/two/y?last"]


def test_the_same_target_in_two_virtual_hosts_goes_to_each_ones_backend(
        proxy, morigin, other_origin):
    other_origin.reset()
    with RawConn(proxy.port, timeout=10) as conn:
        for host in ("first.test", "second.test", "first.test", "second.test"):
            resp = conn.request("GET", "/v/same?n=1", host=host)
            assert resp.status == 200, (host, resp.status)
    assert _targets_seen(morigin, 2) == ["/first/same?n=1", "/first/same?n=1"]
    assert _targets_seen(other_origin, 2) == ["/second/same?n=1", "/second/same?n=1"]
