"""The balancer `timeout` parameter: wait for a usable member instead of answering 503."""

from __future__ import annotations

import http.server
import threading
import time

from e2e.rawhttp import RawConn

from tests.support.lbconf import LB_MODULES
from tests.support.proxy import Portico, free_port

# LB_MODULES: the LoadModule lines httpd needs for balancers (portico ignores them).
CONF = LB_MODULES + """
<Proxy balancer://wait>
    BalancerMember http://127.0.0.1:{{backend}} retry=1
    ProxySet timeout=4 forcerecovery=Off
</Proxy>
<Proxy balancer://nowait>
    BalancerMember http://127.0.0.1:{{backend}} retry=30
    ProxySet forcerecovery=Off
</Proxy>
ProxyPass /w/ balancer://wait/
ProxyPass /n/ balancer://nowait/
"""


class _Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(port: int) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_request_waits_for_a_member_to_recover(tmp_path) -> None:
    backend = free_port()
    with Portico.start(CONF, tmp_path, backend=backend) as p:
        with RawConn(p.port) as conn:
            # The member is down: the first request puts it in error and gets a 503
            # (forcerecovery=Off, or a lone member in error would be retried at once).
            assert conn.request("GET", "/w/x").status == 503
        server = _serve(backend)
        try:
            started = time.monotonic()
            with RawConn(p.port) as conn:
                resp = conn.request("GET", "/w/x")
            waited = time.monotonic() - started
            assert resp.status == 200
            assert resp.body == b"hello"
            # It waited for the member's retry (1 s) rather than failing at once.
            assert 0.5 <= waited < 4
        finally:
            server.shutdown()
            server.server_close()


def test_without_timeout_an_unavailable_balancer_is_503_at_once(tmp_path) -> None:
    backend = free_port()
    with Portico.start(CONF, tmp_path, backend=backend) as p:
        with RawConn(p.port) as conn:
            assert conn.request("GET", "/n/x").status == 503
        started = time.monotonic()
        with RawConn(p.port) as conn:
            assert conn.request("GET", "/n/x").status == 503
        assert time.monotonic() - started < 1.0
