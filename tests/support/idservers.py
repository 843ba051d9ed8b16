"""Tiny origin servers that answer with their own id, for load-balancer tests.

`IdServers(ids)` runs one HTTP/1.1 server per id on 127.0.0.1, all on one asyncio loop in a
background thread, so sync tests can start them, send requests through the proxy and read
which member answered. Every answer is::

    HTTP/1.1 <status> <reason>\\r\\nX-Member: <id>\\r\\nContent-Length: <size>\\r\\n\\r\\n<body>

where the body is the id repeated to ``size`` bytes (the shape the recorded httpd sequences
used, so a proxy's byte counters see the same numbers). Keep-alive is honoured; request bodies
are read by Content-Length (chunked request bodies are not supported: these servers only see
GETs). Each member can be changed mid-test:

* `stop(id)`  closes the listener and every open connection: new connections are refused;
* `start(id)` listens again on the same port;
* `set_delay(id, s)` waits ``s`` seconds before each answer (a slow member);
* `set_status(id, code)` answers with ``code`` instead of 200;
* `set_close(id, True)` accepts connections and closes them without reading or answering.

A member made with ``dead=True`` owns a port on which nothing ever listened (a refusing
address from the start). Every request is recorded as a `Hit`, in arrival order.
"""

from __future__ import annotations

__all__ = ["Hit", "IdServers", "MemberServer", "wait_until"]

import asyncio
import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
_CALL_TIMEOUT = 10.0
_MAX_HEAD = 64 * 1024
_REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True)
class Hit:
    """One request a member received: which member, the raw target, the exact number of
    bytes of the request head (request line through the blank line) and its headers."""

    member: str
    target: str
    head_bytes: int
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)


