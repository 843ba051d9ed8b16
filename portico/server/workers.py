"""The master process: N worker processes, crash restarts, graceful reloads, drained stops.

How it works
------------
The master is a plain synchronous process (no event loop, no threads, so ``fork`` is safe).
It loads and validates the config, binds the listening sockets, writes the PidFile and forks
one *generation* of N workers; each worker runs a non-standalone ``ProxyServer`` on a fresh
uvloop loop and reports "ready" through a pipe once its listeners accept connections.

Sockets belong to the master. For every Listen address it binds one SO_REUSEPORT socket per
worker *slot*; worker i listens on socket i of each address. The kernel spreads new
connections over the slots, and because the master keeps every socket open, a socket's
accept queue outlives the worker using it: connections queued for a worker that crashed, or
for a worker of the old generation being replaced, are accepted by its successor instead of
being reset (which is what closing a SO_REUSEPORT socket would do to them).

Signals to the master:

* SIGHUP, SIGUSR1 (``portico -k graceful``): reload. The new config is parsed and validated
  (and new listeners bound) first; on error it is logged with file:line and nothing changes.
  Then a new generation starts on the same sockets; once all of it is ready, each old worker
  gets SIGUSR2 (``ProxyServer.retire``: stop accepting, finish, close after the next
  response) and exits when drained. If a new worker dies before it is ready, or the
  generation is not ready within ``READY_TIMEOUT``, the new generation is stopped and the old
  one keeps serving. A reload asked for while one is under way runs after it.
* SIGTERM, SIGINT (``portico -k stop``): workers get SIGTERM (``ProxyServer.stop``: drain,
  bounded by GracefulShutdownTimeout); the master exits when they have, removing the PidFile
  last. A second SIGTERM/SIGINT sends SIGTERM again (workers abort what is left) and SIGKILLs
  any worker still there ``KILL_GRACE`` seconds later.
* SIGCHLD: a worker of the serving generation that exits is logged with its exit status and
  restarted in the same slot: at once after a worker that ran for ``FAST_CRASH`` seconds or
  more, otherwise after a backoff that doubles with every further fast crash, up to
  ``MAX_BACKOFF``.

Workers ignore SIGINT, SIGHUP and SIGUSR1 (a terminal's Ctrl-C reaches the whole process
group; the master decides), and stop by themselves when the master disappears: each holds
the read end of a "lifeline" pipe whose only write end the master keeps.
"""

from __future__ import annotations

__all__ = [
    "FAST_CRASH", "KILL_GRACE", "MAX_BACKOFF", "READY_TIMEOUT", "Master", "backoff_delay",
    "run_master", "worker_count",
]

import asyncio
import collections
import contextlib
import logging
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from portico.config import load_config
from portico.config.model import ServerConfig
from portico.errors import ConfigError
from portico.health.checker import CheckerThread
from portico.logs.errorlog import (
    NOTICE,
    check_error_log,
    host_error_logs,
    setup_error_log,
)
from portico.server.accesslog import build_access_logs
from portico.server.listener import ListenAddress, bind_socket, check_free, resolve_listens
from portico.server.pidfile import PidFile
from portico.server.serve import ProxyServer
from portico.state.scoreboard import Scoreboard
from portico.upstream.shared import scoreboard_for

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency; the stock loop works too
    uvloop = None  # type: ignore[assignment]

log = logging.getLogger("portico.mpm")

READY_TIMEOUT = 15.0    # seconds a new generation has to report ready
FAST_CRASH = 10.0       # a worker that exits sooner than this after its start crashed fast
MAX_BACKOFF = 30.0      # longest wait before restarting a worker that keeps crashing
KILL_GRACE = 3.0        # after a second SIGTERM, SIGKILL what is still running after this
_PIPE_MESSAGE = 4000      # a "could not start" message is cut to this (one atomic pipe write)
_RETIRE_SLACK = 5.0     # SIGKILL a retiring worker this long after GracefulShutdownTimeout

_MASTER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1,
                   signal.SIGCHLD)


def worker_count(option: int | None, config: ServerConfig) -> int:
    """How many workers to run: ``-w N``, else the ``Workers`` directive, else one per CPU."""
    if option:
        return option
    if config.core.workers:
        return config.core.workers
    return os.cpu_count() or 1


