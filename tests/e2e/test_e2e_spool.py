"""Spooled request bodies (§4.8): with ``proxy-sendcl`` or ``force-proxy-request-1.0`` a chunked
body is gathered whole, so it can go to the backend with a Content-Length. As in httpd, only
a small part stays in memory and the rest goes to an anonymous temporary file; the only bound
is LimitRequestBody.

Assertions are on what a real origin received over loopback (its Content-Length, its framing,
a sha256 of the body), on the client's response, and, for portico, on the process itself
(/proc: its peak memory, and the temporary files it holds open; it runs with ResourceWarning
shown, so a spool file left to the garbage collector instead of closed shows in its stderr).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portico.schemes.http import _SPOOL_KEEP
from tests.e2e.rawhttp import RawConn, request_bytes
from tests.support.origin import Origin, pattern, pattern_sha256
from tests.support.proxy import Portico, free_port, server_kind
from tests.support.rawbackend import RawBackend

HTTPD = server_kind() == "httpd"
portico_only = pytest.mark.skipif(HTTPD, reason="looks inside the portico process")

MIB = 1024 * 1024
LIMIT = MIB   # LimitRequestBody of /limited

CONF = r"""
ProxyPass /sendcl {{o}}/upload
ProxyPass /small {{o}}/echo
ProxyPass /limited {{o}}/upload
ProxyPass /http10 {{o}}/upload
ProxyPass /crlf {{o}}/upload
ProxyPass /nobackend http://127.0.0.1:{{closed}}/upload
ProxyPass /race/ {{b}}/race/
ProxyPass /ping http://localhost:{{oport}}/upload ping=5

<Location /sendcl>
    SetEnv proxy-sendcl 1
</Location>
<Location /small>
    SetEnv proxy-sendcl 1
</Location>
<Location /limited>
    SetEnv proxy-sendcl 1
    LimitRequestBody 1048576
</Location>
<Location /http10>
    SetEnv force-proxy-request-1.0 1
</Location>
<Location /crlf>
    SetEnv proxy-sendcl 1
    SetEnv proxy-sendextracrlf 1
</Location>
<Location /nobackend>
    SetEnv proxy-sendcl 1
</Location>
<Location /race/>
    SetEnv proxy-sendcl 1
</Location>
<Location /ping>
    SetEnv proxy-sendcl 1
</Location>
"""

CHUNKED = [("Transfer-Encoding", "chunked")]
# Chunk sizes cycled through a body: odd ones, so the part kept in memory ends inside a chunk.
SIZES = (65536, 1, 300_001, 4093, 250_000, 17)


class DiesOnReuse(RawBackend):
    """A keep-alive backend that reads each request whole (Content-Length bodies) and records
    it as (index on its connection, target, Content-Length, Transfer-Encoding, body bytes);
    a ``/dieonreuse`` request that is not the first on its connection gets no answer, the
    connection closes (a FIN: all was read). The keep-alive race, made deterministic.
    ``/early`` is answered as soon as its head is in; ``cut`` lists the targets whose body
    the connection closed in the middle of."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str, str | None, str | None, int]] = []
        self.cut: list[str] = []
        super().__init__()

    def serve(self, conn) -> None:
        buf = bytearray()
        index = 0
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            end = buf.index(b"\r\n\r\n")
            lines = buf[:end].decode("latin-1").split("\r\n")
            del buf[:end + 4]
            fields = {k.strip().lower(): v.strip()
                      for k, _, v in (line.partition(":") for line in lines[1:])}
            n = int(fields.get("content-length", "0"))
            target = lines[0].split(" ")[1]
            early = "/early" in target
            if early:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
            while len(buf) < n:
                data = conn.recv(65536)
                if not data:
                    self.cut.append(target)
                    return
                buf += data
            del buf[:n]
            index += 1
            self.seen.append((index, target, fields.get("content-length"),
                              fields.get("transfer-encoding"), n))
            if "/dieonreuse" in target and index > 1:
                return
            if not early:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


@pytest.fixture(scope="module")
def racer() -> Iterator[DiesOnReuse]:
    b = DiesOnReuse()
    yield b
    b.close()


@pytest.fixture(scope="module")
def proxy(module_origin: Origin, racer: DiesOnReuse, module_proxy_factory) -> Portico:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONWARNINGS", "always::ResourceWarning")
        # /ping names the origin as localhost: a worker of its own, with its own ping=
        # (a second rule for the same URL shares the first one's worker and parameters).
        return module_proxy_factory(CONF, o=module_origin.url, closed=free_port(),
                                    b=f"http://127.0.0.1:{racer.port}",
                                    oport=module_origin.port)


