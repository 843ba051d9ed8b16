"""Unit tests of the zero-copy body relay (portico/server/splice.py).

Every test moves bytes over real loopback TCP connections on a uvloop loop. A relay sits
between two accepted-style socket pairs: ``src`` (its end of the "backend" connection, whose
peer plays the backend) and ``dst`` (its end of the "client" connection, whose peer plays the
client). The relay's own ends are non-blocking, as they are when transports own them.

What is checked is what the proxy relies on: exactly ``length`` bytes arrive intact and in
order, bytes past ``length`` stay in the source socket (keep-alive), exactly one of
``on_done``/``on_fail`` is called with the right side and count, ``waiting_for_client`` tells
a slow client from a slow backend, and a cancelled relay calls nothing and leaks no
descriptor. Every wait is bounded by ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import ssl
import stat
import struct
import termios
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import pytest
import trustme
import uvloop

from portico.server import splice
from portico.server.splice import SPLICE_AVAILABLE, SpliceRelay, splice_fd

pytestmark = pytest.mark.skipif(not SPLICE_AVAILABLE, reason="os.splice is not available")

T = TypeVar("T")
TIMEOUT = 4.0          # bound of any single wait in these tests
TEST_TIMEOUT = 8.0     # bound of a whole test body
MIB = 1 << 20


# -- helpers --------------------------------------------------------------------------------
def pattern(n: int, offset: int = 0) -> bytes:
    """``n`` bytes of a position-dependent pattern (a shifted or dropped byte shows)."""
    block = bytes((i * 7 + i // 251) % 256 for i in range(offset, offset + 65536))
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run one test body on a fresh uvloop loop, bounded in time."""

    async def bounded() -> T:
        return await asyncio.wait_for(main(), TEST_TIMEOUT)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(bounded())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def drain_pipe_pool() -> None:
    while splice._idle_pipes:
        r, w, _ = splice._idle_pipes.pop()
        os.close(r)
        os.close(w)