def backoff_delay(streak: int) -> float:
    """Seconds to wait before restarting a worker after ``streak`` fast crashes in a row.

    The first crash is restarted at once (one fault should not cost capacity); then 0.25 s,
    0.5 s, 1 s, ... doubling, capped at ``MAX_BACKOFF``.
    """
    if streak <= 1:
        return 0.0
    return min(0.25 * 2 ** (streak - 2), MAX_BACKOFF)


def describe_status(status: int) -> str:
    """``exit status N`` or ``exit signal NAME (N)``, as httpd words a child's end."""
    if os.WIFSIGNALED(status):
        num = os.WTERMSIG(status)
        try:
            name = signal.Signals(num).name
        except ValueError:
            name = "unknown"
        return f"exit signal {name} ({num})"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


# -- the master's listening sockets ---------------------------------------------------------

SocketMap = dict[ListenAddress, list[socket.socket]]


class ListenerSet:
    """The master's sockets: for each address, one socket per worker slot.

    ``prepare`` builds the map a generation will use (reusing the current sockets, binding
    the missing ones) without touching the current map; ``adopt`` makes it current and closes
    the master's copies of sockets it no longer uses; ``discard`` undoes a ``prepare``.
    """

    def __init__(self) -> None:
        self.current: SocketMap = {}

    def prepare(self, addrs: Sequence[ListenAddress], slots: int) -> SocketMap:
        """One socket per slot for each of ``addrs``; on a bind error closes what it bound.

        New sockets are bound but not listening: the worker that gets one calls listen()
        (uvloop's create_server does), so a slot joins the port's reuseport group only once
        a process accepts on it.
        """
        out: SocketMap = {}
        try:
            for addr in addrs:
                have = self.current.get(addr, [])
                if not have:
                    check_free(addr)   # new to this server: nobody else may listen there
                out[addr] = [have[i] if i < len(have) else bind_socket(addr)
                             for i in range(slots)]
        except ConfigError:
            self.discard(out)
            raise
        return out

    def adopt(self, new: SocketMap) -> None:
        keep = {id(s) for socks in new.values() for s in socks}
        for socks in self.current.values():
            for sock in socks:
                if id(sock) not in keep:
                    sock.close()
        self.current = new

    def discard(self, new: SocketMap) -> None:
        keep = {id(s) for socks in self.current.values() for s in socks}
        for socks in new.values():
            for sock in socks:
                if id(sock) not in keep:
                    sock.close()

    def close(self) -> None:
        self.adopt({})


# -- bookkeeping ------------------------------------------------------------------------------

@dataclass(eq=False)
class WorkerProc:
    """One forked worker as the master sees it."""

    pid: int
    slot: int
    generation: int
    started: float
    ready_fd: int | None
    ready: bool = False
    retiring: bool = False
    failure: str | None = None   # why it could not start, as it told us


@dataclass(eq=False)
class Generation:
    """Workers started from one config on one socket map."""

    number: int
    config: ServerConfig
    count: int
    sockets: SocketMap
    scoreboard: Scoreboard | None = None   # shared by every worker of this generation
    slots: list[WorkerProc | None] = field(default_factory=list)
    streaks: list[int] = field(default_factory=list)   # fast crashes in a row, per slot

    def __post_init__(self) -> None:
        self.slots = [None] * self.count
        self.streaks = [0] * self.count

    def workers(self) -> list[WorkerProc]:
        return [w for w in self.slots if w is not None]


class _Timers:
    """Named one-shot deadlines on the monotonic clock (re-arming a name replaces it)."""

    def __init__(self) -> None:
        self._due: dict[object, tuple[float, Callable[[], None]]] = {}

    def arm(self, name: object, delay: float, callback: Callable[[], None]) -> None:
        self._due[name] = (time.monotonic() + delay, callback)

    def cancel(self, name: object) -> None:
        self._due.pop(name, None)

    def timeout(self) -> float | None:
        if not self._due:
            return None
        return max(0.0, min(when for when, _ in self._due.values()) - time.monotonic())

    def run_due(self) -> None:
        now = time.monotonic()
        for name, (when, callback) in list(self._due.items()):
            if when <= now and self._due.get(name, (None,))[0] == when:
                del self._due[name]
                callback()


# -- the master -------------------------------------------------------------------------------

