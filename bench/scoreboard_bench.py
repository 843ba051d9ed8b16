"""Cost per scoreboard operation, in ns, on this machine.

Run: ``.venv/bin/python bench/scoreboard_bench.py [--lanes N ...]``. Prints one line per
operation. Single-process, uncontended figures: what a request pays on the hot path. The
fcntl byte-range lock is measured as the alternative the module docstring compares against.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import tempfile
import time
from collections.abc import Callable

from portico.state import Scoreboard, Status


def _ns_per_op(fn: Callable[[], None], n: int) -> float:
    """Best of three runs of ``n`` calls (the machine is noisy; the minimum is the cost)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def _empty() -> None:
    return None


def run(lanes: int, n: int) -> list[tuple[str, float]]:
    members = [f"http://10.0.0.{i}:8080/" for i in range(4)]
    sb = Scoreboard.create(["http://standalone/"], {"balancer://c": members},
                           processes=lanes, growth=2)
    sb.bind(0)
    w = sb.worker(members[0], "balancer://c")
    lock = sb.lock("balancer://c")
    base = _ns_per_op(_empty, n)

    def lock_pair() -> None:
        with lock:
            pass

    def lbstatus_rmw() -> None:
        w.lbstatus += 100

    def byrequests_pick() -> None:
        # The whole shared-memory part of one byrequests decision over 4 members.
        with lock:
            best = None
            total = 0
            for m in sb.members("balancer://c"):
                m.lbstatus += 100
                total += 100
                if best is None or m.lbstatus > best.lbstatus:
                    best = m
            assert best is not None
            best.lbstatus -= total
            best.begin()
        best.end(100, 200)

    fd, path = tempfile.mkstemp()
    os.unlink(path)
    os.ftruncate(fd, 64)

    def fcntl_pair() -> None:
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, 1)
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, 1)

    ops: list[tuple[str, Callable[[], None]]] = [
        ("read shared field (slot.lbstatus)", lambda: w.lbstatus),
        ("read status bits (slot.status)", lambda: w.status),
        ("write shared field (slot.lbstatus = x)", lambda: setattr(w, "lbstatus", 5)),
        ("slot.lbstatus += x (use under the lock)", lbstatus_rmw),
        ("lane add (slot.add_busy(1))", lambda: w.add_busy(1)),
        ("slot.begin() (busy+1, elected+1)", w.begin),
        ("slot.end(sent, read) (busy-1, requests+1, bytes)", lambda: w.end(100, 200)),
        ("slot.observe_latency(s) (bisect, bucket+1, sum+us)", lambda: w.observe_latency(0.06)),
        (f"latency histogram read (slot.latency(), {lanes} lanes)", w.latency),
        (f"lane sum read (slot.busy, {lanes} lanes)", lambda: w.busy),
        ("sb.worker(name, balancer) lookup", lambda: sb.worker(members[2], "balancer://c")),
        ("sb.members(balancer) (cached)", lambda: sb.members("balancer://c")),
        ("balancer lock acquire+release (with sb.lock)", lock_pair),
        ("fcntl lockf acquire+release (alternative)", fcntl_pair),
        ("set_flags+clear_flags (edit lock, 2 edits)",
         lambda: (w.set_flags(Status.DRAIN), w.clear_flags(Status.DRAIN))),
        ("byrequests pick over 4 members + begin/end", byrequests_pick),
    ]
    out = [(name, _ns_per_op(fn, n) - base) for name, fn in ops]
    os.close(fd)
    sb.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lanes", type=int, nargs="*", default=[1, 2, 8])
    parser.add_argument("-n", type=int, default=100_000, help="calls per measurement")
    args = parser.parse_args()
    for lanes in args.lanes:
        print(f"# {lanes} lane(s), ns per op (loop overhead subtracted)")
        for name, ns in run(lanes, args.n):
            print(f"{ns:9.0f}  {name}")


if __name__ == "__main__":
    main()
