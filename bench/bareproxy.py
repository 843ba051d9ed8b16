"""The floor under portico's cost: the least a uvloop + httptools reverse proxy can do.

One process, one origin, keep-alive both ways, a pool of idle origin connections, the
request head re-serialized with httptools' parsed headers and the response relayed as it
arrives. No routing, no header policy, no logs, no limits: it answers "how fast can Python
proxy at all here", so bench/run.py can report portico against it as well as against nginx.

    python bench/bareproxy.py LISTEN_PORT ORIGIN_PORT
"""

from __future__ import annotations

import asyncio
import socket
import sys

import httptools
import uvloop


class Upstream(asyncio.Protocol):
    """One pooled origin connection; relays the response of one request at a time."""

    def __init__(self, proxy: BareProxy) -> None:
        self.proxy = proxy
        self.client: Client | None = None
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.head: list[bytes] = []
        self.keep = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.keep = False
        if self.client is not None:
            self.client.transport.close()  # type: ignore[union-attr]
            self.client = None
        elif self in self.proxy.idle:
            self.proxy.idle.remove(self)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.head = [b"HTTP/1.1 200 OK\r\n"]

    def on_status(self, status: bytes) -> None:
        self.head[0] = b"HTTP/1.1 %d %s\r\n" % (self.parser.get_status_code(), status)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in (b"connection", b"keep-alive"):
            self.head.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        self.keep = self.parser.should_keep_alive()
        self.head.append(b"\r\n")
        self.client.transport.write(b"".join(self.head))  # type: ignore[union-attr]

    def on_body(self, body: bytes) -> None:
        self.client.transport.write(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        client, self.client = self.client, None
        if self.keep:
            self.proxy.idle.append(self)
        else:
            self.transport.close()  # type: ignore[union-attr]
        client.request_done()  # type: ignore[union-attr]


class Client(asyncio.Protocol):
    """One client connection; requests are served one at a time, in order."""

    def __init__(self, proxy: BareProxy) -> None:
        self.proxy = proxy
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: list[bytes] = []
        self.waiting: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()  # type: ignore[union-attr]

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() != b"connection":
            self.headers.append(b"%s: %s\r\n" % (name, value))

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        head = b"".join([method, b" ", self.url, b" HTTP/1.1\r\n", *self.headers, b"\r\n"])
        self.waiting.append(head)
        if len(self.waiting) == 1:
            self.proxy.send(self, head)

    def request_done(self) -> None:
        self.waiting.pop(0)
        if self.waiting:
            self.proxy.send(self, self.waiting[0])


class BareProxy:
    """The pool of idle origin connections and the way requests reach it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin_port: int) -> None:
        self.loop = loop
        self.origin_port = origin_port
        self.idle: list[Upstream] = []

    def send(self, client: Client, head: bytes) -> None:
        if self.idle:
            up = self.idle.pop()
            up.client = client
            up.transport.write(head)  # type: ignore[union-attr]
            return
        self.loop.create_task(self._connect(client, head))

    async def _connect(self, client: Client, head: bytes) -> None:
        _, up = await self.loop.create_connection(
            lambda: Upstream(self), "127.0.0.1", self.origin_port)
        up.client = client
        up.transport.write(head)  # type: ignore[union-attr]


async def main(listen_port: int, origin_port: int) -> None:
    loop = asyncio.get_running_loop()
    proxy = BareProxy(loop, origin_port)
    server = await loop.create_server(lambda: Client(proxy), "127.0.0.1", listen_port,
                                      backlog=511)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
