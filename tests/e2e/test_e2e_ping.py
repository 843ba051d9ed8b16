"""The worker parameter ping= on HTTP backends (§4.5): with a request body, portico asks for
100 Continue first; no 100 within `ping` seconds is a 503 that fails over."""

from __future__ import annotations

import socket
import time

from e2e.rawhttp import RawConn

from tests.support.lbconf import LB_MODULES
from tests.support.proxy import Portico
from tests.support.rawbackend import RawBackend


class _Backend(RawBackend):
    """A raw HTTP/1.1 backend: answers 100 Continue to Expect (or stays silent), then 200."""

    def __init__(self, send_continue: bool) -> None:
        self.send_continue = send_continue
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        self.heads.append(head)
        if b"expect: 100-continue" in head.lower():
            if not self.send_continue:
                time.sleep(3)   # never says 100 in time
                return
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += conn.recv(65536)
        self.bodies.append(rest)
        body = b"got %d" % len(rest)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))


# LB_MODULES: the LoadModule lines httpd needs for balancers (portico ignores them).
CONF = LB_MODULES + """
<Proxy balancer://pinged>
    BalancerMember http://127.0.0.1:{{silent}} ping=1
    BalancerMember http://127.0.0.1:{{good}} ping=1
</Proxy>
ProxyPass /b/ balancer://pinged/
ProxyPass /g/ http://127.0.0.1:{{good}}/ ping=1
"""


def _post(port: int, path: str, body: bytes):
    with RawConn(port) as conn:
        return conn.request("POST", path, body=body)


def test_ping_sends_the_body_after_100_continue(tmp_path) -> None:
    silent, good = _Backend(False), _Backend(True)
    try:
        with Portico.start(CONF, tmp_path, silent=silent.port, good=good.port) as p:
            resp = _post(p.port, "/g/x", b"payload")
            assert resp.status == 200
            assert resp.body == b"got 7"
            assert b"expect: 100-continue" in good.heads[-1].lower()
            assert good.bodies[-1] == b"payload"
    finally:
        silent.close()
        good.close()


def test_no_100_within_ping_fails_over_to_another_member(tmp_path) -> None:
    silent, good = _Backend(False), _Backend(True)
    try:
        with Portico.start(CONF, tmp_path, silent=silent.port, good=good.port) as p:
            started = time.monotonic()
            answers = [_post(p.port, "/b/x", b"abc") for _ in range(2)]
            assert [a.status for a in answers] == [200, 200]
            assert all(a.body == b"got 3" for a in answers)
            # The silent member got a head, never a body, and cost at most one ping wait.
            assert silent.bodies == []
            assert time.monotonic() - started < 2.9
    finally:
        silent.close()
        good.close()
