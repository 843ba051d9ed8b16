"""Large Content-Length bodies spliced from the backend's socket to the client's
(ProxySplice, server/splice.py): what the client gets is the same with it on and off, the
accounting and keep-alive stay right, a backend that stops or stalls mid-body still ends in
a visibly truncated response, and a client that leaves mid-body leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import time

import pytest

from tests.e2e.rawhttp import RawConn, request_bytes
from tests.support.origin import Origin, pattern, pattern_sha256
from tests.support.proxy import Portico, server_kind

HTTPD = server_kind() == "httpd"
# ProxySplice is portico's own directive (docs/compat.md, Backends): httpd knows no such
# directive and reads every body through its buckets, which is what Off does. So the reference
# runs leave the line out and take the Off side only.
SPLICE_MODES = ["Off"] if HTTPD else ["On", "Off"]
portico_only = pytest.mark.skipif(
    HTTPD, reason="ProxySplice is portico's own directive (docs/compat.md), and the test counts "
    "the pipes and sockets the portico process holds in /proc")

CONF = ("" if HTTPD else "ProxySplice {{splice}}\n") + """\
ProxyTimeout 2
LogFormat "%U %>s %B %O" sizes
CustomLog {{access_log}} sizes
ProxyPass / {{o}}/
"""

MIB = 1 << 20


@pytest.fixture(scope="module", params=SPLICE_MODES)
def proxy(request, module_origin: Origin, module_proxy_factory) -> Portico:
    return module_proxy_factory(CONF, o=module_origin.url, splice=request.param)


def test_bodies_of_every_size_arrive_intact_on_one_connection(proxy, morigin):
    sizes = [0, 100, 8191, 8192, 8193, 16385, 300_000, 3 * MIB + 17]
    with RawConn(proxy.port, timeout=20) as conn:
        for n in sizes:
            resp = conn.request("GET", f"/big/{n}")
            assert resp.status == 200 and resp.complete, n
            assert resp.header("Content-Length") == str(n)
            assert resp.body == pattern(n), n
        # Two pipelined requests: the second answer starts right after the spliced body.
        conn.send(request_bytes("GET", f"/big/{MIB + 1}") + request_bytes("GET", "/echo/after"))
        first = conn.read_final()
        second = conn.read_final()
    assert first.status == 200 and first.body == pattern(MIB + 1)
    assert second.status == 200 and b"/echo/after" in second.body
    conns = {r.conn_id for r in morigin.requests if r.target.startswith("/big/")}
    assert len(conns) == 1, "the backend connection should be reused after every body"


def test_head_of_a_large_resource_has_no_body(proxy, morigin):
    with RawConn(proxy.port) as conn:
        head = conn.request("HEAD", f"/big/{3 * MIB}")
        after = conn.request("GET", "/echo/after-head")
    assert head.status == 200 and head.body == b""
    assert head.header("Content-Length") == str(3 * MIB)
    assert after.status == 200 and b"/echo/after-head" in after.body


def test_access_log_counts_every_spliced_byte(proxy, morigin):
    n = 2 * MIB + 3
    with RawConn(proxy.port, timeout=20) as conn:
        resp = conn.request("GET", f"/big/{n}")
    assert resp.body == pattern(n)
    text = proxy.wait_for_log("access_log", f"/big/{n} ")
    fields = next(ln for ln in text.splitlines() if ln.startswith(f"/big/{n} ")).split()
    assert fields[1:3] == ["200", str(n)]
    assert int(fields[3]) > n   # %O: the head and the body as sent


def test_backend_closing_mid_body_truncates_the_response(proxy, morigin):
    with RawConn(proxy.port, timeout=10) as conn:
        resp = conn.request("GET", f"/big/{MIB}?cut=400000")
    assert resp.status == 200
    assert not resp.complete, "a body cut short must never look complete"
    assert 0 < len(resp.body) <= 400_000 and resp.body == pattern(MIB)[:len(resp.body)]
    with RawConn(proxy.port) as conn:
        assert conn.request("GET", "/echo/still-serving").status == 200


def test_backend_stalling_mid_body_is_cut_after_its_timeout(proxy, morigin):
    start = time.monotonic()
    with RawConn(proxy.port, timeout=15) as conn:
        resp = conn.request("GET", f"/big/{MIB}?cut=300000&stall=1")
    took = time.monotonic() - start
    assert not resp.complete
    assert resp.body == pattern(MIB)[:len(resp.body)]
    assert took < 12, f"ProxyTimeout 2 should cut the stalled body, took {took:.1f}s"


# -- what the proxy process holds (read from /proc) ------------------------------------------

def _fd_kinds(pid: int) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        kind = target.split(":", 1)[0] if ":" in target else "file"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _stalled_download(proxy: Portico, size: int) -> socket.socket:
    """A client that asks for ``size`` bytes and reads nothing yet."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(request_bytes("GET", f"/big/{size}"))
    return sock


def _read_all(sock: socket.socket, size: int) -> tuple[int, str]:
    h = hashlib.sha256()
    buf = b""
    while b"\r\n\r\n" not in buf:
        piece = sock.recv(65536)
        assert piece, "closed before the head"
        buf += piece
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    got = len(rest)
    h.update(rest)
    while got < size:
        piece = sock.recv(1 << 20)
        if not piece:
            break
        h.update(piece)
        got += len(piece)
    return got, h.hexdigest()


def _wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@portico_only
@pytest.mark.parametrize("splice", ["On", "Off"])
def test_a_slow_client_is_fed_through_a_kernel_pipe_only_with_splice_on(
        splice, proxy_factory, morigin):
    proxy = proxy_factory(CONF, o=morigin.url, splice=splice)
    with RawConn(proxy.port) as conn:
        assert conn.request("GET", "/echo/warm").status == 200
    before = _fd_kinds(proxy.pid)
    size = 64 * MIB
    sock = _stalled_download(proxy, size)
    try:
        # While the client reads nothing, a relay waits with a pipe of its own.
        piped = _wait_for(lambda: _fd_kinds(proxy.pid).get("pipe", 0) >= before.get("pipe", 0) + 2,
                          timeout=2.0)
        assert piped == (splice == "On")
        got, digest = _read_all(sock, size)
    finally:
        sock.close()
    assert got == size and digest == pattern_sha256(size)


@portico_only
def test_a_client_leaving_mid_body_leaves_no_descriptor_behind(proxy_factory, morigin):
    proxy = proxy_factory(CONF, o=morigin.url, splice="On")
    with RawConn(proxy.port) as conn:
        assert conn.request("GET", "/echo/warm").status == 200
    _wait_for(lambda: _fd_kinds(proxy.pid).get("socket", 0) <= 2)   # listener + pooled
    before = _fd_kinds(proxy.pid)
    sock = _stalled_download(proxy, 64 * MIB)
    assert _wait_for(lambda: _fd_kinds(proxy.pid).get("pipe", 0) > before.get("pipe", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()   # a reset in the middle of the body
    # The client's socket, the relay's duplicate of it and the backend connection (which
    # cannot be reused mid-body) all go; the relay's pipe goes back to the pool or closes.
    assert _wait_for(lambda: _fd_kinds(proxy.pid).get("socket", 0)
                     <= before.get("socket", 0) - 1), _fd_kinds(proxy.pid)
    with RawConn(proxy.port, timeout=10) as conn:
        resp = conn.request("GET", f"/big/{MIB}")
    assert resp.status == 200 and resp.body == pattern(MIB)
