"""The scoreboard: runtime state of backend workers, balancers and serving processes, in
shared memory so that every serving process sees and updates the same numbers (rule 11).

Promises
--------
* ``Scoreboard.create`` (in the master, *before* forking) maps one anonymous shared region;
  forked processes inherit it and the locks. With ``path=`` the region is a file instead, which
  other programs can open with ``Scoreboard.attach`` (read-mostly: no locks there).
* The region starts with a versioned header (magic, layout version, a fingerprint of every
  field offset, record sizes, generation). A region written by another layout raises
  ``LayoutMismatch`` rather than being misread.
* Record fields have fixed offsets (``layout``); reads and writes go through typed
  ``memoryview`` casts: no pickling, no ``struct`` on the hot path.
* Counters every request touches (busy, elected, requests, errors, transferred, read, and
  the request-duration histogram: one counter per bucket of ``layout.LATENCY_BOUNDS`` plus
  +Inf, and a sum in microseconds) never lose an update across processes (see "How it
  works").
* ``lbstatus`` read-modify-writes are exact when done inside ``sb.lock(balancer)``; flag and
  setting edits are exact because they take the board's edit lock themselves.

Using it (the process model's side)
-----------------------------------
* Master, per config generation: ``sb = Scoreboard.create(standalone, {balancer: members},
  processes=N, growth=…, generation=g)``; on a reload also ``sb.migrate_from(old_sb)``; set
  config flags/settings (``slot.status = apply_letters(Status.INIT, set, clear)``, lbfactor,
  route, balancer settings); then fork.
* Serving process i of that generation, right after fork: ``sb.bind(i)`` (its lane, its
  process record), ``sb.process(i).state = ProcState.SERVING`` once listening, DRAINING when
  retiring.
* Master, when process i exits: ``sb.release_lane(i, pid)`` *before* forking its
  replacement. When the whole old generation is gone: ``old_sb.close()``.

How it works (no lost updates without an atomic add)
----------------------------------------------------
Python cannot do an atomic add on shared memory: ``x += 1`` is a load and a store, and two
processes interleaving them lose one increment. Two techniques avoid that:

1. **Lanes.** Each serving process owns a *lane*: its own block of counters, one entry per
   worker. Only that process ever writes its lane (``sb.bind(index)`` after fork picks it), so
   a load/store pair cannot race with anyone. A read sums the lanes (plus a per-worker
   ``carry``, see below). Naturally aligned 8-byte stores are single instructions on the
   platforms we run on, so a reader sees either the old or the new value, never a torn one.
   A reset or a reload cannot zero another process's lane, so it moves the worker's
   ``carry`` instead: ``value = carry + Σ lanes``; a reset sets ``carry = -Σ lanes``, a
   reload migration sets ``carry = old value``. When a process dies, the master calls
   ``release_lane``: its ``busy`` entries go back to zero (so in-flight requests of a killed
   process do not stay "busy" forever, the drift httpd's busy counter is known for) and its
   per-process totals move into the header's ``retired_*`` counters.
2. **Locks.** Shared fields that are read-modified-written by several processes (lbstatus,
   status flags, manager settings) are changed under a lock: one per balancer for the
   lbmethod's selection (as httpd's per-balancer mutex) and one "edit" lock for flags and
   settings. Locks are ``multiprocessing`` (fork context) semaphores created before fork.
   A process killed while holding one would block everyone forever, so the holder's pid is
   stored next to each lock and ``release_lane(index, pid)`` releases what a dead pid held
   (lock order: a balancer lock may be held while taking the edit lock, never the reverse).
   Health results have one writer (the master's checker, rule 10) and take no lock.

Measured costs (``bench/scoreboard_bench.py``, this shared 2-core machine, best of 3, ns per
op, 2 and 8 lanes alike unless noted): shared field read ~70-100; field write ~80;
``lbstatus +=`` ~150-180; lane add (``add_busy``) ~110; ``begin()`` ~160; ``end(sent,
read)`` ~330; ``observe_latency(s)`` ~300-340 (a bisect ~60, ``int(s*1e6)`` ~60, two lane
adds; about one ``end``); ``latency()`` (13 lane sums, a metrics scrape's cost per member)
~3 µs; lane-summed read (``busy``) ~230 with 2 lanes, ~270 with 8; ``sb.worker()``
lookup ~160; balancer lock acquire+release (``with sb.lock(b)``) ~250; a whole byrequests
pick over 4 members with begin/end ~2.8-4 µs; ``set_flags`` or ``clear_flags`` (edit lock,
timestamp, counters) ~2.2 µs each, an error-path cost. An fcntl byte-range lock (the
kernel frees it when its holder dies, which is why it was considered) costs ~1,400 per
acquire+release pair, 5-6x the semaphore on a lock taken for every balanced request, so the
semaphore plus pid-based repair won.
"""

from __future__ import annotations

__all__ = [
    "KEPT_FLAGS", "BalancerSlot", "ProcState", "ProcessSlot", "Scoreboard", "SharedLock",
    "WorkerSlot",
]

import enum
import mmap
import multiprocessing
import os
import struct
import time
import uuid
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from portico.state import layout as L
from portico.state.flags import (
    CONFIG_LETTERS,
    Status,
    from_letters,
    is_usable,
    status_string,
    to_letters,
)

#: Status bits ``migrate_from`` copies by default: every letter a config or manager sets.
KEPT_FLAGS = int(from_letters(CONFIG_LETTERS))

_RING = struct.Struct("ddq")            # one health result: time, latency_ms, ok
_NO_LOCK_WAIT = 0.05                    # seconds; see SharedLock.repair


class ProcState(enum.IntEnum):
    """Lifecycle of a serving-process slot (``.`` S _ G in server-status terms)."""

    FREE = 0
    STARTING = 1
    SERVING = 2
    DRAINING = 3
    GONE = 4


class _Views:
    """Typed views over one region; every slot of a board shares them."""

    __slots__ = ("d", "i", "q", "raw", "u")

    def __init__(self, buf: mmap.mmap) -> None:
        self.raw = memoryview(buf)
        self.q = self.raw.cast("q")
        self.d = self.raw.cast("d")
        self.u = self.raw.cast("I")
        self.i = self.raw.cast("i")

    def release(self) -> None:
        for view in (self.q, self.d, self.u, self.i, self.raw):
            view.release()


# -- field accessors (built once; each property reads one typed view at a fixed index) ----------

def _q_field(rec: L.Record, name: str, doc: str, writable: bool = True) -> property:
    k = rec.offset(name) // 8

    def get(self: Any) -> int:
        return self._v.q[self._b8 + k]

    def put(self: Any, value: int) -> None:
        self._v.q[self._b8 + k] = value

    return property(get, put if writable else None, doc=doc)


