"""Backends with a health endpoint the test controls, for the health-check tests.

`HealthBackends(ids)` runs one HTTP/1.x server per id on 127.0.0.1 (one asyncio loop in a
background thread). A request for ``/health`` is answered with the member's current health
status and body (``set_health``) and counted with its method, target and HTTP version; any
other request gets 200 and ``X-Member: <id>`` with the id as the body. Every answer closes
the connection (the checks send ``Connection: close``; the proxy opens new ones).
"""

from __future__ import annotations

__all__ = ["HealthBackends", "Probe"]

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
_REASONS = {200: "OK", 301: "Moved Permanently", 404: "Not Found",
            503: "Service Unavailable"}


@dataclass(frozen=True)
class Probe:
    """One /health request a member received."""

    member: str
    method: str
    target: str
    version: str
    host: str | None
    when: float           # the backend loop's monotonic time


@dataclass
class _Member:
    ident: str
    status: int = 200
    body: bytes = b"ok"
    server: asyncio.AbstractServer | None = None
    port: int = 0
    probes: list[Probe] = field(default_factory=list)
    traffic: int = 0


class HealthBackends:
    """Members with controllable health; use as a context manager."""

    def __init__(self, ids: Sequence[str]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="health-backends")
        self._thread.start()
        self._lock = threading.Lock()
        self.members = {ident: _Member(ident) for ident in ids}
        try:
            for m in self.members.values():
                self._call(self._listen(m))
        except BaseException:
            self.close()
            raise

    def url(self, ident: str) -> str:
        return f"http://127.0.0.1:{self.members[ident].port}"

    def port(self, ident: str) -> int:
        return self.members[ident].port

    def set_health(self, ident: str, status: int, body: bytes | None = None) -> None:
        with self._lock:
            m = self.members[ident]
            m.status = status
            if body is not None:
                m.body = body

    def probes(self, ident: str) -> list[Probe]:
        with self._lock:
            return list(self.members[ident].probes)

    def traffic(self) -> Counter[str]:
        """Non-health requests answered per member."""
        with self._lock:
            return Counter({i: m.traffic for i, m in self.members.items()})

    def stop_listening(self, ident: str) -> None:
        """Close the listener: connections to the member are refused from now on."""
        self._call(self._unlisten(self.members[ident]))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        for m in self.members.values():
            with contextlib.suppress(Exception):
                self._call(self._unlisten(m))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> HealthBackends:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _listen(self, m: _Member) -> None:
        m.server = await asyncio.start_server(
            lambda r, w: self._serve(m, r, w), "127.0.0.1", m.port or 0)
        m.port = m.server.sockets[0].getsockname()[1]

    async def _unlisten(self, m: _Member) -> None:
        if m.server is not None:
            m.server.close()
            m.server = None

    async def _serve(self, m: _Member, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            method, target, version = [*parts, "", "", ""][:3]
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in lines[1:] if line)}
            if target.endswith("/health"):
                with self._lock:
                    m.probes.append(Probe(m.ident, method, target, version,
                                          headers.get("host"), self._loop.time()))
                    status, body = m.status, m.body
                extra = b""
            else:
                with self._lock:
                    m.traffic += 1
                status, body, extra = 200, m.ident.encode(), f"X-Member: {m.ident}\r\n".encode()
            reason = _REASONS.get(status, "Status")
            out = (f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
                   "Connection: close\r\n").encode() + extra + b"\r\n"
            bodiless = method == "HEAD" or status in (204, 304)
            writer.write(out + (b"" if bodiless else body))
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()
