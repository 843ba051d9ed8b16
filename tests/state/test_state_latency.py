"""The request-duration histogram in the lanes: bucket placement, no lost updates across
processes, and the carry-based operations (reset, reload migration, lane release)."""

from __future__ import annotations

import os

import pytest

from portico.state import Scoreboard
from portico.state import layout as L
from tests.state.conftest import Children

C1 = "balancer://c1"
N_BUCKETS = len(L.LATENCY_BOUNDS) + 1


def _counts(**at: int) -> list[int]:
    """A bucket-count list with ``b<index>=count`` set, zeros elsewhere."""
    out = [0] * N_BUCKETS
    for key, n in at.items():
        out[int(key[1:])] = n
    return out


def test_layout_holds_the_histogram() -> None:
    assert L.LAYOUT_VERSION == 2
    assert tuple(sorted(L.LATENCY_BOUNDS)) == L.LATENCY_BOUNDS
    for name in (*L.LATENCY_BUCKETS, L.LATENCY_SUM):
        assert name in L.LANE.fields and f"carry_{name}" in L.WORKER.fields
    assert L.LANE.size % 64 == 0 and L.WORKER.size % 64 == 0


@pytest.mark.parametrize(("seconds", "bucket"), [
    (0.0, 0), (-0.5, 0), (0.005, 0), (0.0050001, 1), (0.05, 3), (0.06, 4), (0.1, 4),
    (0.1000001, 5), (1.0, 7), (10.0, 10), (10.5, 11), (3600.0, 11),
])
def test_bucket_placement_follows_le(seconds: float, bucket: int) -> None:
    sb = Scoreboard.create(["http://solo/"], processes=1)
    try:
        sb.bind(0)
        w = sb.worker("http://solo/")
        w.observe_latency(seconds)
        counts, total = w.latency()
        assert counts == _counts(**{f"b{bucket}": 1})
        assert total == pytest.approx(max(seconds, 0.0), abs=1e-6)
        assert w.snapshot()["latency"]["count"] == 1
    finally:
        sb.close()


def test_sum_is_in_microseconds_and_snapshot_is_cumulative() -> None:
    sb = Scoreboard.create(["http://solo/"], processes=2)
    try:
        sb.bind(1)
        w = sb.worker("http://solo/")
        for seconds in (0.001, 0.0123456, 0.3, 7.0):
            w.observe_latency(seconds)
        counts, total = w.latency()
        assert counts == _counts(b0=1, b2=1, b6=1, b10=1)
        assert total == pytest.approx(0.001 + 0.012345 + 0.3 + 7.0, abs=1e-6)
        snap = w.snapshot()["latency"]
        assert snap["count"] == 4
        assert snap["buckets"][0] == [0.005, 1]
        assert snap["buckets"][5] == [0.25, 2]
        assert snap["buckets"][-1] == [None, 4]
    finally:
        sb.close()


def test_observe_needs_a_bound_lane() -> None:
    sb = Scoreboard.create(["http://solo/"], processes=1)
    try:
        with pytest.raises(RuntimeError):
            sb.worker("http://solo/").observe_latency(0.01)
        assert sum(sb.worker("http://solo/").latency()[0]) == 0
    finally:
        sb.close()


def test_no_lost_observations_from_two_processes(children: Children) -> None:
    rounds = 4200                                  # a multiple of len(values)
    values = (0.001, 0.02, 0.07, 0.3, 4.0, 20.0)    # buckets 0, 2, 4, 6, 9, +Inf
    sb = Scoreboard.create(balancers={C1: ["http://a/", "http://b/"]}, processes=2)
    a = sb.worker("http://a/", C1)
    start_r, start_w = os.pipe()

    def child(lane: int) -> None:
        sb.bind(lane)
        os.close(start_w)
        os.read(start_r, 1)                         # both start together (EOF)
        for n in range(rounds):
            a.begin()
            a.observe_latency(values[n % len(values)])
            a.end()

    try:
        pids = [children.fork(lambda lane=lane: child(lane)) for lane in range(2)]
        os.close(start_r)
        os.close(start_w)
        assert [children.wait(pid, timeout=60) for pid in pids] == [0, 0]
        counts, total = a.latency()
        each = 2 * rounds // len(values)
        assert counts == _counts(b0=each, b2=each, b4=each, b6=each, b9=each, b11=each)
        assert sum(counts) == a.requests == 2 * rounds
        assert total == pytest.approx(2 * rounds / len(values) * sum(values), rel=1e-9)
        assert sum(sb.worker("http://b/", C1).latency()[0]) == 0
    finally:
        sb.close()


def test_reset_migrate_and_release_keep_the_histogram_right() -> None:
    old = Scoreboard.create(balancers={C1: ["http://a/"]}, processes=2)
    new = Scoreboard.create(balancers={C1: ["http://a/"]}, processes=2)
    try:
        old.bind(0)
        a = old.worker("http://a/", C1)
        for seconds in (0.002, 0.2, 0.2):
            a.observe_latency(seconds)
        # A dead process's lane is released: its histogram counts stay (they are history).
        old.release_lane(0)
        assert a.latency()[0] == _counts(b0=1, b5=2)
        moved = new.migrate_from(old)
        assert (C1, "http://a/") in moved
        na = new.worker("http://a/", C1)
        counts, total = na.latency()
        assert counts == _counts(b0=1, b5=2)
        assert total == pytest.approx(0.402, abs=1e-6)
        new.bind(1)
        na.observe_latency(30.0)
        assert na.latency()[0] == _counts(b0=1, b5=2, b11=1)
        na.reset_counters("latency")
        assert na.latency() == (_counts(), 0.0)
        na.observe_latency(0.01)
        assert na.latency()[0] == _counts(b1=1)
        assert na.requests == 0                     # only the histogram was reset
    finally:
        old.close()
        new.close()