def _d_field(rec: L.Record, name: str, doc: str) -> property:
    k = rec.offset(name) // 8

    def get(self: Any) -> float:
        return self._v.d[self._b8 + k]

    def put(self: Any, value: float) -> None:
        self._v.d[self._b8 + k] = value

    return property(get, put, doc=doc)


def _u_field(rec: L.Record, name: str, doc: str, signed: bool = False) -> property:
    k = rec.offset(name) // 4
    attr = "i" if signed else "u"

    def get(self: Any) -> int:
        return getattr(self._v, attr)[self._b4 + k]

    def put(self: Any, value: int) -> None:
        getattr(self._v, attr)[self._b4 + k] = value

    return property(get, put, doc=doc)


def _setting(rec: L.Record, name: str, doc: str, kind: str = "u") -> property:
    """A field the manager edits: a write takes the edit lock and bumps the edit counters."""
    k = rec.offset(name) // 4

    def get(self: Any) -> int:
        return getattr(self._v, kind)[self._b4 + k]

    def put(self: Any, value: int) -> None:
        with self._board._edit_lock():
            getattr(self._v, kind)[self._b4 + k] = value
            self._touch()

    return property(get, put, doc=doc)


def _str_field(rec: L.Record, name: str, limit: int, doc: str, edit: bool = True) -> property:
    off = rec.offset(name)

    def get(self: Any) -> str:
        return L.read_str(self._v.raw, self._base + off, limit)

    def put(self: Any, value: str) -> None:
        if not edit:
            L.write_str(self._v.raw, self._base + off, limit, value, name)
            return
        with self._board._edit_lock():
            L.write_str(self._v.raw, self._base + off, limit, value, name)
            self._touch()

    return property(get, put, doc=doc)


def _lane_sum(index: int) -> property:
    name = L.LANE_COUNTERS[index]

    def get(self: Any) -> int:
        q = self._v.q
        return q[self._carry + index] + sum(q[self._lane0 + index:self._lane_end:self._stride])

    return property(get, doc=f"{name}: the carry plus every process's lane (read-only).")


class _Slot:
    __slots__ = ("_b4", "_b8", "_base", "_board", "_v", "index")

    def __init__(self, board: Scoreboard, index: int, base: int) -> None:
        self._board = board
        self._v = board._v
        self.index = index
        self._base = base
        self._b8 = base // 8
        self._b4 = base // 4