@dataclass
class MemberServer:
    """One member's settings and live state; changed only through `IdServers` methods."""

    ident: str
    port: int
    size: int = 2
    delay: float = 0.0
    status: int = 200
    close: bool = False
    dead: bool = False
    server: asyncio.AbstractServer | None = None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    inflight: int = 0
    max_inflight: int = 0
    accepted: int = 0
    # A dead member's port stays bound (not listening) so connects are refused and no other
    # socket of the test run (bind to port 0) can be handed the same port meanwhile.
    reservation: socket.socket | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash, as BalancerMember wants)."""
        return f"http://127.0.0.1:{self.port}"


class IdServers:
    """N id-answering members on one background loop; use as a context manager.

    ``sizes`` gives body sizes per id (default 2); ids in ``dead`` never listen.
    """

    def __init__(self, ids: Sequence[str], *, sizes: dict[str, int] | None = None,
                 dead: Iterable[str] = ()) -> None:
        dead_set = set(dead)
        self.members: dict[str, MemberServer] = {}
        for ident in ids:
            reservation = _reserve_port() if ident in dead_set else None
            self.members[ident] = MemberServer(
                ident, reservation.getsockname()[1] if reservation is not None else 0,
                size=(sizes or {}).get(ident, 2), dead=ident in dead_set,
                reservation=reservation)
        self._hits: list[Hit] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="idservers")
        self._thread.start()
        try:
            for m in self.members.values():
                if not m.dead:
                    self._call(self._listen(m))
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ public API
    def url(self, ident: str) -> str:
        """The member's base URL."""
        return self.members[ident].url

    def port(self, ident: str) -> int:
        """The member's port (stable across `stop`/`start`)."""
        return self.members[ident].port

    @property
    def hits(self) -> list[Hit]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._hits)

    def counts(self) -> Counter[str]:
        """Requests received per member id."""
        return Counter(h.member for h in self.hits)

    def reset(self) -> None:
        """Forget the recorded hits and the in-flight maxima."""
        with self._lock:
            self._hits.clear()
            for m in self.members.values():
                m.max_inflight = m.inflight

    def max_inflight(self, ident: str) -> int:
        """The most requests member ``ident`` had in progress at once."""
        return self.members[ident].max_inflight

    def stop(self, ident: str) -> None:
        """Stop listening and drop every open connection: connects are refused from now."""
        self._call(self._stop(self.members[ident]))

    def start(self, ident: str) -> None:
        """Listen again on the member's port (after `stop`, or for a ``dead`` member)."""
        m = self.members[ident]
        m.dead = False
        _release(m)
        self._call(self._listen(m))

    def set_delay(self, ident: str, seconds: float) -> None:
        """Wait ``seconds`` before each answer from now on."""
        self.members[ident].delay = seconds

    def set_status(self, ident: str, status: int) -> None:
        """Answer with ``status`` from now on."""
        self.members[ident].status = status

    def set_close(self, ident: str, close: bool) -> None:
        """When True, accept connections and close them at once without answering."""
        self.members[ident].close = close

    def close(self) -> None:
        """Stop every member and the loop thread (idempotent)."""
        for m in self.members.values():
            _release(m)
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            for m in self.members.values():
                self._call(self._stop(m))
            self._call(self._cancel_handlers())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_CALL_TIMEOUT)
        self._loop.close()

    def __enter__(self) -> IdServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ loop side
    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_CALL_TIMEOUT)

    async def _listen(self, m: MemberServer) -> None:
        if m.server is not None:
            return
        m.server = await asyncio.start_server(
            lambda r, w: self._serve(m, r, w), "127.0.0.1", m.port or None,
            reuse_address=True)
        m.port = m.server.sockets[0].getsockname()[1]

    async def _stop(self, m: MemberServer) -> None:
        server, m.server = m.server, None
        if server is not None:
            server.close()
        for w in list(m.writers):
            w.close()
        m.writers.clear()
        if server is not None:
            # wait_closed() waits for handlers in 3.12+; the listener is gone either way.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def _cancel_handlers(self) -> None:
        """Cancel connection handlers still running (e.g. sleeping in a delay) and wait."""
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    async def _serve(self, m: MemberServer, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        m.accepted += 1
        if m.close:
            writer.close()
            return
        m.writers.add(writer)
        try:
            while await self._one(m, reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the proxy went away or the member was stopped: nothing to answer
        finally:
            m.writers.discard(writer)
            writer.close()

    async def _one(self, m: MemberServer, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> bool:
        """Serve one request; returns whether the connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return False  # a clean close between requests
        if len(head) > _MAX_HEAD:
            return False
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        target = parts[1] if len(parts) == 3 else ""
        headers = tuple((k, v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:]))
        hit = Hit(m.ident, target, len(head), headers)
        length = int(hit.header("Content-Length") or "0")
        if length:
            await reader.readexactly(length)
        m.inflight += 1
        m.max_inflight = max(m.max_inflight, m.inflight)
        try:
            with self._lock:
                self._hits.append(hit)
            if m.delay:
                await asyncio.sleep(m.delay)
            if m.close or m.server is None:
                return False  # changed while we waited: behave like the new setting
            body = (m.ident.encode() * (m.size // max(len(m.ident), 1) + 1))[:m.size]
            close = "close" in (hit.header("Connection") or "").lower()
            out = (f"HTTP/1.1 {m.status} {_REASONS.get(m.status, 'Whatever')}\r\n"
                   f"X-Member: {m.ident}\r\nContent-Length: {len(body)}\r\n"
                   + ("Connection: close\r\n" if close else "") + "\r\n")
            writer.write(out.encode("latin-1") + body)
            await writer.drain()
            return not close
        finally:
            m.inflight -= 1


def wait_until(predicate: Callable[[], object], timeout: float = 5.0,
               interval: float = 0.02) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass; returns its last
    value. A bounded poll for state the test cannot be told about (e.g. a retry timer)."""
    deadline = time.monotonic() + timeout
    while True:
        value = bool(predicate())
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def _reserve_port() -> socket.socket:
    """A socket bound to a free loopback port and never listening: connects are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _release(m: MemberServer) -> None:
    if m.reservation is not None:
        m.reservation.close()
        m.reservation = None
