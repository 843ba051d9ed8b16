"""Scoreboard behaviour in one process: lookup, lanes, growth, migration, snapshots."""

from __future__ import annotations

import json
import os
import signal

import pytest

from portico.state import KEPT_FLAGS, ProcState, Scoreboard, Status
from tests.state.conftest import Children

C1 = "balancer://c1"


def _board(**kw: object) -> Scoreboard:
    return Scoreboard.create(["http://solo/"], {C1: ["http://a/", "http://b/"],
                                                "balancer://c2": ["http://a/"]}, **kw)  # type: ignore[arg-type]


def test_lookup_by_balancer_and_name() -> None:
    sb = _board(processes=2)
    try:
        assert sb.worker("http://a/", C1) is not sb.worker("http://a/", "balancer://c2")
        assert sb.worker("http://solo/").balancer is None
        assert sb.worker("http://b/", C1).balancer == C1
        assert [m.name for m in sb.members(C1)] == ["http://a/", "http://b/"]
        with pytest.raises(KeyError):
            sb.worker("http://a/")            # only a member, not standalone
        with pytest.raises(KeyError):
            sb.balancer("balancer://nope")
        with pytest.raises(IndexError):
            sb.process(2)
        w = sb.worker("http://a/", C1)
        assert (w.status, w.lbfactor, w.lbstatus, w.busy, w.hc_last) == (
            Status.INIT, 100, 0, 0, None)
    finally:
        sb.close()


def test_lane_writes_need_a_bound_lane() -> None:
    sb = _board(processes=2)
    try:
        w = sb.worker("http://a/", C1)
        with pytest.raises(RuntimeError, match="bind"):
            w.begin()
        sb.bind(1)
        assert sb.lane == 1
        w.begin()
        w.begin()
        w.end(transferred=100, read=250)
        w.end(error=True)
        w.add_busy(3)
        w.add_elected(2)
        w.add_transferred(5)
        w.add_read(7)
        assert (w.busy, w.elected, w.requests, w.errors, w.transferred, w.read) == (
            3, 4, 2, 1, 105, 257)
        # the slot made before bind() follows the lane too
        assert sb.worker("http://b/", C1).busy == 0
    finally:
        sb.close()


def test_reset_counters_uses_the_carry() -> None:
    sb = _board()
    try:
        sb.bind(0)
        w = sb.worker("http://a/", C1)
        w.begin()
        w.end(transferred=10, read=20)
        w.begin()
        w.reset_counters("transferred", "read", "elected")
        assert (w.transferred, w.read, w.elected, w.busy) == (0, 0, 0, 1)
        w.end(transferred=3)
        assert (w.transferred, w.busy, w.requests) == (3, 0, 2)   # requests was kept
        with pytest.raises(ValueError, match="busy"):
            w.reset_counters("busy")
    finally:
        sb.close()


def test_flags_and_edit_counters() -> None:
    sb = _board()
    try:
        w = sb.worker("http://a/", C1)
        e0, we0 = sb.edits, w.edits
        w.set_flags(Status.DISABLED | Status.HCFAIL)
        w.clear_flags(Status.HCFAIL)
        assert w.status == Status.INIT | Status.DISABLED
        assert not w.usable
        assert (sb.edits - e0, w.edits - we0) == (2, 2)
        assert w.updated > 0
        w.lbstatus = 5                        # runtime state: not an edit
        assert sb.edits - e0 == 2
    finally:
        sb.close()


def test_health_ring_keeps_the_last_sixteen() -> None:
    sb = _board()
    try:
        w = sb.worker("http://a/", C1)
        assert w.health_history() == []
        for n in range(20):
            w.record_health(n % 3 != 0, float(n), when=1000.0 + n)
        history = w.health_history()
        assert [t for t, _, _ in history] == [1000.0 + n for n in range(4, 20)]
        assert history[-1] == (1019.0, True, 19.0)
        assert history[-2] == (1018.0, False, 18.0)
        assert (w.hc_last, w.hc_last_time) == (True, 1019.0)
    finally:
        sb.close()