class WorkerSlot(_Slot):
    """One backend worker's shared record.

    Plain attributes read and write shared memory directly. Counters summed over lanes
    (``busy``, ``elected``, ``requests``, ``errors``, ``transferred``, ``read``) are read-only
    properties; the owning process changes them with the ``add_*``/``begin``/``end`` methods
    (and the duration histogram with ``observe_latency``, read with ``latency``), which need
    ``sb.bind(index)`` to have chosen this process's lane. ``lbstatus`` changes
    belong inside ``sb.lock(balancer)``.
    """

    __slots__ = ("_carry", "_lane0", "_lane_end", "_mine", "_stride")

    def __init__(self, board: Scoreboard, index: int, base: int) -> None:
        super().__init__(board, index, base)
        self._carry = (base + L.WORKER.offset("carry_busy")) // 8
        self._stride = board._lane_block // 8
        self._lane0 = (board._lanes_at + index * L.LANE.size) // 8
        self._lane_end = self._lane0 + board.processes * self._stride
        self._mine = -1
        self._rebind(board._lane)

    def _rebind(self, lane: int | None) -> None:
        self._mine = -1 if lane is None else self._lane0 + lane * self._stride

    def _touch(self) -> None:
        """Record an edit (caller holds the edit lock): bump counters, stamp the time."""
        v, k = self._v, self._b4 + _W_EDITS
        v.u[k] = (v.u[k] + 1) & 0xFFFFFFFF
        v.d[self._b8 + _W_UPDATED] = time.time()
        self._board._bump_edits()

    # shared, single values
    status = _setting(L.WORKER, "status", "Status bits (flags.Status); a write is an edit.")
    lbfactor = _setting(L.WORKER, "lbfactor", "Load factor x 100.", "i")
    lbset = _setting(L.WORKER, "lbset", "Member set (lower sets are tried first).", "i")
    route = _str_field(L.WORKER, "route", L.MAX_ROUTE, "Sticky route (< 64 bytes).")
    redirect = _str_field(L.WORKER, "redirect", L.MAX_ROUTE, "Route redirect (< 64 bytes).")
    lbstatus = _q_field(L.WORKER, "lbstatus", "lbmethod score; change under sb.lock(balancer).")
    error_time = _d_field(L.WORKER, "error_time", "time.time() of the last error, 0 if none.")
    retries = _u_field(L.WORKER, "retries", "Times the worker was retried out of E.")
    pcount = _u_field(L.WORKER, "pcount", "Consecutive passed health checks.")
    fcount = _u_field(L.WORKER, "fcount", "Consecutive failed health checks.")
    hc_last_time = _d_field(L.WORKER, "hc_last_time", "time.time() of the last health check.")
    updated = _d_field(L.WORKER, "updated", "time.time() of the last edit.")
    edits = _u_field(L.WORKER, "edits", "Edits so far (u32, wraps); compare to notice one.")

    # lane sums
    busy = _lane_sum(0)
    elected = _lane_sum(1)
    requests = _lane_sum(2)
    errors = _lane_sum(3)
    transferred = _lane_sum(4)
    read = _lane_sum(5)

    @property
    def name(self) -> str:
        return L.read_str(self._v.raw, self._base + _W_NAME, L.MAX_WORKER_NAME)

    @property
    def balancer(self) -> str | None:
        """The balancer this record is a member (or growth slot) of, None if standalone."""
        b = self._v.i[self._b4 + _W_BALANCER]
        return None if b < 0 else self._board._balancer_slot(b).name

    @property
    def free(self) -> bool:
        return bool(self._v.u[self._b4 + _W_STATUS] & Status.FREE)

    @property
    def usable(self) -> bool:
        return is_usable(self._v.u[self._b4 + _W_STATUS])

    def set_flags(self, bits: int) -> None:
        """Set status bits (an exact read-modify-write under the edit lock)."""
        with self._board._edit_lock():
            k = self._b4 + _W_STATUS
            self._v.u[k] |= bits
            self._touch()

    def clear_flags(self, bits: int) -> None:
        """Clear status bits (an exact read-modify-write under the edit lock)."""
        with self._board._edit_lock():
            k = self._b4 + _W_STATUS
            self._v.u[k] &= ~bits & 0xFFFFFFFF
            self._touch()

    # hot path: this process's lane only
    def add_busy(self, n: int = 1) -> None:
        self._v.q[self._own()] += n

    def add_elected(self, n: int = 1) -> None:
        self._v.q[self._own() + 1] += n

    def add_errors(self, n: int = 1) -> None:
        self._v.q[self._own() + 3] += n

    def add_transferred(self, n: int) -> None:
        self._v.q[self._own() + 4] += n

    def add_read(self, n: int) -> None:
        self._v.q[self._own() + 5] += n

    def begin(self) -> None:
        """The worker was chosen for a request: elected += 1, busy += 1."""
        q, k = self._v.q, self._own()
        q[k] += 1
        q[k + 1] += 1

    def end(self, transferred: int = 0, read: int = 0, error: bool = False) -> None:
        """The request finished: busy -= 1, requests += 1, bytes added, errors += error."""
        q, k = self._v.q, self._own()
        q[k] -= 1
        q[k + 2] += 1
        if error:
            q[k + 3] += 1
        if transferred:
            q[k + 4] += transferred
        if read:
            q[k + 5] += read

    def finish(self, transferred: int, read: int, seconds: float) -> None:
        """``end(transferred, read)`` and ``observe_latency(seconds)`` in one call: the
        common end of a proxied request (no error, a whole response)."""
        q, k = self._v.q, self._own()
        q[k] -= 1
        q[k + 2] += 1
        q[k + 4] += transferred
        q[k + 5] += read
        if seconds < 0.0:
            seconds = 0.0
        q[k + _LAT0 + bisect_left(_BOUNDS, seconds)] += 1
        q[k + _LAT_SUM] += int(seconds * 1e6)

    def observe_latency(self, seconds: float) -> None:
        """Count one request that took ``seconds`` (sent to end of response) in the
        duration histogram: the bucket of the first bound >= ``seconds`` (+Inf above the
        last), and the sum (whole microseconds, a negative duration counts as 0)."""
        # Hot path: one bisect over a module-level tuple, two adds to this process's lane.
        k = self._mine
        if k < 0:
            self._own()
        if seconds < 0.0:
            seconds = 0.0
        q = self._v.q
        q[k + _LAT0 + bisect_left(_BOUNDS, seconds)] += 1
        q[k + _LAT_SUM] += int(seconds * 1e6)

    def latency(self) -> tuple[list[int], float]:
        """The duration histogram summed over lanes: (per-bucket counts, one per
        ``layout.LATENCY_BOUNDS`` entry then +Inf, *not* cumulative; sum in seconds).
        The count of observations is ``sum(counts)``. Each counter is read once, so the
        counts agree with each other, though another process may add meanwhile."""
        counts = [self._counter(n) for n in range(_LAT0, _LAT0 + len(_BOUNDS) + 1)]
        return counts, self._counter(_LAT_SUM) / 1e6

    def _counter(self, index: int) -> int:
        """Lane counter ``index`` (LANE_COUNTERS order): carry plus every lane."""
        q = self._v.q
        return q[self._carry + index] + sum(q[self._lane0 + index:self._lane_end:self._stride])

    def _own(self) -> int:
        if self._mine < 0:
            raise RuntimeError("this process has no lane: call Scoreboard.bind(index) first")
        return self._mine

    def reset_counters(self, *names: str) -> None:
        """Make the named lane counters read 0 from now on (not ``busy``: it is exact).

        Used for an lbmethod change or a re-enable (bytraffic's transferred/read, …). Names
        are ``layout.LANE_COUNTERS``; ``"latency"`` stands for every histogram counter.
        """
        with self._board._edit_lock():
            expanded = [n for name in names
                        for n in (_LATENCY_NAMES if name == "latency" else (name,))]
            for name in expanded:
                index = L.LANE_COUNTERS.index(name)
                if index == 0:
                    raise ValueError("busy counts requests in flight and is never reset")
                q = self._v.q
                q[self._carry + index] = -sum(
                    q[self._lane0 + index:self._lane_end:self._stride])

    # health (one writer: the checker in the master)
    @property
    def hc_last(self) -> bool | None:
        """Result of the last health check; None before the first one."""
        v = self._v.i[self._b4 + _W_HC_LAST]
        return None if v < 0 else bool(v)

    def record_health(self, ok: bool, latency_ms: float, when: float | None = None) -> None:
        """Append a result to the ring and set ``hc_last``/``hc_last_time``.

        pcount/fcount (the hysteresis) are the checker's to keep; this only stores.
        """
        when = time.time() if when is None else when
        u, b4 = self._v.u, self._b4
        head = u[b4 + _W_HC_HEAD] % L.HEALTH_RING
        _RING.pack_into(self._v.raw, self._base + _W_RING + head * _RING.size,
                        when, latency_ms, int(ok))
        u[b4 + _W_HC_HEAD] = (head + 1) % L.HEALTH_RING
        u[b4 + _W_HC_COUNT] = min(u[b4 + _W_HC_COUNT] + 1, L.HEALTH_RING)
        self._v.i[b4 + _W_HC_LAST] = int(ok)
        self.hc_last_time = when

    def health_history(self) -> list[tuple[float, bool, float]]:
        """Recent results, oldest first: (time, ok, latency_ms); at most HEALTH_RING."""
        u, b4 = self._v.u, self._b4
        count, head = u[b4 + _W_HC_COUNT], u[b4 + _W_HC_HEAD]
        out = []
        for n in range(count):
            pos = (head - count + n) % L.HEALTH_RING
            when, latency, ok = _RING.unpack_from(
                self._v.raw, self._base + _W_RING + pos * _RING.size)
            out.append((when, bool(ok), latency))
        return out

    def snapshot(self) -> dict[str, Any]:
        """JSON-able view of every field (counters summed)."""
        status = self.status
        last = self.hc_last
        return {
            "name": self.name, "balancer": self.balancer, "status": status,
            "flags": to_letters(status), "status_string": status_string(status),
            "lbfactor": self.lbfactor, "lbset": self.lbset, "lbstatus": self.lbstatus,
            "elected": self.elected, "busy": self.busy, "requests": self.requests,
            "errors": self.errors, "transferred": self.transferred, "read": self.read,
            "error_time": self.error_time, "retries": self.retries, "route": self.route,
            "redirect": self.redirect, "updated": self.updated, "edits": self.edits,
            "latency": _latency_snapshot(*self.latency()),
            "health": {
                "pcount": self.pcount, "fcount": self.fcount, "last_ok": last,
                "last_time": self.hc_last_time,
                "history": [{"time": t, "ok": ok, "latency_ms": ms}
                            for t, ok, ms in self.health_history()],
            },
        }

    def _copy_state(self, old: WorkerSlot, keep_flags: int, settings: bool) -> None:
        """Reload migration (caller holds the edit lock of this board)."""
        v, b4, b8 = self._v, self._b4, self._b8
        mine = v.u[b4 + _W_STATUS]
        v.u[b4 + _W_STATUS] = (mine & ~keep_flags) | (old.status & keep_flags)
        v.q[b8 + _W_LBSTATUS] = old.lbstatus
        v.d[b8 + _W_ERROR_TIME] = old.error_time
        for name, dst in (("retries", b4 + _W_RETRIES), ("pcount", b4 + _W_PCOUNT),
                          ("fcount", b4 + _W_FCOUNT), ("hc_head", b4 + _W_HC_HEAD),
                          ("hc_count", b4 + _W_HC_COUNT)):
            v.u[dst] = old._v.u[old._b4 + L.WORKER.offset(name) // 4]
        v.i[b4 + _W_HC_LAST] = old._v.i[old._b4 + _W_HC_LAST]
        v.d[b8 + _W_HC_LAST_TIME] = old.hc_last_time
        ring = slice(self._base + _W_RING, self._base + _W_RING + L.HEALTH_RING * _RING.size)
        old_ring = slice(old._base + _W_RING, old._base + _W_RING + L.HEALTH_RING * _RING.size)
        v.raw[ring] = old._v.raw[old_ring]
        lanes_now = [sum(v.q[self._lane0 + n:self._lane_end:self._stride])
                     for n in range(len(L.LANE_COUNTERS))]
        olds = [old._counter(n) for n in range(len(L.LANE_COUNTERS))]
        for n in range(1, len(L.LANE_COUNTERS)):
            v.q[self._carry + n] = olds[n] - lanes_now[n]
        if settings:
            v.i[b4 + _W_LBFACTOR] = old.lbfactor
            v.i[b4 + _W_LBSET] = old.lbset
            L.write_str(v.raw, self._base + _W_ROUTE, L.MAX_ROUTE, old.route, "route")
            L.write_str(v.raw, self._base + _W_REDIRECT, L.MAX_ROUTE, old.redirect, "redirect")
        self._touch()


_W = L.WORKER.fields
_W_STATUS = _W["status"].offset // 4
_W_BALANCER = _W["balancer"].offset // 4
_W_LBFACTOR = _W["lbfactor"].offset // 4
_W_LBSET = _W["lbset"].offset // 4
_W_RETRIES = _W["retries"].offset // 4
_W_PCOUNT = _W["pcount"].offset // 4
_W_FCOUNT = _W["fcount"].offset // 4
_W_HC_LAST = _W["hc_last"].offset // 4
_W_HC_HEAD = _W["hc_head"].offset // 4
_W_HC_COUNT = _W["hc_count"].offset // 4
_W_EDITS = _W["edits"].offset // 4
_W_LBSTATUS = _W["lbstatus"].offset // 8
_W_ERROR_TIME = _W["error_time"].offset // 8
_W_HC_LAST_TIME = _W["hc_last_time"].offset // 8
_W_UPDATED = _W["updated"].offset // 8
_W_RING = _W["hc_ring"].offset
_W_NAME = _W["name"].offset
_W_ROUTE = _W["route"].offset
_W_REDIRECT = _W["redirect"].offset

_BOUNDS = L.LATENCY_BOUNDS
_LAT0 = L.LANE_COUNTERS.index(L.LATENCY_BUCKETS[0])
_LAT_SUM = L.LANE_COUNTERS.index(L.LATENCY_SUM)
_LATENCY_NAMES = (*L.LATENCY_BUCKETS, L.LATENCY_SUM)


def _latency_snapshot(counts: list[int], total: float) -> dict[str, Any]:
    """JSON-able histogram: cumulative ``[le, count]`` pairs (le None for +Inf), sum, count."""
    running, buckets = 0, []
    for bound, n in zip((*_BOUNDS, None), counts, strict=True):
        running += n
        buckets.append([bound, running])
    return {"buckets": buckets, "sum_seconds": total, "count": running}


class BalancerSlot(_Slot):
    """One balancer's shared record: the settings the manager may edit, and its nonce."""

    __slots__ = ()

    def _touch(self) -> None:
        v, k = self._v, self._b4 + _B_EDITS
        v.u[k] = (v.u[k] + 1) & 0xFFFFFFFF
        v.d[self._b8 + _B_UPDATED] = time.time()
        self._board._bump_edits()

    lbmethod = _str_field(L.BALANCER, "lbmethod", L.MAX_LBMETHOD, "lbmethod name (≤ 16).")
    sticky = _str_field(L.BALANCER, "sticky", L.MAX_STICKY, "Sticky cookie name (< 64).")
    sticky_path = _str_field(L.BALANCER, "sticky_path", L.MAX_STICKY,
                             "Sticky URL-parameter name (< 64).")
    nonce = _str_field(L.BALANCER, "nonce", L.MAX_NONCE, "Manager nonce (≤ 36).")
    nofailover = _setting(L.BALANCER, "nofailover", "1 when failover is disabled.")
    forcerecovery = _setting(L.BALANCER, "forcerecovery", "1 to force recovery when all fail.")
    need_reset = _setting(L.BALANCER, "need_reset", "1 when the lbmethod state needs a reset.")
    maxattempts = _setting(L.BALANCER, "maxattempts", "Failover attempts.", "i")
    timeout = _d_field(L.BALANCER, "timeout", "Seconds to wait for a free member (0: none).")
    updated = _d_field(L.BALANCER, "updated", "time.time() of the last edit.")
    edits = _u_field(L.BALANCER, "edits", "Edits so far (u32, wraps).")
    max_members = _u_field(L.BALANCER, "max_members", "Configured members plus growth.")
    growth = _u_field(L.BALANCER, "growth", "Spare member slots reserved at creation.")
    growth_used = _u_field(L.BALANCER, "growth_used", "Spare slots taken by add_worker.")

    @property
    def name(self) -> str:
        return L.read_str(self._v.raw, self._base + _B_NAME, L.MAX_BALANCER_NAME)

    @property
    def sticky_sep(self) -> str:
        return chr(self._v.u[self._b4 + _B_SEP])

    @sticky_sep.setter
    def sticky_sep(self, value: str) -> None:
        if len(value) != 1:
            raise ValueError(f"stickysessionsep must be one character, not {value!r}")
        with self._board._edit_lock():
            self._v.u[self._b4 + _B_SEP] = ord(value)
            self._touch()

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name, "lbmethod": self.lbmethod, "sticky": self.sticky,
            "sticky_path": self.sticky_path, "sticky_sep": self.sticky_sep,
            "nofailover": bool(self.nofailover), "timeout": self.timeout,
            "maxattempts": self.maxattempts, "forcerecovery": bool(self.forcerecovery),
            "need_reset": bool(self.need_reset), "nonce": self.nonce,
            "max_members": self.max_members, "growth": self.growth,
            "growth_used": self.growth_used, "updated": self.updated, "edits": self.edits,
        }


