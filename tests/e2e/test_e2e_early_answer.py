"""A backend that answers before it has read the whole request body (403 on the head alone):
its connection still owes bytes of that body, so it must never serve another request — with
ProxyErrorOverride replacing the answer or not — and the client's connection closes after the
answer, since the rest of its body has nowhere to go."""

from __future__ import annotations

import socket

import pytest

from tests.e2e.rawhttp import RawConn, request_bytes
from tests.support.proxy import Portico, server_kind
from tests.support.rawbackend import RawBackend

HTTPD = server_kind() == "httpd"


class _EarlyBackend(RawBackend):
    """Keep-alive raw backend. ``/deny`` is answered 403 from the head alone, without reading
    a byte of the body; anything else gets 200 whose body is the request line it read, so a
    request parsed out of leftover body bytes shows in the answer."""

    def serve(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0]
            if b" /deny " in line:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope")
                continue   # the body (if it ever comes) is read as the next "head"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(line), line))


@pytest.fixture
def backend():
    b = _EarlyBackend()
    yield b
    b.close()


@pytest.mark.skipif(
    HTTPD, reason="httpd 2.4.71 reads the request body (up to 16 KiB, blocking) before it "
    "contacts the backend and sends all of it before it reads the answer, so the early 403 "
    "never reaches the client: it waits Timeout for the 15 missing bytes and gets 408 "
    "(AH01095); portico relays the 403 at once (docs/compat.md)")
@pytest.mark.parametrize("override", ["On", "Off"])
def test_a_backend_that_answered_early_serves_no_other_request(tmp_path, backend, override):
    conf = f"ProxyErrorOverride {override}\nProxyPass / http://127.0.0.1:{backend.port}/\n"
    with Portico.start(conf, tmp_path) as proxy:
        with RawConn(proxy.port) as first:
            # 20 bytes promised, 5 sent: the backend answers from the head alone
            first.send(request_bytes("POST", "/deny", [("Content-Length", "20")]) + b"hello")
            answer = first.read_final("POST")
            assert answer.status == 403
            assert answer.header("Connection") == "close"
            assert first.closed_by_peer()
        with RawConn(proxy.port) as second:
            reply = second.request("GET", "/second")
    assert reply.status == 200
    assert reply.body == b"GET /second HTTP/1.1"   # a request of its own, on a fresh connection
    assert backend.connections == 2