def test_growth_slots() -> None:
    sb = Scoreboard.create(balancers={C1: ["http://a/"]}, processes=1, growth={C1: 2})
    try:
        b = sb.balancer(C1)
        assert (b.max_members, b.growth, b.growth_used) == (3, 2, 0)
        assert [m.name for m in sb.members(C1)] == ["http://a/"]
        added = sb.add_worker("http://new/", C1)
        assert added.status == Status.INIT | Status.DISABLED   # httpd: added members start D
        assert sb.worker("http://new/", C1) is added
        assert [m.name for m in sb.members(C1)] == ["http://a/", "http://new/"]
        with pytest.raises(ValueError, match="already"):
            sb.add_worker("http://new/", C1)
        with pytest.raises(ValueError, match="worker name"):
            sb.add_worker("x" * 400, C1)
        sb.add_worker("http://new2/", C1, status=Status.INIT)
        assert sb.balancer(C1).growth_used == 2
        with pytest.raises(ValueError, match="no free member slot"):
            sb.add_worker("http://new3/", C1)
        snap = sb.snapshot()
        assert [m["name"] for m in snap["balancers"][0]["members"]] == [
            "http://a/", "http://new/", "http://new2/"]
    finally:
        sb.close()


def test_growth_is_seen_by_a_forked_process(children: Children) -> None:
    sb = Scoreboard.create(balancers={C1: ["http://a/"]}, processes=2, growth=1)
    try:
        assert len(sb.members(C1)) == 1      # cache the member list before the add

        def child() -> None:
            sb.bind(1)
            sb.add_worker("http://late/", C1)
            sb.worker("http://late/", C1).begin()

        assert children.wait(children.fork(child)) == 0
        assert [m.name for m in sb.members(C1)] == ["http://a/", "http://late/"]
        assert sb.worker("http://late/", C1).elected == 1
    finally:
        sb.close()


def test_migrate_keeps_surviving_names_and_drops_the_rest() -> None:
    old = _board(processes=2)
    new = Scoreboard.create(["http://solo/", "http://fresh/"], {C1: ["http://b/", "http://c/"]},
                            processes=3)
    try:
        old.bind(0)
        a, b = old.worker("http://a/", C1), old.worker("http://b/", C1)
        for _ in range(5):
            b.begin()
            b.end(10, 20)
        b.begin()                                  # one request still in flight
        b.lbstatus = -42
        b.set_flags(Status.ERROR | Status.DRAIN)
        b.error_time = 99.5
        b.retries = 2
        b.pcount, b.fcount = 1, 3
        b.record_health(False, 12.5, when=5.0)
        b.lbfactor = 300
        a.begin()
        old.worker("http://solo/").begin()
        old_nonce = old.balancer(C1).nonce
        old.balancer(C1).lbmethod = "bytraffic"

        moved = new.migrate_from(old)

        assert set(moved) == {(None, "http://solo/"), (C1, "http://b/")}
        nb = new.worker("http://b/", C1)
        assert (nb.elected, nb.requests, nb.transferred, nb.read) == (6, 5, 50, 100)
        assert nb.busy == 0                        # in-flight requests stay on the old board
        assert (nb.lbstatus, nb.error_time, nb.retries, nb.pcount, nb.fcount) == (
            -42, 99.5, 2, 1, 3)
        assert nb.status == Status.INIT | Status.ERROR | Status.DRAIN
        assert nb.health_history() == [(5.0, False, 12.5)]
        assert nb.lbfactor == 100                  # settings come from the new config
        assert new.balancer(C1).nonce == old_nonce
        assert new.balancer(C1).lbmethod == "byrequests"
        assert new.worker("http://solo/").elected == 1
        fresh, c = new.worker("http://fresh/"), new.worker("http://c/", C1)
        assert (fresh.elected, c.elected, c.status) == (0, 0, Status.INIT)
        # counting goes on from the carried value in the new generation's lanes
        new.bind(2)
        nb.begin()
        assert (nb.elected, nb.busy) == (7, 1)
    finally:
        old.close()
        new.close()


