"""A per-process connection pool for one worker (DESIGN rule 8, reference §6.1).

How it works: ``in_use`` counts slots, where a slot is a connection checked out *or being
opened*. A slot is taken before the first await and given back in ``finally``, so cancellation
cannot leak one. Waiters queue first in, first out; a released slot goes to the oldest waiter
either as a reusable idle connection or as permission to open a new one. An idle connection is
reused only if it is younger than ``ttl`` and its transport still looks healthy; one that saw an
error is never put back.
"""

from __future__ import annotations

__all__ = ["Pool", "PoolExhausted", "Pooled"]

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol


class Pooled(Protocol):
    """What the pool needs from a connection."""

    idle_since: float

    def is_reusable(self) -> bool: ...
    def close(self) -> None: ...


class PoolExhausted(Exception):
    """No connection became free within the acquire timeout."""


class Pool:
    """Idle connections plus a bound on connections in use, for one worker in one process."""

    __slots__ = ("_idle", "_waiters", "in_use", "max", "reuse", "smax", "ttl", "opened_total")

    def __init__(self, *, max: int = 0, smax: int | None = None, ttl: float | None = None,
                 reuse: bool = True) -> None:
        self.max = max                    # 0 = no limit of our own
        self.smax = smax if smax is not None else max
        self.ttl = ttl
        self.reuse = reuse
        self.in_use = 0
        self.opened_total = 0
        self._idle: deque[Pooled] = deque()
        self._waiters: deque[asyncio.Future[Pooled | None]] = deque()

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    def take_idle(self) -> Pooled | None:
        """A reusable idle connection (most recently used first), with its slot taken."""
        idle = self._idle
        if not idle:
            return None
        now = time.monotonic()
        ttl = self.ttl
        while idle:
            conn = idle.pop()
            if (ttl is None or now - conn.idle_since < ttl) and conn.is_reusable():
                self.in_use += 1
                return conn
            conn.close()
        return None

    def try_reserve(self) -> bool:
        """Take a slot for a new connection without waiting, if the limit allows it."""
        if self.max and self.in_use >= self.max:
            return False
        self.in_use += 1
        return True

    async def acquire(
        self, open_new: Callable[[], Awaitable[Pooled]], wait: float | None,
    ) -> tuple[Pooled, bool]:
        """A connection and whether it was reused. Raises PoolExhausted after ``wait`` s.

        ``open_new`` runs while this call holds a slot; if it fails the slot is released.
        """
        conn = self.take_idle()
        if conn is not None:
            return conn, True
        if not self.try_reserve():
            conn = await self._wait_for_slot(wait)
            if conn is not None:
                return conn, True
        try:
            conn = await open_new()
        except BaseException:
            self._give_back_slot()
            raise
        self.opened_total += 1
        return conn, False

    async def _wait_for_slot(self, wait: float | None) -> Pooled | None:
        """Queue until release() hands us a connection (or None: a slot to open one)."""
        fut: asyncio.Future[Pooled | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            done, _ = await asyncio.wait((fut,), timeout=wait)
        except BaseException:
            self._drop_waiter(fut)
            raise
        if not done:
            self._drop_waiter(fut)
            raise PoolExhausted("no free connection within the acquire time")
        return fut.result()

    def _drop_waiter(self, fut: asyncio.Future[Pooled | None]) -> None:
        """A waiter gives up; a slot it was already handed goes on to the next one."""
        if fut.done():
            if not fut.cancelled():
                self.release(fut.result(), reusable=True)
            return
        fut.cancel()
        try:
            self._waiters.remove(fut)
        except ValueError:
            pass

    def release(self, conn: Pooled | None, reusable: bool) -> None:
        """Give back a slot; ``conn`` returns to the idle list when reusable."""
        self.in_use -= 1
        if conn is not None and not (reusable and self.reuse and conn.is_reusable()):
            conn.close()
            conn = None
        while self._waiters:
            fut = self._waiters.popleft()
            if fut.done():
                continue
            self.in_use += 1
            fut.set_result(conn)
            return
        if conn is not None:
            if self.smax and len(self._idle) >= self.smax and self.ttl is not None:
                conn.close()  # above smax with a ttl: httpd frees these; we do it at once
                return
            conn.idle_since = time.monotonic()
            self._idle.append(conn)

    def _give_back_slot(self) -> None:
        self.release(None, reusable=False)

    def forget(self, conn: Pooled) -> None:
        """An idle connection closed on its own (the backend hung up): drop it."""
        try:
            self._idle.remove(conn)
        except ValueError:
            pass

    def close_idle(self) -> None:
        while self._idle:
            self._idle.pop().close()

