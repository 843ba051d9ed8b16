"""Flow control for one transport (DESIGN rule 6).

asyncio calls ``pause_writing``/``resume_writing`` on a protocol when its transport's write
buffer crosses the high/low water marks. A ``Flow`` records that state and tells a partner
(the transport on the other side of the proxy) to stop or resume reading, so a slow reader on
one side throttles the fast writer on the other instead of growing a buffer.
"""

from __future__ import annotations

__all__ = ["Flow"]

import asyncio
from collections.abc import Callable


class Flow:
    """Idempotent pause/resume of one transport's writes, forwarded to a reader we control.

    ``on_pause``/``on_resume`` are called once per state change (never twice in a row), so a
    partner's ``pause_reading`` is never unbalanced.
    """

    __slots__ = ("_drain", "_on_pause", "_on_resume", "paused")

    def __init__(self) -> None:
        self.paused = False
        self._on_pause: Callable[[], None] | None = None
        self._on_resume: Callable[[], None] | None = None
        self._drain: asyncio.Future[None] | None = None

    def link(self, on_pause: Callable[[], None] | None,
             on_resume: Callable[[], None] | None) -> None:
        """Attach (or detach, with None) the partner reader to throttle.

        If this side is already paused when a partner attaches, the partner is paused at once.
        """
        if self.paused and self._on_resume is not None:
            self._on_resume()  # release the old partner before swapping
        self._on_pause = on_pause
        self._on_resume = on_resume
        if self.paused and on_pause is not None:
            on_pause()

    def pause(self) -> None:
        """Called from Protocol.pause_writing (the transport's buffer is above high water)."""
        if self.paused:
            return
        self.paused = True
        if self._on_pause is not None:
            self._on_pause()

    def resume(self) -> None:
        """Called from Protocol.resume_writing (the buffer drained below low water)."""
        if not self.paused:
            return
        self.paused = False
        if self._on_resume is not None:
            self._on_resume()
        drain = self._drain
        if drain is not None:
            self._drain = None
            if not drain.done():
                drain.set_result(None)

    async def drained(self) -> None:
        """Wait until writes may continue; returns at once when not paused."""
        if not self.paused:
            return
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_future()
        await self._drain

    def abort(self) -> None:
        """The transport is gone: wake any waiter and release the partner."""
        drain = self._drain
        self._drain = None
        if drain is not None and not drain.done():
            drain.set_exception(ConnectionResetError("connection lost"))
        if self.paused:
            self.resume()