class Master:
    """Supervises worker processes for one configuration file (see the module docstring)."""

    def __init__(self, config_path: str, defines: Sequence[str] = (),
                 server_root: str | None = None, workers: int | None = None) -> None:
        self.config_path = config_path
        self.defines = tuple(defines)
        self.server_root = server_root
        self.workers_option = workers
        self.listeners = ListenerSet()
        self.current: Generation | None = None
        self.pending: Generation | None = None
        self.procs: dict[int, WorkerProc] = {}
        self._generations = 0
        self._timers = _Timers()
        self._signals: collections.deque[int] = collections.deque()
        self._selector: selectors.BaseSelector | None = None
        self._wake: tuple[int, int] | None = None
        self._lifeline: tuple[int, int] | None = None
        self._stopping = 0           # 0 serving, 1 draining, 2 killing
        self._reload_queued = False
        self._exit_code = 0
        self.pid_file = PidFile()
        self._health = CheckerThread()   # the server's one health checker (rule 10)

    # -- lifecycle ----------------------------------------------------------------------------
    def run(self, config: ServerConfig) -> int:
        """Serve ``config`` until stopped; returns the process exit code.

        Raises ConfigError before anything is started when the listeners cannot be bound.
        """
        self._apply_logging(config)
        sockets = self.listeners.prepare(self._addresses(config),
                                         worker_count(self.workers_option, config))
        self._selector = selectors.DefaultSelector()
        self._wake = _nonblocking_pipe()
        self._lifeline = os.pipe()
        self._selector.register(self._wake[0], selectors.EVENT_READ)
        previous = self._install_signals()
        try:
            self.pid_file.write(config)
            self._start_generation(config, sockets)
            while self._stopping == 0 or self.procs:
                self._step()
        finally:
            self._restore_signals(previous)
            self._cleanup()
        return self._exit_code

    def _step(self) -> None:
        assert self._selector is not None and self._wake is not None
        for key, _ in self._selector.select(self._timers.timeout()):
            if key.fd == self._wake[0]:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake[0], 512):
                        pass
            else:
                self._on_ready_pipe(key.data)
        while self._signals:
            self._on_signal(self._signals.popleft())
        self._reap()
        self._timers.run_due()

    def _cleanup(self) -> None:
        self._health_stop()
        for proc in list(self.procs.values()):
            # Only reached with workers left if the master itself failed: do not orphan them.
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)
        self.listeners.close()
        for fd in (*(self._wake or ()), *(self._lifeline or ())):
            os.close(fd)
        if self._selector is not None:
            self._selector.close()
        self.pid_file.remove()

    # -- signals ------------------------------------------------------------------------------
    def _install_signals(self) -> dict[int, object]:
        assert self._wake is not None
        previous: dict[int, object] = {}
        for signum in _MASTER_SIGNALS:
            previous[signum] = signal.signal(signum, self._note_signal)
        previous[-1] = signal.set_wakeup_fd(self._wake[1])
        return previous

    def _restore_signals(self, previous: dict[int, object]) -> None:
        signal.set_wakeup_fd(previous.pop(-1))  # type: ignore[arg-type]
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _note_signal(self, signum: int, frame: object) -> None:
        # Runs between bytecodes of the main loop: only queue it; _step acts on it.
        self._signals.append(signum)

    def _on_signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stop()
        elif signum in (signal.SIGHUP, signal.SIGUSR1):
            log.log(NOTICE, "%s received: doing a graceful reload", signal.Signals(signum).name)
            self.reload()

    # -- stopping -----------------------------------------------------------------------------
    def stop(self) -> None:
        """First call: drain every worker and exit when they are gone. Second: kill now."""
        if self._stopping == 0:
            self._stopping = 1
            log.log(NOTICE, "shutting down: draining %d worker(s)", len(self.procs))
            for proc in self.procs.values():
                if not proc.retiring:
                    _signal(proc.pid, signal.SIGTERM)
            return
        if self._stopping == 1:
            self._stopping = 2
            log.warning("second stop request: aborting %d worker(s)", len(self.procs))
            for proc in self.procs.values():
                _signal(proc.pid, signal.SIGTERM)
            self._timers.arm("kill", KILL_GRACE, self._kill_all)

    def _kill_all(self) -> None:
        for proc in self.procs.values():
            _signal(proc.pid, signal.SIGKILL)

    # -- generations --------------------------------------------------------------------------
    def _start_generation(self, config: ServerConfig, sockets: SocketMap) -> None:
        self._generations += 1
        count = len(next(iter(sockets.values())))
        # The board is made before forking so every worker of the generation shares it;
        # it takes over the runtime state of the serving generation (rule 11, reloads).
        previous = self.current.scoreboard if self.current is not None else None
        board = scoreboard_for(config, count, self._generations, previous)
        gen = Generation(self._generations, config, count, sockets, board)
        self.pending = gen
        for slot in range(gen.count):
            self._spawn(gen, slot)
        self._timers.arm("ready", READY_TIMEOUT, self._pending_too_slow)

    def reload(self) -> None:
        """Graceful reload (see the module docstring); a bad config changes nothing."""
        if self._stopping:
            return
        if self.pending is not None:
            self._reload_queued = True
            return
        try:
            config = self.load_checked()
            sockets = self.listeners.prepare(self._addresses(config),
                                             worker_count(self.workers_option, config))
        except (ConfigError, OSError) as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        try:
            self._start_generation(config, sockets)
        except ConfigError as exc:
            self.listeners.discard(sockets)
            log.error("reload failed, keeping the running configuration: %s", exc)

    def load_checked(self) -> ServerConfig:
        """Parse the config file and check what a worker would only find out later (log
        formats and targets); raises ConfigError or OSError."""
        config = load_config(self.config_path, self.defines, self.server_root)
        build_access_logs(config, open_files=False).close()  # formats and targets are valid
        check_error_log(config)   # an ErrorLog that cannot be opened names its line
        return config

    @staticmethod
    def _addresses(config: ServerConfig) -> list[ListenAddress]:
        addrs = resolve_listens(config.listens)
        if not addrs:
            raise ConfigError("no listening sockets available: add a Listen directive",
                              config.source_file)
        return addrs

    def _on_ready_pipe(self, proc: WorkerProc) -> None:
        assert proc.ready_fd is not None
        try:
            data = os.read(proc.ready_fd, 4096)
        except OSError:
            data = b""
        self._close_ready(proc)
        if data[:1] != b"R":
            # It could not start (b"E" + why) or died: _reap reports it.
            proc.failure = data[1:].decode("utf-8", "replace") or None
            return
        proc.ready = True
        gen = self.pending
        if gen is not None and proc.generation == gen.number and all(
                w.ready for w in gen.workers()) and len(gen.workers()) == gen.count:
            self._promote(gen)

    def _promote(self, gen: Generation) -> None:
        """Every worker of ``gen`` accepts connections: it serves now; the old one retires."""
        self._timers.cancel("ready")
        old, self.current, self.pending = self.current, gen, None
        self.listeners.adopt(gen.sockets)
        self._health_follow(gen)
        if old is None:
            log.log(NOTICE, "portico started %d worker(s) serving %s", gen.count,
                    gen.config.source_file)
        else:
            for proc in old.workers():
                self._retire(proc, gen.config)
            try:
                self._apply_logging(gen.config)
                self.pid_file.write(gen.config)
            except (OSError, ValueError) as exc:
                # The workers could open theirs; the master keeps its previous ones.
                log.error("reload: the master keeps its previous error log or PidFile: %s", exc)
            log.log(NOTICE, "graceful reload done: generation %d (%d worker(s)) serving %s",
                    gen.number, gen.count, gen.config.source_file)
        if self._reload_queued:
            self._reload_queued = False
            self.reload()

    def _retire(self, proc: WorkerProc, new_config: ServerConfig) -> None:
        proc.retiring = True
        _signal(proc.pid, signal.SIGUSR2)
        limit = new_config.core.graceful_shutdown_timeout
        if limit > 0:
            self._timers.arm(("retire", proc.pid), limit + _RETIRE_SLACK,
                             lambda pid=proc.pid: self._kill_straggler(pid))

    def _kill_straggler(self, pid: int) -> None:
        if pid in self.procs:
            log.warning("worker pid %d still running after GracefulShutdownTimeout: killing",
                        pid)
            _signal(pid, signal.SIGKILL)

    def _pending_too_slow(self) -> None:
        if self.pending is not None:
            self._abandon_pending(f"new workers not ready within {READY_TIMEOUT:g} s")

    def _abandon_pending(self, why: str) -> None:
        gen, self.pending = self.pending, None
        assert gen is not None
        self._timers.cancel("ready")
        self.listeners.discard(gen.sockets)
        for proc in gen.workers():
            # A ready worker may already hold connections: let it hand them over gently.
            proc.retiring = True
            _signal(proc.pid, signal.SIGUSR2 if proc.ready else signal.SIGTERM)
        if self.current is None:
            log.error("startup failed: %s", why)
            print(f"portico: {why}", file=sys.stderr)
            self._exit_code = 1
            self.stop()
            return
        log.error("reload failed, keeping the running configuration: %s", why)
        if self._reload_queued:
            self._reload_queued = False
            self.reload()

    # -- children -----------------------------------------------------------------------------
    def _reap(self) -> None:
        for pid in list(self.procs):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                self._on_exit(self.procs.pop(pid), status)

    def _on_exit(self, proc: WorkerProc, status: int) -> None:
        if proc.ready_fd is not None:
            # Its exit can be seen before what it wrote on its ready pipe ("R", or "E" and
            # why it could not start): read that first, without waiting.
            os.set_blocking(proc.ready_fd, False)
            self._on_ready_pipe(proc)
        self._timers.cancel(("retire", proc.pid))
        how = describe_status(status)
        gen = self.current
        if proc.retiring or self._stopping:
            log.info("worker pid %d %s", proc.pid, how)
            return
        pending = self.pending
        if pending is not None and proc.generation == pending.number and (
                not proc.ready and not os.WIFSIGNALED(status)):
            # It exited by itself before serving: this config cannot run. (One killed by a
            # signal says nothing about the config; it is restarted like any other.)
            pending.slots[proc.slot] = None
            log.error("new worker pid %d %s before it was ready", proc.pid, how)
            self._abandon_pending(proc.failure or f"worker pid {proc.pid} {how}")
            return
        if pending is not None and proc.generation == pending.number:
            gen = pending
        if gen is None or proc.generation != gen.number:
            return
        if gen.scoreboard is not None:
            # Its in-flight counts and any lock it held die with it, before a replacement
            # takes the same lane.
            gen.scoreboard.release_lane(proc.slot, proc.pid)
        gen.slots[proc.slot] = None
        lived = time.monotonic() - proc.started
        gen.streaks[proc.slot] = gen.streaks[proc.slot] + 1 if lived < FAST_CRASH else 1
        delay = backoff_delay(gen.streaks[proc.slot])
        log.error("worker pid %d (slot %d) %s after %.1f s; restarting it in %.2f s",
                  proc.pid, proc.slot, how, lived, delay)
        self._timers.arm(("restart", gen.number, proc.slot), delay,
                         lambda: self._restart(gen, proc.slot))

    def _restart(self, gen: Generation, slot: int) -> None:
        if self._stopping or gen.slots[slot] is not None or (
                gen is not self.current and gen is not self.pending):
            return
        self._spawn(gen, slot)

    def _close_ready(self, proc: WorkerProc) -> None:
        if proc.ready_fd is not None:
            assert self._selector is not None
            self._selector.unregister(proc.ready_fd)
            os.close(proc.ready_fd)
            proc.ready_fd = None

    def _spawn(self, gen: Generation, slot: int) -> WorkerProc:
        assert self._selector is not None
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child never returns from here
            code = 1
            try:
                os.close(ready_r)
                code = self._become_worker(gen, slot, ready_w)
            except BaseException:  # the child must end in os._exit, whatever happened
                traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        os.close(ready_w)
        proc = WorkerProc(pid, slot, gen.number, time.monotonic(), ready_r)
        gen.slots[slot] = proc
        self.procs[pid] = proc
        self._selector.register(ready_r, selectors.EVENT_READ, proc)
        log.debug("started worker pid %d (generation %d, slot %d)", pid, gen.number, slot)
        return proc

    def _become_worker(self, gen: Generation, slot: int, ready_fd: int) -> int:
        """In the forked child: drop what belongs to the master, then serve."""
        assert self._wake is not None and self._lifeline is not None
        own = {addr: socks[slot] for addr, socks in gen.sockets.items()}
        keep = {id(s) for s in own.values()}
        signal.set_wakeup_fd(-1)
        for signum in _MASTER_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(signum, signal.SIG_IGN)
        # Another slot's socket left open here would keep that socket's queue alive after
        # the master lets it go, with nobody accepting from it.
        maps = [self.listeners.current, gen.sockets]
        if self.pending is not None:
            maps.append(self.pending.sockets)
        for socks in (socks for m in maps for socks in m.values()):
            for sock in socks:
                if id(sock) not in keep:
                    sock.close()
        for proc in self.procs.values():
            if proc.ready_fd is not None:
                os.close(proc.ready_fd)
        assert self._selector is not None
        self._selector.close()
        os.close(self._wake[0])
        os.close(self._wake[1])
        os.close(self._lifeline[1])
        plan = WorkerPlan(self.config_path, self.defines, self.server_root, gen.config, own,
                          ready_fd, self._lifeline[0], gen.scoreboard, slot)
        return run_worker(plan)

    # -- health checks ----------------------------------------------------------------------
    def _health_follow(self, gen: Generation) -> None:
        """Point the master's health checker at the serving generation's board (it starts
        on the first generation that checks a member). Its thread never forks: a worker
        forked while a check is in flight inherits that socket's descriptor, harmlessly."""
        if gen.scoreboard is None:
            return
        try:
            self._health.follow(gen.config, gen.scoreboard)
        except (TimeoutError, RuntimeError, OSError) as exc:
            log.error("health checks could not follow generation %d: %s", gen.number, exc)

    def _health_stop(self) -> None:
        try:
            self._health.stop()
        except (TimeoutError, RuntimeError) as exc:
            log.error("health checker did not stop cleanly: %s", exc)

    # -- master-side files ----------------------------------------------------------------------
    def _apply_logging(self, config: ServerConfig) -> None:
        setup_error_log(config.error_log, config.log_level, config.module_log_levels,
                        config.server_root, host_error_logs(config))


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _nonblocking_pipe() -> tuple[int, int]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


