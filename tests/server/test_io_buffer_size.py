"""ProxyIOBufferSize / iobuffersize: the most one backend read takes while a head is expected
on a connection whose body may be spliced (schemes/http.py), over a real loopback socket."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from portico.proxy.pipeline import Pipeline, _BackendPlan
from portico.schemes.http import HttpBackend
from portico.server.front import FrontConnection
from portico.server.splice import SPLICE_AVAILABLE
from tests.config.conftest import load as load_fixture
from tests.config.conftest import write  # noqa: F401  (a fixture load_fixture needs)

load = load_fixture


def head_reads_on_a_real_socket(size: int) -> int:
    """Connect an HttpBackend made with ``size`` to a loopback listener; its head view."""

    async def main() -> int:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_connection(
            lambda: HttpBackend(None, 8192, "isError", size), "127.0.0.1", port)  # type: ignore[arg-type]
        try:
            return len(proto.head_view)
        finally:
            transport.abort()
            server.close()
            await server.wait_closed()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(asyncio.wait_for(main(), 5))


@pytest.mark.skipif(not SPLICE_AVAILABLE, reason="os.splice is not available")
@pytest.mark.parametrize("size", [512, 8192, 65536])
def test_head_reads_take_at_most_the_io_buffer_size(size) -> None:
    assert head_reads_on_a_real_socket(size) == size


def test_worker_iobuffersize_overrides_proxyiobuffersize(load) -> None:
    config = load("""
        Listen 80
        ServerName t
        ProxyIOBufferSize 2048
        ProxyPass /a http://127.0.0.1:9/a
        ProxyPass /b http://127.0.0.1:9/b iobuffersize=16384
        ProxyPass /c http://127.0.0.1:9/c iobuffersize=10000000
    """)
    pipeline = Pipeline(config)
    settings = config.main.settings

    def plan_size(name: str) -> int:
        worker = pipeline.workers[name]
        return _BackendPlan(worker, settings, config.core).io_buffer_size

    assert plan_size("http://127.0.0.1:9/a") == 2048
    assert plan_size("http://127.0.0.1:9/b") == 16384
    assert plan_size("http://127.0.0.1:9/c") == 256 * 1024   # one read buffer at most


BODY = bytes(range(256)) * 1024   # 256 KiB


async def _origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request with BODY (Content-Length framing), on keep-alive."""
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY)
                         + BODY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass   # the proxy closed the connection
    finally:
        writer.close()


def backend_reads_for_one_response(load, size: int, monkeypatch) -> tuple[int, bytes]:
    """Proxy one 256 KiB response through a real Pipeline and FrontConnection (in this
    process, over loopback) with ``iobuffersize=size``; how many reads the backend's
    transport handed to HttpBackend, and the body the client got."""
    reads = 0
    counted = HttpBackend.buffer_updated

    def counting(self: HttpBackend, nbytes: int) -> None:
        nonlocal reads
        reads += 1
        counted(self, nbytes)

    monkeypatch.setattr(HttpBackend, "buffer_updated", counting)

    async def main() -> bytes:
        origin = await asyncio.start_server(_origin, "127.0.0.1", 0)
        port = origin.sockets[0].getsockname()[1]
        config = load(f"""
            Listen 80
            ServerName t
            ProxyPass / http://127.0.0.1:{port}/ iobuffersize={size}
        """)
        pipeline = Pipeline(config)
        loop = asyncio.get_running_loop()
        proxy = await loop.create_server(lambda: FrontConnection(pipeline), "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", proxy.sockets[0].getsockname()[1])
            writer.write(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            body = await reader.readexactly(len(BODY))
            writer.close()
            return body
        finally:
            proxy.close()
            origin.close()
            pipeline.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        body = runner.run(asyncio.wait_for(main(), 10))
    return reads, body


@pytest.mark.skipif(not SPLICE_AVAILABLE, reason="os.splice is not available")
@pytest.mark.parametrize("size", [1024, 8192, 65536])
def test_a_body_after_a_small_head_read_is_not_read_in_head_sized_pieces(
        load, size, monkeypatch) -> None:
    # The head read is small on purpose; the body after it is spliced (or, where it cannot
    # be, read in large pieces). It was once read in iobuffersize pieces whenever
    # iobuffersize was not 8192: 256 reads of 1 KiB for this body.
    reads, body = backend_reads_for_one_response(load, size, monkeypatch)
    assert body == BODY
    assert reads == 1


PAD = b"X-Pad: " + b"p" * 3000 + b"\r\n"   # a head of about 3 KiB


async def _origin_by_path(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """/big: BODY; /bighead: BODY behind a 3 KiB head; /small: 100 bytes; /medium: 6000
    bytes. Keep-alive."""
    try:
        while True:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1]
            body = {b"/small": b"s" * 100, b"/medium": b"m" * 6000}.get(path, BODY)
            pad = PAD if path == b"/bighead" else b""
            writer.write(b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n" % (pad, len(body))
                         + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.mark.skipif(not SPLICE_AVAILABLE, reason="os.splice is not available")
def test_heads_after_a_spliced_body_are_read_short_and_grow_when_they_do_not_fit(
        load, monkeypatch) -> None:
    """After a spliced body the next head is read 1 KiB at most (less of the next body is
    copied); a longer head costs one more read and doubles that size; a body read through
    Python brings iobuffersize reads back. Every response arrives whole."""
    sizes: list[int] = []
    counted = HttpBackend.buffer_updated

    def recording(self: HttpBackend, nbytes: int) -> None:
        sizes.append(len(self.read_view))
        counted(self, nbytes)

    monkeypatch.setattr(HttpBackend, "buffer_updated", recording)
    paths = [b"/big", b"/big", b"/bighead", b"/bighead", b"/bighead", b"/small", b"/medium",
             b"/small"]

    async def main() -> list[list[int]]:
        origin = await asyncio.start_server(_origin_by_path, "127.0.0.1", 0)
        port = origin.sockets[0].getsockname()[1]
        config = load(f"""
            Listen 80
            ServerName t
            ProxyPass / http://127.0.0.1:{port}/ max=1
        """)
        pipeline = Pipeline(config)
        loop = asyncio.get_running_loop()
        proxy = await loop.create_server(lambda: FrontConnection(pipeline), "127.0.0.1", 0)
        per_response = []
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", proxy.sockets[0].getsockname()[1])
            for path in paths:
                sizes.clear()
                writer.write(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path)
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 ")
                assert (b"X-Pad: " + b"p" * 3000 in head) == (path == b"/bighead")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                assert body == {b"/small": b"s" * 100, b"/medium": b"m" * 6000}.get(path, BODY)
                per_response.append(list(sizes))
            writer.close()
        finally:
            proxy.close()
            origin.close()
            pipeline.close()
        return per_response

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        per_response = runner.run(asyncio.wait_for(main(), 10))
    assert per_response == [
        [8192],           # the first head: an iobuffersize read
        [1024],           # after a spliced body: short
        [1024, 8192],     # a 3 KiB head does not fit: the rest in a full read
        [2048, 8192],     # doubled, still short of 3 KiB
        [4096],           # fits
        [4096],           # a small response, whole in the short read: nothing changes
        [4096, 262144],   # 6000 bytes: too short to splice, the rest read through Python...
        [8192],           # ...so heads are read iobuffersize at a time again
    ]