def framed(data: bytes, sizes: tuple[int, ...] = SIZES, group: int = MIB) -> Iterator[bytes]:
    """``data`` as chunks of the sizes in ``sizes`` (cycled), in pieces of about ``group``
    bytes to send (no last-chunk)."""
    view = memoryview(data)
    out: list[bytes] = []
    held = pos = i = 0
    while pos < len(data):
        piece = view[pos:pos + sizes[i % len(sizes)]]
        out += (b"%x\r\n" % len(piece), piece, b"\r\n")
        held += len(piece)
        pos += len(piece)
        i += 1
        if held >= group:
            yield b"".join(out)
            out, held = [], 0
    if out:
        yield b"".join(out)


def send_chunked(conn: RawConn, target: str, data: bytes, end: bool = True,
                 method: str = "POST") -> None:
    conn.send(request_bytes(method, target, CHUNKED))
    for piece in framed(data):
        conn.send(piece)
    if end:
        conn.send(b"0\r\n\r\n")


def peak_reset(proxy: Portico) -> None:
    """Start measuring the process's peak resident size (VmHWM) afresh."""
    Path(f"/proc/{proxy.pid}/clear_refs").write_text("5")


def peak_kib(proxy: Portico) -> int:
    for line in Path(f"/proc/{proxy.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM: process gone?")


def spool_files(proxy: Portico) -> list[str]:
    """The deleted files in the temp dir that the process holds open (spooled bodies)."""
    tmp = tempfile.gettempdir().rstrip("/") + "/"
    base = f"/proc/{proxy.pid}/fd"
    found = []
    for fd in os.listdir(base):
        try:
            target = os.readlink(f"{base}/{fd}")
        except FileNotFoundError:
            continue   # closed while we looked
        if target.startswith(tmp) and target.endswith(" (deleted)"):
            found.append(target)
    return found


def wait_spool_files(proxy: Portico, present: bool, timeout: float = 3.0) -> None:
    """Until the process holds a spool file open (or none); when none, also check that
    none was dropped without being closed (a ResourceWarning on stderr)."""
    deadline = time.monotonic() + timeout
    while bool(spool_files(proxy)) != present:
        if time.monotonic() > deadline:
            raise AssertionError(f"spool files {'never appeared' if present else 'left open'}:"
                                 f" {spool_files(proxy)}")
        time.sleep(0.01)  # a poll interval inside a deadline
    if not present:
        assert "ResourceWarning" not in proxy.stderr, proxy.stderr[-2000:]


def test_a_large_chunked_body_is_spooled_and_sent_with_its_length(proxy, morigin):
    """40 MiB, far past what is kept in memory (and past the old 16 MiB cap, which
    answered 413): the origin gets a Content-Length, no chunks, the same bytes; portico's
    peak memory grows by a small part of it; the file is closed afterwards."""
    n = 40 * MIB
    data = pattern(n)
    if not HTTPD:
        peak_reset(proxy)
        before = peak_kib(proxy)
    # The origin waits before reading: the file must wait for the backend, not pile up in
    # the transport's buffer.
    with RawConn(proxy.port, timeout=20.0) as conn:
        send_chunked(conn, "/sendcl?pause_ms=300", data)
        resp = conn.read_final("POST")
    assert resp.status == 200, resp.body[:300]
    assert json.loads(resp.body) == {"length": n, "sha256": pattern_sha256(n)}
    (rec,) = morigin.wait_for_requests(1)
    assert rec.header("Content-Length") == str(n)
    assert rec.header("Transfer-Encoding") is None and not rec.chunked
    assert (rec.body_len, rec.body_sha256) == (n, pattern_sha256(n))
    if not HTTPD:
        grown = peak_kib(proxy) - before
        assert grown < 12 * 1024, f"peak memory grew by {grown} KiB for a {n >> 20} MiB body"
        wait_spool_files(proxy, present=False)


def test_with_ping_a_spooled_body_waits_for_the_backends_100(proxy, morigin):
    """ping=: the spooled head asks for a 100 Continue (as httpd's does, checked), and the
    body, memory part and file, follows the origin's 100. It once waited for a 100 it had
    not asked for: a 503 after ping= seconds."""
    n = 2 * MIB
    with RawConn(proxy.port, timeout=20.0) as conn:
        send_chunked(conn, "/ping", pattern(n))
        resp = conn.read_final("POST")
    assert resp.status == 200, resp.body[:300]
    assert json.loads(resp.body) == {"length": n, "sha256": pattern_sha256(n)}
    (rec,) = morigin.wait_for_requests(1)
    assert rec.header("Expect").lower() == "100-continue"
    assert rec.header("Content-Length") == str(n)


