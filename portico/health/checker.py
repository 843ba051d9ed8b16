"""The health checker: one per server, writing results to the scoreboard (rule 10, §10.4).

Promises
--------
* Every balancer member whose hcmethod is not NONE gets one stored timer (an
  ``asyncio.TimerHandle``) that fires every hcinterval; at most one check per member is in
  flight, and at most ProxyHCTPsize checks (default 16; 0 means one at a time) run at once.
* A member with S (stopped) or D (disabled) is not checked while the flag is set: its timer
  keeps running, so a check happens within one interval of the flag being cleared.
* Each result is written with ``slot.record_health(ok, latency_ms, now)``; the checker is the
  only writer of pcount/fcount and of the C flag it sets. It never edits the member list.
* Hysteresis (consecutive results, see docs/compat.md "Health checks"): a member in service
  gets C after hcfails failures in a row; a member with C or E (down) gets both cleared after
  hcpasses passes in a row. Any opposite result restarts the count. Both transitions are
  logged with the reason ("member http://h:1 failed 3 checks: GET /status → 503").
* ``repoint(config, board)`` (a reload) cancels every timer and in-flight check, then
  follows the new config on the new board; members that stay keep their schedule.
* ``CheckerThread`` runs one checker on its own event loop in one background thread, for the
  synchronous master; ``slow_start_factor`` is the weight factor lbmethods may apply after a
  member returns to service (portico's ``hcslowstart``, beyond httpd).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_TPSIZE", "CheckerThread", "HealthChecker", "recovered_at", "slow_start_factor",
    "targets_for",
]

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from portico.config.model import ServerConfig, VirtualHost, WorkerSpec
from portico.health.probes import ProbeResult, ProbeTarget, probe
from portico.state.flags import Status
from portico.state.scoreboard import Scoreboard, WorkerSlot

log = logging.getLogger("portico.health")

DEFAULT_TPSIZE = 16
_DOWN = int(Status.HCFAIL | Status.ERROR)
_NOT_CHECKED = int(Status.STOPPED | Status.DISABLED)
_MIN_FACTOR = 0.05          # slow start never gives a member zero weight
_STOP_WAIT = 5.0            # seconds CheckerThread waits for its loop to stop


def targets_for(config: ServerConfig) -> list[tuple[WorkerSpec, ProbeTarget]]:
    """The checked members of ``config``: balancer members with an hcmethod, config order."""
    out = []
    for spec in config.workers.values():
        if spec.balancer is None or spec.params.hcmethod.upper() in ("", "NONE"):
            continue
        out.append((spec, ProbeTarget.from_spec(spec, config)))
    return out


@dataclass(eq=False)
class _Member:
    """One checked member: its probe, its record and its stored timer."""

    spec: WorkerSpec
    target: ProbeTarget
    slot: WorkerSlot
    due: float                                  # loop time of the next check
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = None
    ramp_start: float = 0.0                     # wall time the slow-start ramp began
    ramp_timer: asyncio.TimerHandle | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec.balancer or "", self.spec.name)


class HealthChecker:
    """Checks the members of one config against one scoreboard (see the module docstring).

    Runs on the event loop that calls ``start``; ``close`` cancels everything it started.
    ``clock`` gives the wall time written to the scoreboard.
    """

    def __init__(self, config: ServerConfig, board: Scoreboard,
                 clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._members: dict[tuple[str, str], _Member] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sem = asyncio.Semaphore(DEFAULT_TPSIZE)
        self._closed = False
        self._config = config
        self._board = board
        self.checks = 0                         # checks run so far (for tests and metrics)

    @property
    def members(self) -> tuple[str, ...]:
        """Names of the members being checked."""
        return tuple(m.spec.name for m in self._members.values())

    def start(self) -> None:
        """Arm a timer per checked member; the first checks run at once."""
        self._loop = asyncio.get_running_loop()
        self._install(self._config, self._board, {})

    def repoint(self, config: ServerConfig, board: Scoreboard) -> None:
        """Follow a new config and board (a reload); unchanged members keep their schedule."""
        previous = {key: m.due for key, m in self._members.items()}
        self._cancel_all()
        self._config, self._board = config, board
        if self._loop is not None and not self._closed:
            self._install(config, board, previous)

    def close(self) -> None:
        """Cancel every timer and in-flight check; nothing is written afterwards."""
        self._closed = True
        self._cancel_all()

    # -- scheduling -------------------------------------------------------------------------
    def _install(self, config: ServerConfig, board: Scoreboard,
                 previous: dict[tuple[str, str], float]) -> None:
        assert self._loop is not None
        size = getattr(config, "hc_tpsize", DEFAULT_TPSIZE)
        self._sem = asyncio.Semaphore(max(1, int(size if size is not None else DEFAULT_TPSIZE)))
        now = self._loop.time()
        for spec, target in targets_for(config):
            try:
                slot = board.worker(spec.name, spec.balancer)
            except KeyError:
                log.error("health check: member %s of %s has no scoreboard record",
                          spec.name, spec.balancer)
                continue
            member = _Member(spec, target, slot, now)
            member.due = min(previous.get(member.key, now), now + spec.params.hcinterval)
            self._members[member.key] = member
            self._arm(member)

    def _arm(self, member: _Member) -> None:
        assert self._loop is not None
        member.timer = self._loop.call_at(member.due, self._fire, member)

    def _fire(self, member: _Member) -> None:
        member.timer = None
        if self._closed or self._members.get(member.key) is not member:
            return
        assert self._loop is not None
        member.task = self._loop.create_task(self._run(member))

    async def _run(self, member: _Member) -> None:
        assert self._loop is not None
        started = self._loop.time()
        try:
            if not member.slot.status & _NOT_CHECKED:
                async with self._sem:
                    result = await probe(member.target)
                if not self._closed and self._members.get(member.key) is member:
                    self.checks += 1
                    self.apply(member.spec, member.slot, result, member.target.vhost)
        finally:
            member.task = None
            if not self._closed and self._members.get(member.key) is member:
                # The period is measured from the start of a check, as hcinterval promises;
                # a check that overran its period is followed by the next one at once.
                member.due = max(started + member.spec.params.hcinterval, self._loop.time())
                self._arm(member)

    # -- slow start ---------------------------------------------------------------------------
    def _begin_ramp(self, spec: WorkerSpec) -> None:
        """Slow start: the member's weight climbs from 5% to its loadfactor over hcslowstart
        seconds. The checker owns the ramp and writes the weight into the scoreboard, so every
        lbmethod in every process sees it without knowing about slow start."""
        member = self._members.get((spec.balancer or "", spec.name))
        if member is None or self._loop is None:
            return
        if member.ramp_timer is not None:
            member.ramp_timer.cancel()
        member.ramp_start = self._clock()
        self._ramp_step(member)

    def _ramp_step(self, member: _Member) -> None:
        member.ramp_timer = None
        params = member.spec.params
        window, target = params.hcslowstart, params.loadfactor
        elapsed = self._clock() - member.ramp_start
        if self._closed or elapsed >= window or not member.slot.usable:
            member.slot.lbfactor = target
            return
        member.slot.lbfactor = max(1, round(target * max(_MIN_FACTOR, elapsed / window)))
        assert self._loop is not None
        member.ramp_timer = self._loop.call_later(max(0.2, window / 20), self._ramp_step,
                                                  member)

    def _cancel_all(self) -> None:
        for member in self._members.values():
            if member.ramp_timer is not None:
                member.ramp_timer.cancel()
                member.ramp_timer = None
                member.slot.lbfactor = member.spec.params.loadfactor
            if member.timer is not None:
                member.timer.cancel()
                member.timer = None
            if member.task is not None:
                member.task.cancel()
                member.task = None
        self._members.clear()

    # -- the state machine ------------------------------------------------------------------
    def apply(self, spec: WorkerSpec, slot: WorkerSlot, result: ProbeResult,
              vhost: VirtualHost | None = None) -> None:
        """Record ``result`` for member ``spec`` and step its hysteresis (§10.4);
        transitions are logged to ``vhost``'s error log when it has one (the host that
        defines the member's balancer), as httpd does."""
        slot.record_health(result.ok, result.latency_ms, self._clock())
        passes, fails = spec.params.hcpasses, spec.params.hcfails
        if slot.status & _DOWN:
            if not result.ok:
                slot.pcount = 0
                slot.fcount = slot.fcount + 1
                return
            slot.fcount = 0
            slot.pcount = slot.pcount + 1
            if slot.pcount >= passes:
                count = slot.pcount
                slot.pcount = 0
                slot.clear_flags(_DOWN)
                log.warning("member %s of %s passed %d check%s: back in service (%s)",
                            spec.name, spec.balancer, count, "" if count == 1 else "s",
                            result.reason, extra={"vhost": vhost})
                if spec.params.hcslowstart > 0:
                    self._begin_ramp(spec)
            return
        slot.pcount = 0
        if result.ok:
            slot.fcount = 0
            return
        slot.fcount = slot.fcount + 1
        if slot.fcount >= fails:
            count = slot.fcount
            slot.fcount = 0
            slot.set_flags(Status.HCFAIL)
            log.warning("member %s of %s failed %d check%s: %s", spec.name, spec.balancer,
                        count, "" if count == 1 else "s", result.reason,
                        extra={"vhost": vhost})


