"""Running one serving process: load the config, listen, serve, reload, stop.

``ProxyServer`` is what ``portico -X`` runs, and what each worker process runs under the
master. A reload builds a new ``Pipeline`` from a freshly validated config; connections that
are open keep the pipeline they started with, new connections get the new one, and a bad
config is logged while the old one keeps serving.
"""

from __future__ import annotations

__all__ = ["ProxyServer"]

import asyncio
import logging
import signal
import socket
from collections.abc import Callable, Sequence

from portico.config import load_config
from portico.config.model import ServerConfig
from portico.errors import ConfigError
from portico.health.checker import HealthChecker
from portico.logs.errorlog import check_error_log, host_error_logs, setup_error_log
from portico.logs.writer import LogOpenError
from portico.protocols.http1 import head_parsers
from portico.proxy.pipeline import Pipeline
from portico.server import heap
from portico.server.accesslog import build_access_logs
from portico.server.front import FrontConnection
from portico.server.listener import ListenAddress, open_listener, resolve_listens
from portico.server.pidfile import PidFile
from portico.state.scoreboard import ProcState, Scoreboard
from portico.upstream.shared import scoreboard_for

log = logging.getLogger("portico.server")


class ProxyServer:
    """One process serving a configuration (see the module docstring)."""

    def __init__(self, config_path: str, defines: Sequence[str] = (),
                 server_root: str | None = None, *, standalone: bool = True,
                 listen: Callable[[ListenAddress], socket.socket] = open_listener,
                 scoreboard: Scoreboard | None = None, lane: int = 0) -> None:
        """``standalone=False`` is a worker under the master (server/workers.py): it writes
        no PidFile and installs no signal handlers (its owner calls ``stop()``/``retire()``).
        ``listen`` gives the listening socket for an address (the master hands its own out).
        ``scoreboard``/``lane``: the shared board the master made and this process's lane in
        it; a standalone server (``-X``) makes its own one-lane board.
        """
        self.config_path = config_path
        self.defines = tuple(defines)
        self.server_root = server_root
        self.standalone = standalone
        self._listen = listen
        self.ready = asyncio.Event()  # set once every Listen address accepts connections
        self._retiring = False
        self.pid_file = PidFile()   # written only when standalone (-X): else the master's
        self.config: ServerConfig | None = None
        self.pipeline: Pipeline | None = None
        self._servers: dict[ListenAddress, asyncio.AbstractServer] = {}
        self._sockets: dict[ListenAddress, socket.socket] = {}
        self._connections: set[FrontConnection] = set()
        self._stop = asyncio.Event()
        self._access_logs = None
        self._flush_task: asyncio.Task[None] | None = None
        self._old_pipelines: list[tuple[Pipeline, object]] = []
        self.scoreboard = scoreboard
        self._lane = lane
        self._health: HealthChecker | None = None

    def _board_for(self, config: ServerConfig) -> Scoreboard:
        """This process's scoreboard for ``config`` (bound to its lane)."""
        if self.standalone:  # -X: one process, its own board, migrated across reloads
            previous = self.scoreboard
            board = scoreboard_for(config, 1, previous=previous)
            board.bind(0)
            self.scoreboard = board
        elif self.scoreboard is None:
            raise ConfigError("a worker process needs the master's scoreboard")
        else:
            self.scoreboard.bind(self._lane)
        return self.scoreboard

    def load(self) -> ServerConfig:
        return load_config(self.config_path, self.defines, self.server_root)

    async def run(self, config: ServerConfig | None = None) -> None:
        """Serve until SIGTERM/SIGINT (or ``stop()``), then drain and return."""
        loop = asyncio.get_running_loop()
        self.config = config or self.load()
        self._apply_logging(self.config)
        self._access_logs = build_access_logs(self.config)
        board = self._board_for(self.config)
        self.pipeline = Pipeline(self.config, self._access_logs.by_vhost, board)
        await self._sync_listeners(self.config)
        self._health_follow(self.config, board)
        heap.tune()
        heap.settle()
        self.ready.set()
        self._set_state(ProcState.SERVING)
        if self.standalone:
            self.pid_file.write(self.config)
            for signum, handler in ((signal.SIGTERM, self.stop), (signal.SIGINT, self.stop),
                                    (signal.SIGHUP, self.reload),
                                    (signal.SIGUSR1, self.reload)):
                loop.add_signal_handler(signum, handler)
        self._flush_task = loop.create_task(self._flush_logs())
        log.info("portico serving %s on %s; HTTP/1 head parsers: %s", self.config.source_file,
                 ", ".join(str(a) for a in self._servers), head_parsers())
        try:
            await self._stop.wait()
            await self._drain()
        finally:
            if self.standalone:
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
                    loop.remove_signal_handler(signum)
            if self._flush_task is not None:
                self._flush_task.cancel()
            if self._health is not None:
                self._health.close()
            if self.pipeline is not None:
                self.pipeline.close()
            if self._access_logs is not None:
                self._access_logs.close()
            self.pid_file.remove()

    def stop(self) -> None:
        """Stop accepting and drain (a second call while draining exits at once)."""
        if self._stop.is_set():
            for conn in list(self._connections):
                if conn.transport is not None:
                    conn.transport.abort()
            return
        log.info("stopping: draining %d connection(s)", len(self._connections))
        self._set_state(ProcState.DRAINING)
        self._stop.set()

    def _set_state(self, state: ProcState) -> None:
        """This process's state in the scoreboard (server-status shows it)."""
        board = self.scoreboard
        if board is not None and board.lane is not None:
            board.process(board.lane).state = state

    def retire(self) -> None:
        """Hand over to a newer generation of workers without failing a request.

        Stop accepting at once. Every open connection finishes what it is doing; a request
        that starts from now on is answered with ``Connection: close``; an idle keep-alive
        connection is not closed early but runs out its own KeepAliveTimeout (closing it
        sooner would race a request the client may be sending). GracefulShutdownTimeout
        still bounds the whole drain. ``stop()`` afterwards aborts what is left.
        """
        if self._stop.is_set():
            return
        self._retiring = True
        for conn in self._connections:
            conn.retiring = True  # a request that starts from now on closes after its response
        self.stop()

    def reload(self) -> None:
        """Graceful reload: a new config for new connections; a bad one changes nothing."""
        asyncio.get_running_loop().create_task(self._reload())

    async def _reload(self) -> None:
        try:
            config = self.load()
            check_error_log(config)   # switched to below, once everything else is built
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        old_pipeline, old_logs = self.pipeline, self._access_logs
        try:
            access_logs = build_access_logs(config)
            board = self._board_for(config) if self.standalone else self.scoreboard
            pipeline = Pipeline(config, access_logs.by_vhost, board)
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        try:
            self._apply_logging(config)
        except ConfigError as exc:   # checked above: only if the file system changed since
            log.error("reload: %s; the error log stays where it was", exc)
        self._access_logs = access_logs
        self.pipeline = pipeline
        self.config = config
        if board is not None:
            self._health_follow(config, board)
        try:
            await self._sync_listeners(config)
        except ConfigError as exc:
            log.error("reload: %s", exc)
        if old_pipeline is not None:
            self._old_pipelines.append((old_pipeline, old_logs))
        self.pid_file.write(config)
        log.info("reloaded configuration from %s", config.source_file)
        if not self._retire_old_pipelines():
            heap.settle()   # freeze the new configuration (retiring did it otherwise)

    def _health_follow(self, config: ServerConfig, board: Scoreboard) -> None:
        """With -X this process is the whole server, so it runs the health checker (rule
        10); a worker under the master never does (the master's checker serves them all)."""
        if not self.standalone:
            return
        if self._health is None:
            self._health = HealthChecker(config, board)
            self._health.start()
        else:
            self._health.repoint(config, board)

    def _retire_old_pipelines(self) -> bool:
        """Close the resources of pipelines no open connection uses any more (True if any)."""
        in_use = {id(c.pipeline) for c in self._connections}
        keep = []
        for pipeline, logs in self._old_pipelines:
            if id(pipeline) in in_use:
                keep.append((pipeline, logs))
                continue
            pipeline.close()
            if logs is not None and logs is not self._access_logs:
                logs.close()  # type: ignore[attr-defined]
        retired = len(keep) < len(self._old_pipelines)
        self._old_pipelines = keep
        if retired:
            heap.settle()   # what the retired pipelines held can be collected now
        return retired

    async def _sync_listeners(self, config: ServerConfig) -> None:
        loop = asyncio.get_running_loop()
        wanted = resolve_listens(config.listens)
        if not wanted:
            raise ConfigError("no listening sockets available: add a Listen directive",
                              config.source_file)
        for addr in list(self._servers):
            if addr not in wanted:
                self._servers.pop(addr).close()
                self._sockets.pop(addr, None)
        for addr in wanted:
            if addr in self._servers:
                continue
            sock = self._listen(addr)
            scheme = "https" if addr.protocol == "https" else "http"
            server = await loop.create_server(
                lambda scheme=scheme: self._new_connection(scheme), sock=sock, backlog=511)
            self._servers[addr] = server
            self._sockets[addr] = sock

    def _new_connection(self, scheme: str) -> FrontConnection:
        assert self.pipeline is not None
        conn = _TrackedConnection(self.pipeline, scheme)
        conn.owner = self
        return conn

    async def _drain(self) -> None:
        """Stop listening, let in-flight requests finish (bounded), close idle connections."""
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        # A connection accepted just before the close still waits for its connection_made
        # (scheduled with call_soon): let it register before the count below says "none".
        await asyncio.sleep(0)
        assert self.config is not None
        limit = self.config.core.graceful_shutdown_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (limit if limit > 0 else 3600.0)
        while self._connections and loop.time() < deadline:
            if not self._retiring:
                for conn in list(self._connections):
                    if conn.ctx is None and conn.transport is not None:
                        conn.closing = True
                        conn.transport.close()
            await asyncio.sleep(0.05)
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.abort()

    async def _flush_logs(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self._access_logs is not None:
                self._access_logs.flush()
            if self._old_pipelines:
                self._retire_old_pipelines()

    def _apply_logging(self, config: ServerConfig) -> None:
        """Point the error log at ``config``'s; one that cannot be opened is a ConfigError
        (the previous log, if any, stays in place)."""
        check_error_log(config)
        try:
            setup_error_log(config.error_log, config.log_level, config.module_log_levels,
                            config.server_root, host_error_logs(config))
        except LogOpenError as exc:   # the file system changed since the check
            raise ConfigError(str(exc), config.source_file) from None

class _TrackedConnection(FrontConnection):
    """A FrontConnection that registers itself with its server, for draining."""

    __slots__ = ("owner",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.owner._connections.add(self)
        self.retiring = self.owner._retiring
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.owner._connections.discard(self)
