"""ProxyPassMatch groups come from the decoded path: what they put into the backend URL is
encoded again (a space, '?' or '%' in a group must not break or cut the request line), and
a config URL's own unsafe characters are encoded too, as httpd's canonicalisation does.
Checked against real httpd (PORTICO_E2E_SERVER=httpd)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.rawhttp import RawConn
from tests.support.origin import Origin
from tests.support.proxy import Portico

CONF = r"""
ProxyPassMatch "^/m/(.*)\.json$" {{o}}/echo/json/$1
ProxyPassMatch "^/whole/" {{o}}/echo
ProxyPass /lit/ {{o}}/echo/a{b}/
"""


@pytest.fixture(scope="module")
def proxy(module_origin: Origin, module_proxy_factory) -> Portico:
    return module_proxy_factory(CONF, o=module_origin.url)


@pytest.mark.parametrize(("sent", "received"), [
    ("/m/a%20b.json", "/echo/json/a%20b"),
    ("/m/a%3Fb.json", "/echo/json/a%3Fb"),
    ("/m/a%3Fb.json?q=1", "/echo/json/a%3Fb?q=1"),
    ("/m/a%25b.json", "/echo/json/a%25b"),
    ("/m/caf%C3%A9.json", "/echo/json/caf%C3%A9"),
    ("/m/plain.json?x=%20", "/echo/json/plain?x=%20"),
    ("/whole/a%20b", "/echo/whole/a%20b"),
    ("/lit/x", "/echo/a%7Bb%7D/x"),
])
def test_backend_gets_an_encoded_path(proxy, morigin, sent, received):
    with RawConn(proxy.port) as conn:
        resp = conn.request("GET", sent)
    assert resp.status == 200, resp
    assert json.loads(resp.body)["target"] == received