_B = L.BALANCER.fields
_B_EDITS = _B["edits"].offset // 4
_B_SEP = _B["sticky_sep"].offset // 4
_B_FIRST = _B["first_worker"].offset // 4
_B_MAX = _B["max_members"].offset // 4
_B_GROWTH_USED = _B["growth_used"].offset // 4
_B_HOLDER = _B["lock_holder"].offset // 8
_B_UPDATED = _B["updated"].offset // 8
_B_NAME = _B["name"].offset


class ProcessSlot(_Slot):
    """One serving process's record. Written only by that process (and by the master
    before it starts or after it is gone), so plain ``+=`` is exact."""

    __slots__ = ()

    pid = _q_field(L.PROCESS, "pid", "Process id (0: never used).")
    generation = _q_field(L.PROCESS, "generation", "Config generation it serves.")
    requests = _q_field(L.PROCESS, "requests", "Requests served.")
    conns = _q_field(L.PROCESS, "conns", "Client connections open now.")
    conns_total = _q_field(L.PROCESS, "conns_total", "Client connections accepted.")
    bytes_in = _q_field(L.PROCESS, "bytes_in", "Bytes read from clients.")
    bytes_out = _q_field(L.PROCESS, "bytes_out", "Bytes written to clients.")
    start_time = _d_field(L.PROCESS, "start_time", "time.time() when it started.")
    updated = _d_field(L.PROCESS, "updated", "time.time() of the last state change.")

    @property
    def state(self) -> ProcState:
        return ProcState(self._v.q[self._b8 + _P_STATE])

    @state.setter
    def state(self, value: ProcState) -> None:
        self._v.q[self._b8 + _P_STATE] = int(value)
        self.updated = time.time()

    def add_request(self, bytes_in: int = 0, bytes_out: int = 0) -> None:
        """One request done: requests += 1 and the client byte counts."""
        q, b = self._v.q, self._b8
        q[b + _P_REQUESTS] += 1
        q[b + _P_BYTES_IN] += bytes_in
        q[b + _P_BYTES_OUT] += bytes_out

    def snapshot(self) -> dict[str, Any]:
        return {
            "index": self.index, "pid": self.pid, "generation": self.generation,
            "state": self.state.name.lower(), "requests": self.requests, "conns": self.conns,
            "conns_total": self.conns_total, "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out, "start_time": self.start_time,
        }