# -- the worker side ----------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkerPlan:
    """What a forked worker needs: its config, its sockets and its two pipes to the master."""

    config_path: str
    defines: tuple[str, ...]
    server_root: str | None
    config: ServerConfig
    sockets: dict[ListenAddress, socket.socket]
    ready_fd: int       # write end: b"R" once the listeners accept, or b"E" + why not
    lifeline_fd: int    # read end: EOF means the master is gone
    scoreboard: Scoreboard | None = None
    lane: int = 0       # this worker's lane in the scoreboard (its slot number)


def run_worker(plan: WorkerPlan) -> int:
    """Serve ``plan`` on a fresh event loop until stopped; returns the exit code."""
    # The master's error-log handler was inherited; drop it without closing (closing a piped
    # log here would end the master's log program). ProxyServer sets up this process's own.
    logger = logging.getLogger("portico")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    runner: Callable[..., object] = asyncio.run if uvloop is None else uvloop.run
    try:
        runner(_serve_worker(plan))
    except (ConfigError, OSError, ValueError) as exc:
        # Before it is ready: a config or file the worker could not use. The master reports
        # it once (on stderr too, at startup) rather than once per worker.
        log.error("worker could not serve: %s", exc)
        with contextlib.suppress(OSError):
            os.write(plan.ready_fd, b"E" + str(exc).encode()[:_PIPE_MESSAGE])
        return 1
    return 0


