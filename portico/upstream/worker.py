"""The run-time side of one worker (a backend URL): its pool, its connector and its shared
record in the scoreboard.

Workers are built once per configuration generation from ``WorkerSpec``s; effective timeouts
that depend on the request's scope (ProxyTimeout of the vhost) are resolved per request by
``timeout_for``.
"""

from __future__ import annotations

__all__ = ["Worker"]

from portico.config.model import CoreSettings, ProxySettings, WorkerSpec
from portico.state.scoreboard import WorkerSlot
from portico.upstream.connect import Connector
from portico.upstream.pool import Pool


class Worker:
    """One backend URL at run time. A ``$n`` worker keeps one pool per host:port it reaches."""

    __slots__ = ("_pools", "connector", "name", "plans", "pool", "slot", "spec")

    def __init__(self, spec: WorkerSpec, settings: ProxySettings, slot: WorkerSlot) -> None:
        self.spec = spec
        self.name = spec.name
        p = spec.params
        self.pool = self._new_pool()
        self._pools: dict[tuple[str, int], Pool] = {}
        self.connector = Connector(
            spec, settings.tls,
            receive_buffer=p.receivebuffersize or settings.receivebuffersize,
            source_address=settings.source_address)
        self.slot = slot  # the shared record: status, busy, elected, bytes (scoreboard)
        self.plans: dict[int, object] = {}  # the pipeline's per-scope request plans

    def _new_pool(self) -> Pool:
        p = self.spec.params
        return Pool(max=p.max, smax=p.smax, ttl=p.ttl, reuse=p.enablereuse)

    def pool_for(self, host: str, port: int) -> Pool:
        """The pool for a connection target (differs from the worker's own only for $n URLs)."""
        if host == self.spec.host and port == self.spec.port:
            return self.pool
        key = (host, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = self._new_pool()
        return pool

    def timeout_for(self, settings: ProxySettings, core: CoreSettings) -> float:
        """Socket read/write timeout: worker timeout=, else ProxyTimeout, else Timeout."""
        t = self.spec.params.timeout
        if t is not None:
            return t
        return settings.timeout if settings.timeout is not None else core.timeout

    def connect_timeout_for(self, settings: ProxySettings, core: CoreSettings) -> float:
        t = self.spec.params.connectiontimeout
        return t if t is not None else self.timeout_for(settings, core)

    def acquire_wait(self, settings: ProxySettings, core: CoreSettings) -> float:
        """How long a request may wait for a pool slot; unset acquire → the worker timeout."""
        a = self.spec.params.acquire
        return a if a is not None else self.timeout_for(settings, core)

    def close(self) -> None:
        self.pool.close_idle()
        for pool in self._pools.values():
            pool.close_idle()
