"""`Require host`: the client's double-reverse-verified name (127.0.0.1 ↔ localhost here),
looked up off the request path and cached; requests wait for the first lookup."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from e2e.rawhttp import RawConn

from portico.admin.access import compile_require
from tests.support.origin import Origin
from tests.support.proxy import Portico, server_kind

pytestmark = pytest.mark.skipif(server_kind() != "portico", reason="portico's access rules")


def _localhost_verifies() -> bool:
    try:
        name = socket.gethostbyaddr("127.0.0.1")[0]
        return "127.0.0.1" in {i[4][0] for i in socket.getaddrinfo(name, None)}
    except OSError:
        return False


CONF = """
<Location /allowed>
    Require host localhost
</Location>
<Location /domain>
    Require host example.invalid
</Location>
<Location /either>
    <RequireAny>
        Require host example.invalid
        Require ip 127.0.0.1
    </RequireAny>
</Location>
ProxyPass / {{o}}/
"""


@pytest.mark.skipif(not _localhost_verifies(), reason="127.0.0.1 does not resolve to a name "
                    "that resolves back here")
def test_require_host_over_real_sockets(tmp_path: Path) -> None:
    with Origin() as origin, Portico.start(CONF, tmp_path, o=origin.url) as p:
        with RawConn(p.port) as conn:
            # The first request waits for the lookup, then goes through with its body.
            resp = conn.request("POST", "/allowed/x", body=b"payload")
            assert resp.status == 200
            assert conn.request("GET", "/allowed/y").status == 200      # cached now
        with RawConn(p.port) as conn:
            assert conn.request("GET", "/domain/x").status == 403
            assert conn.request("GET", "/either/x").status == 200
        seen = [(r.method, r.path, r.body) for r in origin.requests]
        assert ("POST", "/allowed/x", b"payload") in seen
        assert not any(path.startswith("/domain") for _, path, _ in seen)


def test_host_rule_matches_names_and_domains() -> None:
    from portico.admin.access import Peer, Result

    check = compile_require(["host", "example.org"])
    assert check.needs_host
    for name, result in (("example.org", Result.GRANTED), ("www.example.org", Result.GRANTED),
                         ("badexample.org", Result.DENIED), (None, Result.DENIED)):
        assert check.evaluate(Peer(None, None, hostname=name)) is result