async def _serve_worker(plan: WorkerPlan) -> None:
    loop = asyncio.get_running_loop()
    server = ProxyServer(plan.config_path, plan.defines, plan.server_root, standalone=False,
                         listen=plan.sockets.__getitem__, scoreboard=plan.scoreboard,
                         lane=plan.lane)
    loop.add_signal_handler(signal.SIGTERM, server.stop)
    loop.add_signal_handler(signal.SIGUSR2, server.retire)

    def master_gone() -> None:
        loop.remove_reader(plan.lifeline_fd)
        log.warning("the master process is gone: stopping")
        server.stop()

    loop.add_reader(plan.lifeline_fd, master_gone)
    serving = loop.create_task(server.run(plan.config))
    ready = loop.create_task(server.ready.wait())
    try:
        await asyncio.wait((serving, ready), return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            os.write(plan.ready_fd, b"R")
        await serving
    finally:
        ready.cancel()


def run_master(config_path: str, defines: Sequence[str] = (), server_root: str | None = None,
               workers: int | None = None) -> int:
    """``portico -f CONF``: load and check the config, then supervise workers until stopped.

    Returns the exit code; a config or bind error is printed to stderr (exit code 1).
    """
    master = Master(config_path, defines, server_root, workers)
    try:
        config = master.load_checked()
        return master.run(config)
    except ConfigError as exc:
        print(f"portico: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:  # an ErrorLog/PidFile that cannot be opened
        print(f"portico: {exc}", file=sys.stderr)
        return 1
