"""ProxyIOBufferSize / iobuffersize: the most one backend read takes while a head is expected
on a connection whose body may be spliced (schemes/http.py), over a real loopback socket."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from portico.proxy.pipeline import Pipeline, _BackendPlan
from portico.schemes.http import HttpBackend
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
