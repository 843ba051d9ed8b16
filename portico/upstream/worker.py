"""The run-time side of one worker (a backend URL): its pool, its connector and its shared
record in the scoreboard.

Workers are built once per configuration generation from ``WorkerSpec``s; effective timeouts
that depend on the request's scope (ProxyTimeout of the vhost) are resolved per request by
``timeout_for``.

How connections are opened also depends on the scope: SSLProxy*, ProxyReceiveBufferSize and
ProxySourceAddress may differ between virtual hosts while the worker is shared by the whole
config (docs/compat.md). ``for_settings`` gives the worker to use under one scope's settings:
this one, or a twin with the same spec and scoreboard record but its own connector and pools,
so a pooled connection never serves a scope whose connection settings differ from those it
was opened with. The pipeline looks the twin up once per (worker, scope), not per request.
"""

from __future__ import annotations

__all__ = ["Worker"]

from portico.config.model import CoreSettings, ProxySettings, TLSClientSettings, WorkerSpec
from portico.state.scoreboard import WorkerSlot
from portico.upstream.connect import Connector
from portico.upstream.pool import Pool

_TLS_SCHEMES = frozenset({"https", "wss", "h2"})

# What of a scope's settings decides how a connection is opened: TLS client settings (None
# for a plain scheme), SO_RCVBUF and the source address.
ConnectionKey = tuple[TLSClientSettings | None, int, str | None]


def connection_key(spec: WorkerSpec, settings: ProxySettings) -> ConnectionKey:
    """The connection settings ``spec``'s connections get under ``settings``."""
    return (settings.tls if spec.scheme in _TLS_SCHEMES else None,
            spec.params.receivebuffersize or settings.receivebuffersize,
            settings.source_address)


class Worker:
    """One backend URL at run time. A ``$n`` worker keeps one pool per host:port it reaches."""

    __slots__ = ("_pools", "_twins", "connector", "name", "plans", "pool", "slot", "spec")

    def __init__(self, spec: WorkerSpec, settings: ProxySettings, slot: WorkerSlot,
                 twins: dict[ConnectionKey, Worker] | None = None) -> None:
        """``twins``: the workers of the same spec under other connection settings (shared
        by them all; ``for_settings`` fills it); None for the first."""
        self.spec = spec
        self.name = spec.name
        self.pool = self._new_pool()
        self._pools: dict[tuple[str, int], Pool] = {}
        key = connection_key(spec, settings)
        tls, receive_buffer, source_address = key
        self.connector = Connector(spec, tls, receive_buffer=receive_buffer,
                                   source_address=source_address)
        self.slot = slot  # the shared record: status, busy, elected, bytes (scoreboard)
        self.plans: dict[int, object] = {}  # the pipeline's per-scope request plans
        if twins is None:
            twins = {}
        twins[key] = self
        self._twins = twins

    def for_settings(self, settings: ProxySettings) -> Worker:
        """The worker whose connector and pools fit ``settings`` (see the module docstring);
        made on first use, at most one per distinct connection setting of the config."""
        twin = self._twins.get(connection_key(self.spec, settings))
        if twin is None:
            twin = Worker(self.spec, settings, self.slot, self._twins)
        return twin

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
        """Close the idle connections of this worker and of its twins."""
        for worker in self._twins.values():
            worker.pool.close_idle()
            for pool in worker._pools.values():
                pool.close_idle()
