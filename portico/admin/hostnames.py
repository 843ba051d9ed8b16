"""Client host names for ``Require host``: double-reverse DNS, bounded and cached.

httpd's mod_authz_host accepts a name only if the reverse lookup of the client address gives
a name whose forward lookup gives the address back ("double-reverse"). Lookups run in the
loop's executor with a time limit, so a slow resolver delays only the requests that need a
name, and results (failures too) are cached per address for a short time. Requests from one
address that arrive while its lookup runs wait for that lookup rather than starting another.
"""

from __future__ import annotations

__all__ = ["MISSING", "HostNames"]

import asyncio
import socket
import time
from collections import OrderedDict

MISSING = object()   # not in the cache: a lookup is needed


class HostNames:
    """Verified client host names by address (None: no verified name)."""

    def __init__(self, ttl: float = 60.0, timeout: float = 2.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self.size = size
        self._cache: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[str | None]] = {}

    def cached(self, address: str) -> str | object | None:
        """The cached name (or None), or MISSING when a lookup is needed."""
        entry = self._cache.get(address)
        if entry is None or entry[1] < time.monotonic():
            return MISSING
        return entry[0]

    async def resolve(self, address: str) -> str | None:
        """Look ``address`` up (reverse, then forward-confirm) and cache the answer. Callers
        for one address share one lookup; a cancelled caller does not cancel it."""
        lookup = self._pending.get(address)
        if lookup is None:
            lookup = self._pending[address] = asyncio.ensure_future(self._lookup(address))
            lookup.add_done_callback(lambda _done: self._pending.pop(address, None))
        return await asyncio.shield(lookup)

    async def _lookup(self, address: str) -> str | None:
        loop = asyncio.get_running_loop()
        name: str | None = None
        try:
            async with asyncio.timeout(self.timeout):
                host, _, _ = await loop.run_in_executor(None, socket.gethostbyaddr, address)
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            if any(info[4][0] == address for info in infos):
                name = host.lower().rstrip(".")
        except (OSError, TimeoutError, UnicodeError):
            name = None
        self._cache[address] = (name, time.monotonic() + self.ttl)
        self._cache.move_to_end(address)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return name