_P = L.PROCESS.fields
_P_STATE = _P["state"].offset // 8
_P_REQUESTS = _P["requests"].offset // 8
_P_BYTES_IN = _P["bytes_in"].offset // 8
_P_BYTES_OUT = _P["bytes_out"].offset // 8


class SharedLock:
    """A cross-process lock (a fork-inherited semaphore) that records its holder's pid.

    Use as ``with sb.lock(name): …`` around a critical section with no ``await`` in it.
    Not re-entrant. ``repair(pid)`` frees it when ``pid`` died while holding it.
    """

    __slots__ = ("_acquire", "_holder", "_pid", "_q", "_release", "_sem")

    def __init__(self, sem: Any, q: memoryview, holder: int, pid: int) -> None:
        self._sem = sem
        self._acquire = sem.acquire
        self._release = sem.release
        self._q = q
        self._holder = holder
        self._pid = pid

    def __enter__(self) -> SharedLock:
        self._acquire()
        self._q[self._holder] = self._pid
        return self

    def __exit__(self, *exc: object) -> None:
        self._q[self._holder] = 0
        self._release()

    @property
    def holder(self) -> int:
        """Pid of the process inside the lock, 0 if none (or one that just got it)."""
        return self._q[self._holder]

    def repair(self, dead_pid: int) -> bool:
        """Release the lock if ``dead_pid`` (a reaped process) held it; True if it did.

        A holder stores its pid right after acquiring. If the lock is taken and nobody is
        recorded for ``_NO_LOCK_WAIT`` seconds, the dead process was killed in between.
        """
        if self.holder == dead_pid:
            self._q[self._holder] = 0
            self._release()
            return True
        if self.holder != 0:
            return False
        if self._acquire(True, _NO_LOCK_WAIT):
            self._release()
            return False
        if self.holder == 0:
            self._release()
            return True
        return False


class _NoLock:
    def __enter__(self) -> None:
        raise RuntimeError("an attached scoreboard has no locks; edit it from the master")

    def __exit__(self, *exc: object) -> None:
        return None