def test_a_small_chunked_body_goes_with_its_length(proxy, morigin):
    data = bytes(range(256)) * 12   # 3 KiB, all in memory
    with RawConn(proxy.port) as conn:
        send_chunked(conn, "/small", data)
        resp = conn.read_final("POST")
    assert resp.status == 200
    (rec,) = morigin.wait_for_requests(1)
    assert rec.header("Content-Length") == str(len(data))
    assert rec.header("Transfer-Encoding") is None and not rec.chunked
    assert rec.body == data


@pytest.mark.skipif(HTTPD, reason="httpd does not apply LimitRequestBody to proxied "
                                  "requests (docs/compat.md)")
def test_limit_request_body_refuses_a_spooled_body_and_nothing_reaches_the_origin(
        proxy, morigin):
    """A body one byte past LimitRequestBody (already partly in the file): 413, the
    connection closes, the origin sees nothing and the file is closed."""
    data = pattern(LIMIT + 1)
    with RawConn(proxy.port) as conn:
        # Nothing past the byte that crosses the limit: all of it is read before the 413.
        send_chunked(conn, "/limited", data, end=False)
        resp = conn.read_final("POST")
        assert resp.status == 413
        assert conn.closed_by_peer(3.0)
    assert morigin.raw_received() == b""
    assert morigin.connections_accepted == 0
    wait_spool_files(proxy, present=False)


def test_force_proxy_request_1_0_sends_a_spooled_body_as_http10_with_its_length(
        proxy, morigin):
    n = 3 * MIB + 12345
    with RawConn(proxy.port, timeout=10.0) as conn:
        send_chunked(conn, "/http10", pattern(n))
        resp = conn.read_final("POST")
    assert resp.status == 200
    assert json.loads(resp.body) == {"length": n, "sha256": pattern_sha256(n)}
    (rec,) = morigin.wait_for_requests(1)
    assert rec.version == "HTTP/1.0"
    assert rec.header("Content-Length") == str(n)
    assert rec.header("Transfer-Encoding") is None and not rec.chunked
    assert (rec.body_len, rec.body_sha256) == (n, pattern_sha256(n))


@pytest.mark.skipif(HTTPD, reason="httpd 2.4.71 sends the extra CRLF twice after a spooled "
                                  "body (checked)")
def test_the_extra_crlf_follows_a_spooled_body_not_counted(proxy, morigin):
    """proxy-sendextracrlf: the CRLF goes after the whole body (after the file's part, not
    after the part in memory) and is not in the Content-Length."""
    n = 2 * MIB + 3
    data = pattern(n)
    with RawConn(proxy.port, timeout=10.0) as conn:
        send_chunked(conn, "/crlf", data)
        resp = conn.read_final("POST")
    assert resp.status == 200
    (rec,) = morigin.wait_for_requests(1)
    assert rec.header("Content-Length") == str(n)
    assert (rec.body_len, rec.body_sha256) == (n, pattern_sha256(n))
    raw = morigin.raw_received()
    assert raw.endswith(data[-1000:] + b"\r\n"), raw[-40:]


@portico_only
def test_a_client_gone_mid_body_closes_the_spool_file(proxy, morigin):
    """The body passes what is kept in memory (a temporary file is open), then the client
    goes away: the file is closed and the origin sees nothing."""
    with RawConn(proxy.port) as conn:
        send_chunked(conn, "/sendcl", pattern(MIB), end=False)
        wait_spool_files(proxy, present=True)
    wait_spool_files(proxy, present=False)
    assert morigin.raw_received() == b""


@portico_only
def test_a_spooled_body_for_an_unreachable_backend_is_a_503_and_the_file_is_closed(
        proxy, morigin):
    with RawConn(proxy.port) as conn:
        send_chunked(conn, "/nobackend", pattern(MIB))
        assert conn.read_final("POST").status == 503
    wait_spool_files(proxy, present=False)


def race(proxy: Portico, racer: DiesOnReuse, data: bytes) -> tuple[int, list, int]:
    """Prime a pooled connection, then PUT ``data`` (chunked, spooled) so that it lands on it
    and the backend closes unanswered. Returns (status, requests seen as (on a reused
    connection?, target, Content-Length, Transfer-Encoding, body bytes), new connections)."""
    with RawConn(proxy.port) as conn:
        assert conn.request("GET", "/race/prime").status == 200
    seen_before, opened_before = len(racer.seen), racer.connections
    with RawConn(proxy.port, timeout=10.0) as conn:
        send_chunked(conn, "/race/dieonreuse", data, method="PUT")
        status = conn.read_final("PUT").status
    seen = [(index > 1, *rest) for index, *rest in racer.seen[seen_before:]]
    return status, seen, racer.connections - opened_before