# -- running it in the (synchronous) master ---------------------------------------------------

class CheckerThread:
    """One ``HealthChecker`` on its own event loop in one background thread.

    ``follow(config, board)`` starts it (only when the config checks any member) or
    re-points it, returning once the checker uses the new board; ``stop()`` cancels every
    timer, stops the loop and joins the thread. Methods are for the owning thread only.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._checker: HealthChecker | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def follow(self, config: ServerConfig, board: Scoreboard, wait: float = _STOP_WAIT) -> None:
        if self._thread is None:
            if not targets_for(config):
                return                    # no thread in the master unless it has work
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever,
                                            name="portico-health", daemon=True)
            self._thread.start()
        self._call(self._follow, config, board, wait)

    def stop(self, wait: float = _STOP_WAIT) -> None:
        if self._thread is None or self._loop is None:
            return
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            self._call(self._close, wait=wait)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(wait)
        if not self._thread.is_alive():
            self._loop.close()
        self._thread = None
        self._loop = None

    def _call(self, fn: Callable[..., None], *args: object, wait: float = _STOP_WAIT) -> None:
        assert self._loop is not None

        async def call() -> None:
            fn(*args)

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(wait)

    def _follow(self, config: ServerConfig, board: Scoreboard, _wait: float) -> None:
        if self._checker is None:
            self._checker = HealthChecker(config, board)
            self._checker.start()
        else:
            self._checker.repoint(config, board)

    def _close(self) -> None:
        if self._checker is not None:
            self._checker.close()


# -- slow start (beyond httpd) ----------------------------------------------------------------

def recovered_at(slot: WorkerSlot, fails: int = 1) -> float | None:
    """When the member last came back from a failed health state, or None if it did not
    within its recorded history.

    Reads the scoreboard field ``hc_recovered`` when the layout has one; otherwise the
    health ring: the start of the current run of passes, provided the run before it holds at
    least ``max(fails, 1)`` failures (a shorter run never took the member out of service).
    """
    stored = getattr(slot, "hc_recovered", None)
    if stored is not None:
        return float(stored) or None
    history = slot.health_history()
    n = len(history)
    start = n
    while start > 0 and history[start - 1][1]:
        start -= 1
    if start in (0, n):
        return None                       # no failure recorded, or failing right now
    failed = 0
    while start - failed > 0 and not history[start - failed - 1][1]:
        failed += 1
    if failed < max(fails, 1):
        return None
    return history[start][0]


def slow_start_factor(slot: WorkerSlot, now: float, window: float, fails: int = 1) -> float:
    """A weight multiplier in (0, 1] for a member that recently returned to service.

    It rises linearly from ``_MIN_FACTOR`` to 1 over ``window`` seconds after the recovery
    (``recovered_at``), and is 1 when ``window`` <= 0, when the member is unusable (the
    walk excludes it anyway) or when no recovery is on record.
    """
    if window <= 0 or not slot.usable:
        return 1.0
    since = recovered_at(slot, fails)
    if since is None:
        return 1.0
    elapsed = now - since
    if elapsed >= window:
        return 1.0
    return max(_MIN_FACTOR, elapsed / window)