class Scoreboard:
    """Shared runtime state for one config generation. See the module docstring."""

    def __init__(self, buf: mmap.mmap, path: str | None, locks: Sequence[Any] | None) -> None:
        self._buf = buf
        self.path = path
        raw = memoryview(buf)
        try:
            _check_header(raw, len(buf))
        finally:
            raw.release()
        self._v = _Views(buf)
        h = _Header(self._v)
        self.processes = h.u("n_processes")
        self._n_workers = h.u("n_workers")
        self._n_balancers = h.u("n_balancers")
        self._workers_at = h.q("workers_at")
        self._balancers_at = h.q("balancers_at")
        self._processes_at = h.q("processes_at")
        self._lanes_at = h.q("lanes_at")
        self._lane_block = _lane_block(self._n_workers)
        self._h = h
        self._lane: int | None = None
        self._pid = os.getpid()
        self._workers: dict[int, WorkerSlot] = {}
        self._balancers: dict[int, BalancerSlot] = {}
        self._index_version = -1
        self._index: dict[tuple[str, str], int] = {}
        self._bindex: dict[str, int] = {}
        self._members: dict[str, tuple[WorkerSlot, ...]] = {}
        self._locks: list[SharedLock] | None = None
        if locks is not None:
            holders = [h.index8("edit_holder")] + [
                (self._balancers_at + n * L.BALANCER.size) // 8 + _B_HOLDER
                for n in range(self._n_balancers)]
            self._locks = [SharedLock(sem, self._v.q, k, self._pid)
                           for sem, k in zip(locks, holders, strict=True)]
        self._refresh_index()

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def create(cls, workers: Iterable[str] = (),
               balancers: Mapping[str, Sequence[str]] | Iterable[str] = (),
               processes: int = 1, growth: int | Mapping[str, int] = 0, *,
               generation: int = 0, path: str | os.PathLike[str] | None = None) -> Scoreboard:
        """A new board: ``workers`` are standalone workers, ``balancers`` maps each balancer
        to its member names (a plain list means no members yet), ``processes`` is the number
        of lanes (serving processes), ``growth`` the spare member slots per balancer (one
        number for all or a mapping). Call in the master before forking.

        Every worker starts ``INIT`` with lbfactor 100; every balancer byrequests, sticky
        separator ``.`` and a fresh nonce. ValueError on a duplicate or too-long name.
        """
        standalone = list(workers)
        plan = dict(balancers) if isinstance(balancers, Mapping) else {b: () for b in balancers}
        if processes < 1:
            raise ValueError("a scoreboard needs at least one process lane")
        spare = {b: growth.get(b, 0) if isinstance(growth, Mapping) else growth for b in plan}
        if any(g < 0 for g in spare.values()):
            raise ValueError("growth must be >= 0")
        records: list[tuple[int, str | None]] = [(-1, w) for w in standalone]
        for b_index, (bname, members) in enumerate(plan.items()):
            records += [(b_index, m) for m in members]
            records += [(b_index, None)] * spare[bname]
        seen: set[tuple[int, str]] = set()
        for owner, name in records:
            if name is not None:
                if (owner, name) in seen:
                    raise ValueError(f"duplicate worker {name!r}")
                seen.add((owner, name))

        n_w, n_b = len(records), len(plan)
        workers_at = L.HEADER.size
        balancers_at = workers_at + n_w * L.WORKER.size
        processes_at = balancers_at + n_b * L.BALANCER.size
        lanes_at = processes_at + processes * L.PROCESS.size
        total = lanes_at + processes * _lane_block(n_w)

        fspath = os.fspath(path) if path is not None else None
        buf = _map(total, fspath)
        raw = memoryview(buf)
        try:
            hdr = L.HEADER.fields
            raw[0:8] = L.MAGIC
            for name, value in (("version", L.LAYOUT_VERSION), ("fingerprint", L.fingerprint()),
                                ("header_size", L.HEADER.size),
                                ("worker_size", L.WORKER.size),
                                ("balancer_size", L.BALANCER.size),
                                ("process_size", L.PROCESS.size),
                                ("lane_size", L.LANE.size), ("n_workers", n_w),
                                ("n_balancers", n_b), ("n_processes", processes)):
                struct.pack_into("I", raw, hdr[name].offset, value)
            for name, value in (("generation", generation), ("workers_at", workers_at),
                                ("balancers_at", balancers_at),
                                ("processes_at", processes_at), ("lanes_at", lanes_at),
                                ("total_size", total)):
                struct.pack_into("q", raw, hdr[name].offset, value)
            struct.pack_into("d", raw, hdr["created"].offset, time.time())
            first = len(standalone)
            for b_index, (bname, members) in enumerate(plan.items()):
                base = balancers_at + b_index * L.BALANCER.size
                _init_balancer(raw, base, bname, first, len(members), spare[bname])
                first += len(members) + spare[bname]
            for w_index, (owner, name) in enumerate(records):
                _init_worker(raw, workers_at + w_index * L.WORKER.size, owner, name)
        except BaseException:
            raw.release()
            buf.close()
            raise
        raw.release()
        ctx = multiprocessing.get_context("fork")
        return cls(buf, fspath, [ctx.Lock() for _ in range(1 + n_b)])

    @classmethod
    def attach(cls, path: str | os.PathLike[str]) -> Scoreboard:
        """Open a board another process created with ``path=``; LayoutMismatch if its header
        is not ours. The result has no locks: reads, and lane-free writes, only."""
        fd = os.open(os.fspath(path), os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size < L.HEADER.size:
                raise L.LayoutMismatch(f"{path}: {size} bytes is too small for a scoreboard")
            buf = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        try:
            return cls(buf, os.fspath(path), None)
        except BaseException:
            buf.close()
            raise

    def close(self) -> None:
        """Unmap (slots of this board become unusable). Other processes are unaffected."""
        self._workers.clear()
        self._balancers.clear()
        self._members.clear()
        self._v.release()
        self._buf.close()

    # -- header ---------------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self._h.q("generation")

    @property
    def edits(self) -> int:
        """Board-wide edit counter: any flag or setting change bumps it (cheap to poll)."""
        return self._h.q("edits")

    @property
    def lane(self) -> int | None:
        """This process's lane (``bind``), None in a process that has not bound one."""
        return self._lane

    def _bump_edits(self) -> None:
        k = self._h.index8("edits")
        self._v.q[k] += 1

    # -- lookup ---------------------------------------------------------------------------------
    def worker(self, name: str, balancer: str | None = None) -> WorkerSlot:
        """The record of worker ``name`` (a member of ``balancer``, or standalone).

        KeyError if there is none.
        """
        key = (balancer or "", name)
        index = self._index.get(key)
        if index is None and self._h.q("members_version") != self._index_version:
            self._refresh_index()                 # a member was added since we last looked
            index = self._index.get(key)
        if index is None:
            where = f" in {balancer}" if balancer else ""
            raise KeyError(f"no worker {name!r}{where} in the scoreboard")
        return self._worker_slot(index)

    def balancer(self, name: str) -> BalancerSlot:
        """The record of balancer ``name``; KeyError if there is none."""
        return self._balancer_slot(self._bindex[name])

    def members(self, balancer: str) -> tuple[WorkerSlot, ...]:
        """The balancer's members in config order, then the ones added later; cached until
        a member is added (one shared-memory read per call to check)."""
        if self._h.q("members_version") != self._index_version:
            self._refresh_index()
        members = self._members.get(balancer)
        if members is None:
            b = self.balancer(balancer)
            first, count = b._v.u[b._b4 + _B_FIRST], b._v.u[b._b4 + _B_MAX]
            members = tuple(s for s in map(self._worker_slot, range(first, first + count))
                            if not s.free)
            self._members[balancer] = members
        return members

    def workers(self) -> Iterator[WorkerSlot]:
        """Every record in use, standalone ones first."""
        for n in range(self._n_workers):
            slot = self._worker_slot(n)
            if not slot.free:
                yield slot

    def balancer_names(self) -> list[str]:
        return list(self._bindex)

    def process(self, index: int) -> ProcessSlot:
        if not 0 <= index < self.processes:
            raise IndexError(f"process index {index} outside 0..{self.processes - 1}")
        return ProcessSlot(self, index, self._processes_at + index * L.PROCESS.size)

    def _worker_slot(self, index: int) -> WorkerSlot:
        slot = self._workers.get(index)
        if slot is None:
            slot = self._workers[index] = WorkerSlot(
                self, index, self._workers_at + index * L.WORKER.size)
        return slot

    def _balancer_slot(self, index: int) -> BalancerSlot:
        slot = self._balancers.get(index)
        if slot is None:
            slot = self._balancers[index] = BalancerSlot(
                self, index, self._balancers_at + index * L.BALANCER.size)
        return slot

    def _refresh_index(self) -> None:
        version = self._h.q("members_version")
        self._bindex = {self._balancer_slot(n).name: n for n in range(self._n_balancers)}
        names = list(self._bindex)
        index: dict[tuple[str, str], int] = {}
        for n in range(self._n_workers):
            slot = self._worker_slot(n)
            if not slot.free:
                owner = self._v.i[slot._b4 + _W_BALANCER]
                index[(names[owner] if owner >= 0 else "", slot.name)] = n
        self._index = index
        self._members.clear()
        self._index_version = version

    # -- processes and locks --------------------------------------------------------------------
    def bind(self, index: int) -> ProcessSlot:
        """In a serving process (after fork): take lane ``index`` and start its process record.

        The record gets this pid, the board's generation, state STARTING and zeroed counters.
        """
        slot = self.process(index)
        self._lane = index
        self._pid = os.getpid()
        for w in self._workers.values():
            w._rebind(index)
        for lock in self._locks or ():
            lock._pid = self._pid
        for name in ("requests", "conns", "conns_total", "bytes_in", "bytes_out"):
            setattr(slot, name, 0)
        slot.pid = self._pid
        slot.generation = self.generation
        slot.start_time = time.time()
        slot.state = ProcState.STARTING
        return slot

    def release_lane(self, index: int, pid: int | None = None) -> None:
        """In the master, after the process of lane ``index`` exited (before replacing it):
        zero its in-flight ``busy`` counts, retire its totals, mark it GONE, and free any
        lock ``pid`` died holding."""
        slot = self.process(index)
        q = self._v.q
        start = (self._lanes_at + index * self._lane_block) // 8
        for n in range(self._n_workers):
            q[start + n * (L.LANE.size // 8)] = 0
        h = self._h
        for mine, total in (("requests", "retired_requests"), ("conns_total", "retired_conns"),
                            ("bytes_in", "retired_bytes_in"),
                            ("bytes_out", "retired_bytes_out")):
            q[h.index8(total)] += getattr(slot, mine)
            setattr(slot, mine, 0)
        slot.conns = 0
        slot.state = ProcState.GONE
        dead = pid if pid is not None else slot.pid
        if dead:
            for lock in self._locks or ():
                lock.repair(dead)

    def lock(self, balancer: str) -> SharedLock:
        """The cross-process lock of ``balancer``, for the lbmethod's read-modify-write of
        lbstatus. KeyError for an unknown balancer; RuntimeError on an attached board."""
        if self._locks is None:
            raise RuntimeError("an attached scoreboard has no locks")
        return self._locks[1 + self._bindex[balancer]]

    def _edit_lock(self) -> SharedLock | _NoLock:
        return self._locks[0] if self._locks is not None else _NoLock()

    # -- growth and reload ----------------------------------------------------------------------
    def add_worker(self, name: str, balancer: str, status: int = Status.INIT | Status.DISABLED,
                   lbfactor: int = 100) -> WorkerSlot:
        """Put a new member into one of ``balancer``'s spare slots (it starts Disabled, as
        in httpd's manager). ValueError when no slot is free, the name exists or is too long.
        """
        b = self.balancer(balancer)
        with self._edit_lock():
            self._refresh_index()
            if (balancer, name) in self._index:
                raise ValueError(f"{balancer} already has a member {name!r}")
            first, count = b._v.u[b._b4 + _B_FIRST], b._v.u[b._b4 + _B_MAX]
            free = next((s for s in map(self._worker_slot, range(first, first + count))
                         if s.free), None)
            if free is None:
                raise ValueError(f"{balancer} has no free member slot (growth={b.growth})")
            v = self._v
            L.write_str(v.raw, free._base + _W_NAME, L.MAX_WORKER_NAME, name, "worker name")
            v.i[free._b4 + _W_LBFACTOR] = lbfactor
            v.u[free._b4 + _W_STATUS] = status & ~Status.FREE
            for n in range(1, len(L.LANE_COUNTERS)):
                v.q[free._carry + n] = -sum(v.q[free._lane0 + n:free._lane_end:free._stride])
            v.u[b._b4 + _B_GROWTH_USED] += 1
            free._touch()
            b._touch()
            v.q[self._h.index8("members_version")] += 1
        self._refresh_index()
        return free

    def remove_worker(self, name: str, balancer: str) -> None:
        """Free the growth slot of member ``name``, added at run time (``add_worker``).

        The whole record is wiped (name, settings, health, score) so a later ``add_worker``
        reusing the slot starts clean; ``growth_used`` drops by one and ``members_version``
        moves, so every process sees the member gone on its next ``members`` call. Requests
        already running on the member finish (their ``busy`` count lives in the lanes).
        KeyError for an unknown member; ValueError for a member from the config, which is
        never removed at run time.
        """
        b = self.balancer(balancer)
        with self._edit_lock():
            self._refresh_index()
            index = self._index.get((balancer, name))
            if index is None:
                raise KeyError(f"no member {name!r} in {balancer}")
            slot = self._worker_slot(index)
            if not _member_is_added(self, slot):
                raise ValueError(f"{name} is configured in {balancer}; only members added "
                                 "at run time can be removed")
            v = self._v
            edits = v.u[slot._b4 + _W_EDITS]
            v.raw[slot._base:slot._base + L.WORKER.size] = bytes(L.WORKER.size)
            owner = self._bindex[balancer]
            _init_worker(v.raw, slot._base, owner, None)
            v.u[slot._b4 + _W_EDITS] = edits   # keep counting, so pollers notice the change
            v.u[b._b4 + _B_GROWTH_USED] -= 1
            slot._touch()
            b._touch()
            v.q[self._h.index8("members_version")] += 1
        self._refresh_index()

    def migrate_from(self, old: Scoreboard, keep_flags: int = KEPT_FLAGS,
                     keep_settings: bool = False) -> list[tuple[str | None, str]]:
        """Copy the runtime state of every worker whose (balancer, name) exists in both boards:
        the ``keep_flags`` bits of status, lbstatus, error time, retries, health counters and
        ring, and the counters (elected, requests, errors, transferred, read, the duration
        histogram; not busy,
        which belongs to the old processes still draining). Balancers found in both keep
        their nonce. ``keep_settings`` (BalancerPersist) also copies lbfactor, lbset, route,
        redirect, the balancers' editable settings, and members added through the manager
        (while spare slots last). Returns the (balancer, name) pairs migrated.

        Call in the master with the new board before its processes fork. Counters the old
        processes add after this call stay on the old board.
        """
        migrated: list[tuple[str | None, str]] = []
        with self._edit_lock():
            for bname in self.balancer_names():
                if bname not in old._bindex:
                    continue
                mine, theirs = self.balancer(bname), old.balancer(bname)
                L.write_str(self._v.raw, mine._base + L.BALANCER.offset("nonce"),
                            L.MAX_NONCE, theirs.nonce, "nonce")
                if keep_settings:
                    _copy_balancer_settings(mine, theirs)
                mine._touch()
        if keep_settings:
            for bname in self.balancer_names():
                if bname not in old._bindex:
                    continue
                target = self.balancer(bname)
                for member in old.members(bname):
                    if ((bname, member.name) not in self._index
                            and _member_is_added(old, member)
                            and target.growth_used < target.growth):
                        self.add_worker(member.name, bname)
        with self._edit_lock():
            for slot in self.workers():
                key = (slot.balancer, slot.name)
                try:
                    before = old.worker(slot.name, slot.balancer)
                except KeyError:
                    continue
                slot._copy_state(before, keep_flags, keep_settings)
                migrated.append(key)
        return migrated

    # -- reading everything ---------------------------------------------------------------------
    def totals(self) -> dict[str, int]:
        """Server-wide process counters: live processes plus retired ones."""
        h = self._h
        out = {"requests": h.q("retired_requests"), "conns_total": h.q("retired_conns"),
               "bytes_in": h.q("retired_bytes_in"), "bytes_out": h.q("retired_bytes_out"),
               "conns": 0}
        for n in range(self.processes):
            p = self.process(n)
            for key in out:
                out[key] += getattr(p, key)
        return out

    def snapshot(self) -> dict[str, Any]:
        """Everything, JSON-able: header facts, processes, totals, balancers with their
        members, standalone workers."""
        balancers = []
        for bname in self.balancer_names():
            entry = self.balancer(bname).snapshot()
            entry["members"] = [m.snapshot() for m in self.members(bname)]
            balancers.append(entry)
        return {
            "layout_version": L.LAYOUT_VERSION, "generation": self.generation,
            "created": self._h.d("created"), "edits": self.edits,
            "processes": [self.process(n).snapshot() for n in range(self.processes)],
            "totals": self.totals(), "balancers": balancers,
            "workers": [w.snapshot() for w in self.workers() if w.balancer is None],
        }


def _member_is_added(board: Scoreboard, member: WorkerSlot) -> bool:
    """True when ``member`` sits in a growth slot (was added after creation)."""
    owner = board._v.i[member._b4 + _W_BALANCER]
    b = board._balancer_slot(owner)
    first = b._v.u[b._b4 + _B_FIRST]
    configured = b.max_members - b.growth
    return member.index >= first + configured


def _copy_balancer_settings(mine: BalancerSlot, theirs: BalancerSlot) -> None:
    v = mine._v
    for name, limit in (("lbmethod", L.MAX_LBMETHOD), ("sticky", L.MAX_STICKY),
                        ("sticky_path", L.MAX_STICKY)):
        L.write_str(v.raw, mine._base + L.BALANCER.offset(name), limit,
                    getattr(theirs, name), name)
    for name in ("nofailover", "forcerecovery", "need_reset", "sticky_sep"):
        k = L.BALANCER.offset(name) // 4
        v.u[mine._b4 + k] = theirs._v.u[theirs._b4 + k]
    v.i[mine._b4 + L.BALANCER.offset("maxattempts") // 4] = theirs.maxattempts
    v.d[mine._b8 + L.BALANCER.offset("timeout") // 8] = theirs.timeout


class _Header:
    """Named access to header fields."""

    __slots__ = ("_v",)

    def __init__(self, views: _Views) -> None:
        self._v = views

    @staticmethod
    def index8(name: str) -> int:
        return L.HEADER.offset(name) // 8

    def q(self, name: str) -> int:
        return self._v.q[L.HEADER.offset(name) // 8]

    def d(self, name: str) -> float:
        return self._v.d[L.HEADER.offset(name) // 8]

    def u(self, name: str) -> int:
        return self._v.u[L.HEADER.offset(name) // 4]


def _lane_block(n_workers: int) -> int:
    """Bytes of one process's lane block, padded so blocks never share a cache line."""
    return max(64, -(-(n_workers * L.LANE.size) // 64) * 64)


def _map(size: int, path: str | None) -> mmap.mmap:
    if path is None:
        return mmap.mmap(-1, size)   # MAP_SHARED | MAP_ANONYMOUS: shared with forked children
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, size)
        return mmap.mmap(fd, size)
    finally:
        os.close(fd)


def _check_header(raw: memoryview, size: int) -> None:
    """LayoutMismatch unless the region was written by this layout and is big enough."""
    if bytes(raw[0:8]) != L.MAGIC:
        raise L.LayoutMismatch(f"not a portico scoreboard (magic {bytes(raw[0:8])!r})")
    fields = L.HEADER.fields

    def u32(name: str) -> int:
        return struct.unpack_from("I", raw, fields[name].offset)[0]

    version = u32("version")
    if version != L.LAYOUT_VERSION:
        raise L.LayoutMismatch(
            f"scoreboard layout version {version}, this code reads {L.LAYOUT_VERSION}")
    if u32("fingerprint") != L.fingerprint():
        raise L.LayoutMismatch("scoreboard field layout differs from this code's "
                               f"(fingerprint {u32('fingerprint'):#x}, ours "
                               f"{L.fingerprint():#x})")
    for name, rec in (("header_size", L.HEADER), ("worker_size", L.WORKER),
                      ("balancer_size", L.BALANCER), ("process_size", L.PROCESS),
                      ("lane_size", L.LANE)):
        if u32(name) != rec.size:
            raise L.LayoutMismatch(f"scoreboard {name} {u32(name)}, expected {rec.size}")
    total = struct.unpack_from("q", raw, fields["total_size"].offset)[0]
    if total > size:
        raise L.LayoutMismatch(f"scoreboard claims {total} bytes, only {size} are mapped")


def _init_worker(raw: memoryview, base: int, owner: int, name: str | None) -> None:
    w = L.WORKER.fields
    struct.pack_into("i", raw, base + w["balancer"].offset, owner)
    struct.pack_into("i", raw, base + w["lbfactor"].offset, 100)
    struct.pack_into("i", raw, base + w["hc_last"].offset, -1)
    if name is None:
        struct.pack_into("I", raw, base + w["status"].offset, Status.FREE)
        return
    L.write_str(raw, base + w["name"].offset, L.MAX_WORKER_NAME, name, "worker name")
    struct.pack_into("I", raw, base + w["status"].offset, Status.INIT)


def _init_balancer(raw: memoryview, base: int, name: str, first: int, members: int,
                   growth: int) -> None:
    b = L.BALANCER.fields
    L.write_str(raw, base + b["name"].offset, L.MAX_BALANCER_NAME, name, "balancer name")
    L.write_str(raw, base + b["lbmethod"].offset, L.MAX_LBMETHOD, "byrequests", "lbmethod")
    L.write_str(raw, base + b["nonce"].offset, L.MAX_NONCE, str(uuid.uuid4()), "nonce")
    for field, value in (("first_worker", first), ("max_members", members + growth),
                         ("growth", growth), ("sticky_sep", ord("."))):
        struct.pack_into("I", raw, base + b[field].offset, value)