@pytest.mark.skipif(HTTPD, reason="httpd answers 502 and never retries (docs/compat.md)")
def test_a_small_spooled_body_is_retried_on_a_fresh_connection(proxy, racer):
    """Within what is kept for a retry (64 KiB): sent again, whole and with its length, on
    a new connection after the pooled one died."""
    n = 5000
    status, seen, opened = race(proxy, racer, pattern(n))
    assert status == 200
    assert seen == [(True, "/race/dieonreuse", str(n), None, n),
                    (False, "/race/dieonreuse", str(n), None, n)]
    assert opened == 1


@pytest.mark.skipif(HTTPD, reason="httpd answers 502 and never retries (docs/compat.md)")
def test_a_spooled_body_past_the_retry_limit_is_not_retried(proxy, racer):
    """Partly in a temporary file, far past what is kept for a retry: the pooled connection
    dying is a 502, with no second try (and the file is closed)."""
    n = MIB
    status, seen, opened = race(proxy, racer, pattern(n))
    assert status == 502
    assert seen == [(True, "/race/dieonreuse", str(n), None, n)]
    assert opened == 0
    wait_spool_files(proxy, present=False)


@portico_only
def test_an_answer_before_the_whole_spooled_body_went_closes_the_connection(proxy, racer):
    """The backend answers as soon as it has the head: the rest of the file is not sent,
    and the connection, which holds a partial request, is closed rather than pooled (pooled,
    the backend would wait for the rest of the body and never see a close)."""
    with RawConn(proxy.port, timeout=10.0) as conn:
        send_chunked(conn, "/race/early", pattern(16 * MIB))
        resp = conn.read_final("POST")
    assert (resp.status, resp.body) == (200, b"early")
    deadline = time.monotonic() + 3.0
    while "/race/early" not in racer.cut:
        assert time.monotonic() < deadline, "the connection with a partial body stayed open"
        time.sleep(0.01)  # a poll interval inside a deadline
    wait_spool_files(proxy, present=False)


STALL_CONF = r"""
ProxyTimeout 1
ProxyPass /stall {{o}}/upload
<Location /stall>
    SetEnv proxy-sendcl 1
</Location>
"""


@portico_only
def test_a_backend_that_takes_none_of_the_body_times_out_and_the_file_is_closed(
        morigin, proxy_factory, monkeypatch):
    """The origin reads nothing for 3 s; the body is larger than the socket buffers hold,
    so sending it waits on the backend: ProxyTimeout 1 gives a 502 after about 1 s."""
    monkeypatch.setenv("PYTHONWARNINGS", "always::ResourceWarning")
    proxy = proxy_factory(STALL_CONF, o=morigin.url)
    started = time.monotonic()
    with RawConn(proxy.port, timeout=10.0) as conn:
        send_chunked(conn, "/stall?pause_ms=3000", pattern(24 * MIB))
        assert conn.read_final("POST").status == 502
    assert time.monotonic() - started < 2.5
    wait_spool_files(proxy, present=False)
    assert "for 1s" in proxy.wait_for_log("error_log", "POST /stall")


class _SmallFiles(Portico):
    """portico with RLIMIT_FSIZE at 1 MiB: a spool file past it fails to write (EFBIG, as
    on a full disk; Python ignores SIGXFSZ)."""

    @classmethod
    def command(cls, conf: Path, workdir: Path, *args: str) -> list[str]:
        limit = ("import os, resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, "
                 "(1 << 20, 1 << 20)); os.execv(sys.argv[1], sys.argv[1:])")
        return [sys.executable, "-c", limit, *super().command(conf, workdir, *args)]


@portico_only
def test_a_spool_file_that_cannot_be_written_is_a_500(module_origin, tmp_path, monkeypatch):
    """The file takes 1 MiB and one byte more: the client gets a 500 (our failure), the
    error log says why, nothing reaches the origin and the file is closed."""
    module_origin.reset()
    monkeypatch.setenv("PYTHONWARNINGS", "always::ResourceWarning")
    proxy = _SmallFiles.start(CONF, tmp_path, o=module_origin.url, b="http://127.0.0.1:9",
                              closed=free_port(), oport=module_origin.port)
    try:
        # Past the limit only with its last byte: all of it is read before the 500.
        data = pattern(_SPOOL_KEEP + MIB + 1)
        with RawConn(proxy.port) as conn:
            send_chunked(conn, "/sendcl", data)
            resp = conn.read_final("POST")
            assert resp.status == 500
            assert conn.closed_by_peer(3.0)
        text = proxy.wait_for_log("error_log", "cannot be spooled to a temporary file")
        assert "File too large" in text
        assert module_origin.raw_received() == b""
        wait_spool_files(proxy, present=False)
    finally:
        proxy.stop()

