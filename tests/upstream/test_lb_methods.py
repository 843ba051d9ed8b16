"""The lbmethods (§9.2-§9.4, p2c): worked schedules from their docstrings, sticky accounting,
request hooks, the registry and its entry points."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from portico.upstream.candidates import BalancerView
from portico.upstream.lbmethods import (
    ByBusyness,
    ByRequests,
    ByTraffic,
    LBMethod,
    PowerOfTwo,
    Registry,
    UnknownLBMethod,
    default_registry,
)
from portico.upstream.lbmethods.p2c import PeakEwma
from portico.upstream.status import DISABLED, DRAIN, STANDBY, LocalMemberState


def view(*factors: int) -> BalancerView:
    return BalancerView([LocalMemberState(lbfactor=f) for f in factors])


def run(method: LBMethod, v: BalancerView, n: int, now: float = 0.0) -> list[int]:
    """n sequential requests: pick, start, finish."""
    out = []
    for _ in range(n):
        i = method.find_best(v, now)
        assert i is not None
        method.on_request_start(v, i, now)
        method.on_request_end(v, i, sent=0, received=0, now=now)
        out.append(i)
    return out


# ----------------------------------------------------------------- byrequests

def test_byrequests_docstring_schedule() -> None:
    v = view(100, 300)
    seen = []
    for _ in range(6):
        i = ByRequests().find_best(v, 0.0)
        seen.append((i, v.members[0].lbstatus, v.members[1].lbstatus))
    assert seen == [(1, 100, -100), (0, -200, 200), (1, -100, 100), (1, 0, 0),
                    (1, 100, -100), (0, -200, 200)]
    assert sum(m.lbstatus for m in v.members) == 0
    assert [m.elected for m in v.members] == [2, 4]


def test_byrequests_shares_follow_weights_and_scale_free() -> None:
    a = run(ByRequests(), view(70 * 100, 30 * 100), 10)
    b = run(ByRequests(), view(70, 30), 10)
    assert a == b and a.count(0) == 7


def test_byrequests_skips_disabled_member() -> None:
    v = view(100, 100, 100, 100)
    v.members[1].status |= DISABLED
    assert run(ByRequests(), v, 6) == [0, 2, 3, 0, 2, 3]


def test_find_best_none_when_nothing_eligible() -> None:
    v = view(100)
    v.members[0].status |= DRAIN
    assert ByRequests().find_best(v, 0.0) is None
    assert v.members[0].elected == 0


# ----------------------------------------------------------------- bybusyness

def test_bybusyness_docstring_schedule() -> None:
    v = view(100, 100, 300)
    m = ByBusyness()
    v.members[0].busy = 1
    assert m.find_best(v, 0.0) == 2
    m.on_request_start(v, 2, 0.0)
    assert [x.lbstatus for x in v.members] == [100, 100, -200]
    assert m.find_best(v, 0.0) == 1
    m.on_request_start(v, 1, 0.0)
    assert [x.lbstatus for x in v.members] == [200, -300, 100]
    m.on_request_end(v, 0, sent=0, received=0, now=0.0)
    assert m.find_best(v, 0.0) == 0
    assert [x.lbstatus for x in v.members] == [-200, -200, 400]


def test_bybusyness_weight_does_not_scale_busy() -> None:
    v = view(100, 1000)
    v.members[1].busy = 1
    assert ByBusyness().find_best(v, 0.0) == 0


def test_reset_clears_scores() -> None:
    v = view(100, 100)
    v.members[0].lbstatus = 50
    ByBusyness().reset(v)
    assert v.members[0].lbstatus == 0


# ----------------------------------------------------------------- bytraffic

def test_bytraffic_docstring_schedule() -> None:
    v = view(100, 100, 200)
    sizes = [1000, 2000, 2000]
    m = ByTraffic()
    out = []
    for _ in range(5):
        i = m.find_best(v, 0.0)
        assert i is not None
        m.on_request_start(v, i, 0.0)
        m.on_request_end(v, i, sent=200, received=sizes[i], now=0.0)
        out.append(i)
    assert out == [0, 1, 2, 2, 0]
    assert (v.members[2].transferred, v.members[2].read) == (400, 4000)


def test_bytraffic_uses_integer_division_per_direction() -> None:
    v = view(100, 100)
    v.members[0].transferred, v.members[0].read = 199, 199   # 1 + 1 = 2
    v.members[1].transferred, v.members[1].read = 0, 250     # 0 + 2 = 2 → tie, earlier wins
    assert ByTraffic().find_best(v, 0.0) == 0
    v.members[1].read = 199                                  # 1
    assert ByTraffic().find_best(v, 0.0) == 1


# ----------------------------------------------------------------- shared behaviour

def test_sticky_accounting_counts_every_usable_member() -> None:
    v = view(100, 200, 300)
    v.members[2].status |= DISABLED
    v.members[1].status |= STANDBY
    ByRequests().account_sticky(v, 0)
    assert [m.lbstatus for m in v.members] == [-200, 200, 0]
    assert v.members[0].elected == 1


def test_request_hooks_count_busy_and_bytes() -> None:
    v = view(100)
    m = ByRequests()
    m.on_request_start(v, 0, 0.0)
    m.on_request_start(v, 0, 0.0)
    assert v.members[0].busy == 2
    m.on_request_end(v, 0, sent=10, received=20, now=0.0)
    assert (v.members[0].busy, v.members[0].transferred, v.members[0].read,
            v.members[0].requests) == (1, 10, 20, 1)
    m.on_request_end(v, 0, sent=0, received=0, now=0.0)
    assert (v.members[0].busy, v.members[0].requests) == (0, 2)


# ----------------------------------------------------------------- p2c

def test_p2c_docstring_schedule() -> None:
    v = view(100, 100, 200)
    for m, busy in zip(v.members, (2, 1, 2), strict=True):
        m.busy = busy
    p = PowerOfTwo(rng=random.Random(0))
    for i, ttfb in enumerate((0.050, 0.200, 0.010)):
        p.on_first_byte(v, i, ttfb, 0.0)
    members = v.members
    assert p._better(members, 1, 0)          # (a, b) → b
    assert p._better(members, 2, 0)          # (a, c) → c
    assert p._better(members, 2, 1)          # (b, c) tie on load → c by latency
    assert not p._better(members, 1, 2)


def test_p2c_is_repeatable_with_a_seed_and_uses_every_member() -> None:
    a = run(PowerOfTwo(rng=random.Random(7)), view(100, 100, 100, 100), 200)
    b = run(PowerOfTwo(rng=random.Random(7)), view(100, 100, 100, 100), 200)
    assert a == b
    assert set(a) == {0, 1, 2, 3}


def test_p2c_prefers_the_idle_member_of_every_draw() -> None:
    v = view(100, 100, 100)
    v.members[1].busy = 5
    v.members[2].busy = 5
    p = PowerOfTwo(rng=random.Random(1))
    picks = [p.find_best(v, 0.0) for _ in range(100)]
    # member 0 wins every draw it is in: 2 of the 3 possible pairs
    assert 50 <= picks.count(0) <= 85
    assert picks.count(0) + picks.count(1) + picks.count(2) == 100


def test_p2c_single_candidate_needs_no_draw() -> None:
    v = view(100, 100)
    v.members[0].status |= DISABLED
    assert PowerOfTwo(rng=random.Random(3)).find_best(v, 0.0) == 1


def test_p2c_avoids_the_slow_member_on_ties() -> None:
    v = view(100, 100)
    p = PowerOfTwo(rng=random.Random(2))
    p.on_first_byte(v, 0, 0.500, 0.0)
    p.on_first_byte(v, 1, 0.005, 0.0)
    assert all(p.find_best(v, 0.1) == 1 for _ in range(20))


def test_peak_ewma_jumps_up_decays_down_and_forgets_when_idle() -> None:
    e = PeakEwma()
    assert e.read(0.0, 10.0) == 0.0
    e.observe(0.1, 0.0, 10.0)
    e.observe(1.0, 1.0, 10.0)
    assert e.read(1.0, 10.0) == pytest.approx(1.0)           # a peak replaces at once
    e.observe(0.1, 2.0, 10.0)
    assert 0.1 < e.read(2.0, 10.0) < 1.0                      # a lower sample blends in
    assert e.read(100.0, 10.0) < 0.001                        # idle: decays toward 0


def test_p2c_rejects_a_bad_decay() -> None:
    with pytest.raises(ValueError):
        PowerOfTwo(decay=0)


# ----------------------------------------------------------------- registry

def test_builtin_names_and_case_insensitive_lookup() -> None:
    reg = Registry(plugins=False)
    assert reg.names() == ["bybusyness", "byrequests", "bytraffic", "p2c"]
    assert isinstance(reg.create("ByRequests"), ByRequests)
    assert "P2C" in reg and "heartbeat" not in reg
    with pytest.raises(UnknownLBMethod, match="unknown lbmethod 'nope'"):
        reg.create("nope")
    with pytest.raises(ValueError):
        reg.register("byrequests", ByRequests)
    assert default_registry() is default_registry()


def test_entry_point_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lbplugin_example.py").write_text(textwrap.dedent("""
        from portico.upstream.lbmethods.base import LBMethod

        class LastOne(LBMethod):
            name = "lastone"

            def pick(self, members, candidates):
                return candidates[-1]
    """))
    dist = tmp_path / "lbplugin_example-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lbplugin-example\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[portico.lbmethods]\n"
        "lastone = lbplugin_example:LastOne\n"
        "byrequests = lbplugin_example:LastOne\n"
        "broken = lbplugin_missing_module:Nope\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry()
    method = reg.create("lastone")
    assert method.find_best(view(100, 100, 100), 0.0) == 2
    assert isinstance(reg.create("byrequests"), ByRequests)   # a plugin cannot replace it
    with pytest.raises(UnknownLBMethod, match="failed to load"):
        reg.create("broken")
    assert "lastone" in reg.names()