def queued(sock: socket.socket) -> int:
    """Bytes waiting in a socket's receive queue (SIOCINQ)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


async def until(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``predicate`` on the loop until it holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


async def recv_exactly(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    buf = bytearray()
    while len(buf) < n:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, min(n - len(buf), 1 << 18)), TIMEOUT)
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


async def recv_to_eof(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    buf = bytearray()
    while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 18), TIMEOUT):
        buf += chunk
    return bytes(buf)


class Calls:
    """The three callbacks of a relay, recorded, with futures for the final outcome."""

    def __init__(self) -> None:
        self.done: list[int] = []
        self.failed: list[tuple[str, str, int]] = []
        self.wait_overs = 0
        self.outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_done(self, moved: int) -> None:
        self.done.append(moved)
        if not self.outcome.done():
            self.outcome.set_result(None)

    def on_fail(self, side: str, message: str, moved: int) -> None:
        self.failed.append((side, message, moved))
        if not self.outcome.done():
            self.outcome.set_result(None)

    def on_wait_over(self) -> None:
        self.wait_overs += 1

    def relay(self, src: socket.socket, dst: socket.socket, length: int) -> SpliceRelay:
        return SpliceRelay(asyncio.get_running_loop(), src.fileno(), dst.fileno(), length,
                           self.on_done, self.on_fail, self.on_wait_over)

    async def finished(self) -> None:
        await asyncio.wait_for(asyncio.shield(self.outcome), TIMEOUT)

    def total(self) -> int:
        return len(self.done) + len(self.failed)


TcpPair = Callable[..., tuple[socket.socket, socket.socket]]


@pytest.fixture
def tcp_pair() -> Iterator[TcpPair]:
    """A factory of loopback TCP connections ``(near, peer)``; all are closed afterwards.

    ``near`` is the relay's end, ``peer`` the other. ``peer_rcvbuf`` is set on the listening
    socket so the accepted peer inherits it before the handshake (the window it advertises
    stays small); ``near_sndbuf`` shrinks the relay's send buffer.
    """
    opened: list[socket.socket] = []

    def make(peer_rcvbuf: int | None = None,
             near_sndbuf: int | None = None) -> tuple[socket.socket, socket.socket]:
        with socket.create_server(("127.0.0.1", 0)) as server:
            if peer_rcvbuf is not None:
                server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, peer_rcvbuf)
            near = socket.create_connection(server.getsockname()[:2], timeout=TIMEOUT)
            opened.append(near)
            peer, _ = server.accept()
            opened.append(peer)
        if near_sndbuf is not None:
            near.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, near_sndbuf)
        near.setblocking(False)
        peer.setblocking(False)
        return near, peer

    yield make
    for sock in opened:
        if sock.fileno() >= 0:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


@pytest.fixture(autouse=True)
def empty_pipe_pool() -> Iterator[None]:
    """Each test starts and ends with no pooled pipes, so descriptor counts are exact."""
    drain_pipe_pool()
    yield
    drain_pipe_pool()


# -- the common case: everything is there ----------------------------------------------------
def test_relay_done_inside_start_and_leaves_the_next_bytes_in_the_source(tcp_pair: TcpPair):
    length = 40_000
    body = pattern(length)
    following = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnext!" + pattern(3000, 99)

    async def main() -> None:
        src, src_peer = tcp_pair()
        dst, dst_peer = tcp_pair()
        src_peer.sendall(body + following)
        await until(lambda: queued(src) == length + len(following), "the source to hold it all")
        calls = Calls()
        fds = open_fds()

        relay = calls.relay(src, dst, length)
        relay.start()
        # Done synchronously: no loop turn happened between start() and here.
        assert calls.done == [length]
        assert calls.failed == []
        assert calls.wait_overs == 0
        assert relay.moved == length
        assert not relay.waiting_for_client
        # No duplicate left open; the (empty) pipe went back to the pool.
        assert len(splice._idle_pipes) == 1
        assert open_fds() == fds + 2

        assert await recv_exactly(dst_peer, length) == body
        await asyncio.sleep(0.05)
        assert queued(dst_peer) == 0, "the relay sent more than length bytes"
        # What follows the body is still in the backend's socket, byte for byte.
        assert await recv_exactly(src, len(following)) == following
        assert calls.total() == 1

    run(main)


# -- a prefix (the response head) rides in the pipe ahead of the body -----------------------
def test_a_prefix_goes_out_first_and_is_not_counted_as_body(tcp_pair: TcpPair):
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 30000\r\n\r\n" + pattern(5000, 7)
    body = pattern(25_000, 3)

    async def main() -> None:
        src, src_peer = tcp_pair()
        dst, dst_peer = tcp_pair()
        src_peer.sendall(body)
        await until(lambda: queued(src) == len(body), "the body")
        calls = Calls()
        relay = calls.relay(src, dst, len(body))
        assert relay.start(head) is True
        assert calls.done == [len(body)]   # body bytes only: the prefix is the caller's
        assert await recv_exactly(dst_peer, len(head) + len(body)) == head + body

    run(main)


def test_a_prefix_is_sent_before_the_relay_waits_for_the_body(tcp_pair: TcpPair):
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n"
    body = pattern(20_000, 5)

    async def main() -> None:
        src, src_peer = tcp_pair()
        dst, dst_peer = tcp_pair()
        calls = Calls()
        relay = calls.relay(src, dst, len(body))
        assert relay.start(head) is True
        assert calls.total() == 0   # nothing of the body yet: it waits for the backend
        # The client has the head already; it does not wait for the body to start.
        assert await recv_exactly(dst_peer, len(head)) == head
        src_peer.sendall(body)
        await calls.finished()
        assert calls.done == [len(body)]
        assert await recv_exactly(dst_peer, len(body)) == body

    run(main)


def test_a_prefix_larger_than_the_pipe_is_refused_untouched(tcp_pair: TcpPair):
    async def main() -> None:
        src, src_peer = tcp_pair()
        dst, _ = tcp_pair()
        src_peer.sendall(pattern(10_000))
        await until(lambda: queued(src) == 10_000, "the body")
        calls = Calls()
        relay = calls.relay(src, dst, 10_000)
        fds = open_fds()
        assert relay.start(b"h" * (splice._PIPE_SIZE + 1)) is False
        assert calls.total() == 0
        assert queued(src) == 10_000   # nothing read
        # The pipe it tried went back to the pool, empty; nothing else was opened.
        assert len(splice._idle_pipes) == 1
        assert open_fds() == fds + 2

    run(main)


def test_a_pooled_pipe_is_reused_by_the_next_relay(tcp_pair: TcpPair):
    async def main() -> None:
        src, src_peer = tcp_pair()
        dst, dst_peer = tcp_pair()
        received = b""
        for i in range(3):
            body = pattern(20_000, i)
            src_peer.sendall(body)
            await until(lambda: queued(src) == 20_000, "the body")
            calls = Calls()
            calls.relay(src, dst, len(body)).start()
            assert calls.done == [len(body)]
            assert len(splice._idle_pipes) == 1
            received += await recv_exactly(dst_peer, len(body))
        assert received == pattern(20_000, 0) + pattern(20_000, 1) + pattern(20_000, 2)

    run(main)


# -- waiting for the backend ----------------------------------------------------------------
def test_source_arriving_in_pieces_is_waited_for(tcp_pair: TcpPair):
    length = 150_000
    body = pattern(length)
    pieces = [body[i:i + 30_000] for i in range(0, length, 30_000)]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        src, src_peer = tcp_pair()
        dst, dst_peer = tcp_pair()
        calls = Calls()
        fds = open_fds()

        async def backend() -> None:
            for piece in pieces:
                await loop.sock_sendall(src_peer, piece)
                await asyncio.sleep(0.04)
            await loop.sock_sendall(src_peer, b"EXTRA")

        relay = calls.relay(src, dst, length)
        relay.start()
        assert calls.total() == 0, "finished with no source bytes at all"
        assert not relay.waiting_for_client   # waiting for the backend, not the client
        sender = asyncio.ensure_future(backend())
        received = await recv_exactly(dst_peer, length)
        await calls.finished()
        await asyncio.wait_for(sender, TIMEOUT)

        assert received == body
        assert calls.done == [length]
        assert calls.failed == []
        assert calls.wait_overs >= 1
        assert relay.moved == length
        assert not relay.waiting_for_client
        await until(lambda: queued(src) == 5, "the bytes after the body")
        assert src.recv(100) == b"EXTRA"
        assert open_fds() == fds + 2 * len(splice._idle_pipes)
        await asyncio.sleep(0.05)
        assert calls.total() == 1

    run(main)


def test_waiting_for_the_backend_acknowledges_at_once(tcp_pair: TcpPair):
    """Before waiting for more of the body the relay takes the source out of delayed-ACK
    mode, so a backend waiting for that ACK is not held up ~40 ms (module docstring)."""
    length = 100_000
    body = pattern(length)

    def quick(sock: socket.socket) -> int:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        src, src_peer = tcp_pair()
        dst, dst_peer = tcp_pair()
        src.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)   # delayed ACKs, as
        assert quick(src) == 0                                       # on a busy connection
        calls = Calls()
        await loop.sock_sendall(src_peer, body[:30_000])
        await until(lambda: queued(src) == 30_000, "the first part")
        relay = calls.relay(src, dst, length)
        relay.start()
        assert calls.total() == 0 and not relay.waiting_for_client   # waits for the backend
        assert quick(src) == 1
        await loop.sock_sendall(src_peer, body[30_000:])
        received = await recv_exactly(dst_peer, length)
        await calls.finished()
        assert received == body and calls.done == [length]

    run(main)


@pytest.mark.parametrize("when", ["before start", "while the relay waits"])
def test_source_closing_early_fails_on_the_backend_side(tcp_pair: TcpPair, when: str):
    length = 50_000
    sent = 12_345
    body = pattern(sent)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        src, src_peer = tcp_pair()
        dst, dst_peer = tcp_pair()
        calls = Calls()
        fds = open_fds()
        src_peer.sendall(body)
        if when == "before start":
            src_peer.shutdown(socket.SHUT_WR)
            await until(lambda: queued(src) == sent, "the partial body")
        else:
            loop.call_later(0.05, src_peer.shutdown, socket.SHUT_WR)

        relay = calls.relay(src, dst, length)
        relay.start()
        await calls.finished()

        assert calls.done == []
        assert len(calls.failed) == 1
        side, message, moved = calls.failed[0]
        assert side == "backend"
        assert moved == sent
        assert relay.moved == sent
        assert f"{length - sent} bytes missing" in message
        if when != "before start":
            assert calls.wait_overs >= 1
        # Exactly what the backend sent reached the client, and nothing else.
        dst.shutdown(socket.SHUT_WR)
        assert await recv_to_eof(dst_peer) == body
        # A failed relay closes its pipe and its duplicates.
        assert splice._idle_pipes == []
        assert open_fds() == fds
        await asyncio.sleep(0.05)
        assert calls.total() == 1

    run(main)


def test_source_reset_while_waiting_fails_on_the_backend_side(tcp_pair: TcpPair):
    length = 50_000
    sent = 20_000
    body = pattern(sent)

    async def main() -> None:
        src, src_peer = tcp_pair()
        dst, dst_peer = tcp_pair()
        calls = Calls()
        fds = open_fds()
        src_peer.sendall(body)
        await until(lambda: queued(src) == sent, "the partial body")
        relay = calls.relay(src, dst, length)
        relay.start()
        assert relay.moved == sent
        assert calls.total() == 0
        src_peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        src_peer.close()   # an RST
        await calls.finished()

        assert calls.done == []
        assert len(calls.failed) == 1
        side, message, moved = calls.failed[0]
        assert side == "backend"
        assert moved == sent
        assert message.startswith("reading the body failed")
        assert calls.wait_overs >= 1
        assert await recv_exactly(dst_peer, sent) == body
        assert open_fds() == fds - 1   # the backend's end was closed by the test

    run(main)


# -- waiting for the client -----------------------------------------------------------------
@dataclass
class ClientStall:
    relay: SpliceRelay
    calls: Calls
    client: socket.socket        # the client's end (``dst_peer``)
    sender: asyncio.Task[None]   # the backend, sending the whole body at once
    fds: int                     # descriptors open before the relay started


@contextlib.asynccontextmanager
async def stalled_on_the_client(tcp_pair: TcpPair, body: bytes) -> AsyncIterator[ClientStall]:
    """A relay of ``body`` to a client that reads nothing yet (a small window and send
    buffer), entered once the relay waits for the client; the sender is cancelled on exit."""
    loop = asyncio.get_running_loop()
    src, src_peer = tcp_pair()
    dst, dst_peer = tcp_pair(peer_rcvbuf=8192, near_sndbuf=8192)
    calls = Calls()
    fds = open_fds()
    sender = asyncio.ensure_future(loop.sock_sendall(src_peer, body))
    try:
        relay = calls.relay(src, dst, len(body))
        relay.start()
        await until(lambda: relay.waiting_for_client, "the relay to wait for the client")
        yield ClientStall(relay, calls, dst_peer, sender, fds)
    finally:
        sender.cancel()


def test_slow_client_sets_waiting_for_client_then_all_arrives(tcp_pair: TcpPair):
    length = 4 * MIB
    body = pattern(length)

    async def main() -> None:
        async with stalled_on_the_client(tcp_pair, body) as stall:
            relay, calls = stall.relay, stall.calls
            # The client still reads nothing: once the send queue has settled (the last ACKs
            # can free a little room), the relay stays stalled on the client's side.
            await asyncio.sleep(0.1)
            moved_at_stall = relay.moved
            await asyncio.sleep(0.1)
            assert relay.waiting_for_client
            assert calls.total() == 0
            assert relay.moved == moved_at_stall
            assert 0 < relay.moved < length

            received = await recv_exactly(stall.client, length)
            await calls.finished()
            await asyncio.wait_for(stall.sender, TIMEOUT)

        assert len(received) == length
        assert received == body
        assert calls.done == [length]
        assert calls.failed == []
        assert calls.wait_overs >= 1
        assert not relay.waiting_for_client
        assert open_fds() == stall.fds + 2 * len(splice._idle_pipes)

    run(main)


def test_client_reset_while_waiting_for_it_fails_on_the_client_side(tcp_pair: TcpPair):
    length = 4 * MIB
    body = pattern(length)

    async def main() -> None:
        async with stalled_on_the_client(tcp_pair, body) as stall:
            relay, calls = stall.relay, stall.calls
            assert calls.total() == 0
            stall.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
            stall.client.close()   # an RST, not a FIN
            await calls.finished()

        assert calls.done == []
        assert len(calls.failed) == 1
        side, message, moved = calls.failed[0]
        assert side == "client"
        assert message.startswith("writing to the client failed")
        assert moved == relay.moved
        assert moved < length
        assert calls.wait_overs >= 1
        assert not relay.waiting_for_client
        assert splice._idle_pipes == []   # the pipe held bytes for nobody: closed
        assert open_fds() == stall.fds - 1   # the client's end was closed by the test
        await asyncio.sleep(0.05)
        assert calls.total() == 1

    run(main)


def test_a_descriptor_number_reused_while_waiting_never_gets_the_body(tcp_pair: TcpPair):
    """A transport closes its descriptor as soon as its peer resets; the number can go to
    the next accepted connection before the exchange hears of it. A relay that waits works
    on its own duplicates, so the body still goes to the connection it was started for."""
    length = 40_000
    early = pattern(10_000)
    late = pattern(length - len(early), len(early))

    async def main() -> None:
        src, src_peer = tcp_pair()
        dst, dst_peer = tcp_pair()
        calls = Calls()
        src_peer.sendall(early)
        await until(lambda: queued(src) == len(early), "the first part")
        relay = calls.relay(src, dst, length)
        relay.start()
        assert calls.total() == 0   # waiting for the rest of the body
        number = dst.fileno()
        dst.close()                 # the client's transport lets go of its descriptor
        newcomer, newcomer_peer = tcp_pair()
        if newcomer.fileno() != number:   # make the new connection take the freed number
            os.dup2(newcomer.fileno(), number)
            newcomer.close()
            newcomer = socket.socket(fileno=number)
        assert newcomer.fileno() == number
        src_peer.sendall(late)
        await calls.finished()
        assert calls.done == [length]
        assert await recv_exactly(dst_peer, length) == early + late
        await asyncio.sleep(0.05)
        with pytest.raises(BlockingIOError):
            newcomer_peer.recv(1)   # not one byte reached the connection behind the number
        newcomer.close()

    run(main)


# -- cancel ---------------------------------------------------------------------------------
def test_cancel_while_waiting_for_the_backend_calls_nothing_and_leaks_nothing(
        tcp_pair: TcpPair):
    length = 30_000
    early = pattern(10_000)
    late = pattern(length - len(early), len(early))

    async def main() -> None:
        src, src_peer = tcp_pair()
        dst, dst_peer = tcp_pair()
        calls = Calls()
        fds = open_fds()
        src_peer.sendall(early)
        await until(lambda: queued(src) == len(early), "the first part")

        relay = calls.relay(src, dst, length)
        relay.start()
        assert relay.moved == len(early)
        assert not relay.waiting_for_client
        assert open_fds() == fds + 4   # the pipe and duplicates of both descriptors
        relay.cancel()
        assert open_fds() == fds + 2 * len(splice._idle_pipes)
        assert len(splice._idle_pipes) == 1   # it was empty, so it is kept
        wait_overs = calls.wait_overs

        # The source becomes readable: a watcher left behind would fire now.
        src_peer.sendall(late)
        await asyncio.sleep(0.2)
        assert calls.total() == 0
        assert calls.wait_overs == wait_overs
        assert relay.moved == len(early)
        # The relay no longer reads: the rest is in the backend's socket, untouched.
        assert await recv_exactly(src, len(late)) == late
        assert await recv_exactly(dst_peer, len(early)) == early
        relay.cancel()   # a second cancel is harmless
        assert open_fds() == fds + 2

    run(main)


def test_cancel_while_waiting_for_the_client_calls_nothing_and_leaks_nothing(
        tcp_pair: TcpPair):
    length = 4 * MIB
    body = pattern(length)

    async def main() -> None:
        async with stalled_on_the_client(tcp_pair, body) as stall:
            relay, calls = stall.relay, stall.calls
            relay.cancel()
            assert not relay.waiting_for_client
            moved = relay.moved
            wait_overs = calls.wait_overs
            assert splice._idle_pipes == []   # it still held bytes: closed, not pooled
            assert open_fds() == stall.fds

            # The client drains its socket: a writer left behind would fire now.
            got = await recv_exactly(stall.client, moved)
            await asyncio.sleep(0.2)
            assert got == body[:moved]
            assert calls.total() == 0
            assert calls.wait_overs == wait_overs
            assert relay.moved == moved
            assert queued(stall.client) == 0
        assert open_fds() == stall.fds

    run(main)


# -- splice_fd ------------------------------------------------------------------------------
class Peer(asyncio.Protocol):
    def __init__(self) -> None:
        self.made: asyncio.Future[asyncio.BaseTransport] = (
            asyncio.get_running_loop().create_future())
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.set_result(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


def test_splice_fd_of_a_plain_tcp_transport_is_its_socket():
    async def main() -> None:
        loop = asyncio.get_running_loop()
        accepted: list[Peer] = []

        def factory() -> Peer:
            accepted.append(Peer())
            return accepted[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = Peer()
        transport, _ = await asyncio.wait_for(
            loop.create_connection(lambda: client, "127.0.0.1", port), TIMEOUT)
        try:
            server_side = await asyncio.wait_for(_first_made(accepted), TIMEOUT)
            for t in (transport, server_side):
                fd = splice_fd(t)
                assert fd >= 0
                assert fd == t.get_extra_info("socket").fileno()
                assert stat.S_ISSOCK(os.fstat(fd).st_mode)   # a live socket
            assert splice_fd(transport) != splice_fd(server_side)
        finally:
            transport.close()
            await asyncio.wait_for(client.lost, TIMEOUT)
            server.close()
            await asyncio.wait_for(server.wait_closed(), TIMEOUT)

    run(main)


async def _first_made(accepted: list[Peer]) -> asyncio.BaseTransport:
    await until(lambda: bool(accepted), "the accept")
    return await accepted[0].made


def test_splice_fd_of_a_tls_transport_is_minus_one():
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        accepted: list[Peer] = []

        def factory() -> Peer:
            accepted.append(Peer())
            return accepted[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        client = Peer()
        transport, _ = await asyncio.wait_for(
            loop.create_connection(lambda: client, "127.0.0.1", port, ssl=client_ctx,
                                   server_hostname="localhost"), TIMEOUT)
        try:
            server_side = await asyncio.wait_for(_first_made(accepted), TIMEOUT)
            for t in (transport, server_side):
                assert t.get_extra_info("ssl_object") is not None
                assert splice_fd(t) == -1
        finally:
            transport.close()
            await asyncio.wait_for(client.lost, TIMEOUT)
            server.close()
            await asyncio.wait_for(server.wait_closed(), TIMEOUT)

    run(main)
