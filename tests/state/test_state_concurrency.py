"""Four forked processes hammering one board: no lost increments, locks exclude."""

from __future__ import annotations

import os

from portico.state import Scoreboard, Status
from tests.state.conftest import Children

C1 = "balancer://c1"
PROCS = 4
ROUNDS = 3000


def test_no_lost_updates_from_four_processes(children: Children) -> None:
    sb = Scoreboard.create(balancers={C1: ["http://a/", "http://b/", "http://gate/"]},
                           processes=PROCS)
    a, b = sb.worker("http://a/", C1), sb.worker("http://b/", C1)
    # "gate" is a critical-section witness: lbset is 1 while someone is inside, lbstatus
    # counts entries; a process that finds it occupied counts an error.
    gate = sb.worker("http://gate/", C1)
    start_r, start_w = os.pipe()

    def child(lane: int) -> None:
        sb.bind(lane)
        os.close(start_w)
        os.read(start_r, 1)                        # all start together (EOF when released)
        lock = sb.lock(C1)
        for n in range(ROUNDS):
            a.begin()
            with lock:
                if gate.lbset != 0:
                    gate.add_errors(1)             # someone else is inside: a violation
                gate.lbset = 1
                b.lbstatus += 100                  # the byrequests read-modify-write
                gate.lbstatus += 1
                gate.lbset = 0
            a.end(transferred=n % 7, read=3)
            if n % 100 == 0:
                bit = (Status.DRAIN, Status.STANDBY, Status.SPARE, Status.HCFAIL)[lane]
                a.set_flags(bit)
                a.clear_flags(bit)
        bit = (Status.DRAIN, Status.STANDBY, Status.SPARE, Status.HCFAIL)[lane]
        a.set_flags(bit)

    try:
        pids = [children.fork(lambda lane=lane: child(lane)) for lane in range(PROCS)]
        os.close(start_r)
        os.close(start_w)
        assert [children.wait(pid, timeout=60) for pid in pids] == [0] * PROCS
        total = PROCS * ROUNDS
        assert (a.elected, a.requests, a.busy) == (total, total, 0)
        assert a.transferred == PROCS * sum(n % 7 for n in range(ROUNDS))
        assert a.read == 3 * total
        assert b.lbstatus == 100 * total
        assert gate.lbstatus == total
        assert gate.errors == 0                    # nobody ever found the gate occupied
        assert a.status == (Status.INIT | Status.DRAIN | Status.STANDBY | Status.SPARE
                            | Status.HCFAIL)
        assert a.edits == PROCS * (2 * (ROUNDS // 100) + 1)
    finally:
        sb.close()


def test_busy_is_visible_across_processes_while_in_flight(children: Children) -> None:
    sb = Scoreboard.create(balancers={C1: ["http://a/"]}, processes=PROCS)
    a = sb.worker("http://a/", C1)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()

    def child(lane: int) -> None:
        sb.bind(lane)
        a.begin()
        a.begin()
        os.write(ready_w, b"r")
        os.read(go_r, 1)                           # hold the requests until told
        a.end()
        a.end()

    try:
        pids = [children.fork(lambda lane=lane: child(lane)) for lane in range(PROCS)]
        got = b""
        while len(got) < PROCS:                    # bounded by the children's lifetime
            chunk = os.read(ready_r, PROCS)
            assert chunk, "a child went away before it was ready"
            got += chunk
        assert a.busy == 2 * PROCS
        os.write(go_w, b"g" * PROCS)
        assert [children.wait(pid) for pid in pids] == [0] * PROCS
        assert (a.busy, a.elected, a.requests) == (0, 2 * PROCS, 2 * PROCS)
    finally:
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)
        sb.close()