def test_migrate_flag_mask_and_persisted_settings() -> None:
    old = Scoreboard.create(balancers={C1: ["http://a/"]}, growth=1)
    new = Scoreboard.create(balancers={C1: ["http://a/"]}, growth=1)
    try:
        wa = old.worker("http://a/", C1)
        wa.set_flags(Status.DISABLED | Status.ERROR)
        wa.lbfactor, wa.route = 250, "r1"
        old.add_worker("http://added/", C1, status=Status.INIT)
        old.balancer(C1).lbmethod = "bybusyness"
        old.balancer(C1).maxattempts = 4

        new.migrate_from(old, keep_flags=int(Status.ERROR))
        assert new.worker("http://a/", C1).status == Status.INIT | Status.ERROR
        assert new.worker("http://a/", C1).lbfactor == 100
        assert KEPT_FLAGS & Status.DISABLED and not KEPT_FLAGS & Status.INIT

        persisted = Scoreboard.create(balancers={C1: ["http://a/"]}, growth=1)
        moved = persisted.migrate_from(old, keep_settings=True)
        assert (C1, "http://added/") in moved
        pa = persisted.worker("http://a/", C1)
        assert (pa.lbfactor, pa.route, pa.status) == (
            250, "r1", Status.INIT | Status.DISABLED | Status.ERROR)
        assert persisted.worker("http://added/", C1).status == Status.INIT
        pb = persisted.balancer(C1)
        assert (pb.lbmethod, pb.maxattempts, pb.growth_used) == ("bybusyness", 4, 1)
        persisted.close()
    finally:
        old.close()
        new.close()


def test_release_lane_after_a_crash(children: Children) -> None:
    sb = _board(processes=2)
    try:
        w = sb.worker("http://a/", C1)
        r, wr = os.pipe()

        def child() -> None:
            slot = sb.bind(1)
            slot.state = ProcState.SERVING
            for _ in range(3):
                w.begin()
            slot.add_request(bytes_in=100, bytes_out=1000)
            slot.conns, slot.conns_total = 2, 5
            sb.lock(C1).__enter__()             # dies holding the balancer lock
            os.write(wr, b"x")
            signal.pause()

        pid = children.fork(child)
        os.close(wr)
        assert os.read(r, 1) == b"x"
        os.close(r)
        os.kill(pid, signal.SIGKILL)
        assert children.wait(pid) == -signal.SIGKILL
        assert (w.busy, w.elected, sb.lock(C1).holder) == (3, 3, pid)

        sb.release_lane(1, pid)

        assert (w.busy, w.elected) == (0, 3)     # in-flight gone, history kept
        assert sb.process(1).state == ProcState.GONE
        assert sb.totals() == {"requests": 1, "conns_total": 5, "bytes_in": 100,
                               "bytes_out": 1000, "conns": 0}
        lock = sb.lock(C1)
        assert lock._acquire(True, 1.0)          # the dead holder's lock was freed
        lock._release()
    finally:
        sb.close()


def test_snapshot_is_json() -> None:
    sb = _board(processes=2, generation=3)
    try:
        sb.bind(0).state = ProcState.SERVING
        sb.worker("http://a/", C1).begin()
        sb.worker("http://a/", C1).record_health(True, 1.0, when=1.0)
        snap = json.loads(json.dumps(sb.snapshot()))
        assert snap["generation"] == 3
        assert snap["processes"][0]["state"] == "serving"
        assert snap["processes"][1]["state"] == "free"
        member = snap["balancers"][0]["members"][0]
        assert member["status_string"] == "Init Ok "
        assert (member["elected"], member["busy"], member["flags"]) == (1, 1, "O")
        assert member["health"]["history"] == [{"time": 1.0, "ok": True, "latency_ms": 1.0}]
        assert [w["name"] for w in snap["workers"]] == ["http://solo/"]
    finally:
        sb.close()
