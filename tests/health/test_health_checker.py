"""The checker's state machine and scheduling, on a real scoreboard and real members."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from portico.config import load_config
from portico.config.model import ServerConfig
from portico.health.checker import HealthChecker, recovered_at, slow_start_factor
from portico.health.probes import ProbeResult
from portico.state.flags import Status
from portico.state.scoreboard import Scoreboard
from portico.upstream.shared import scoreboard_for
from tests.health.backend import HealthBackends

POOL = "balancer://pool"


def load(tmp_path: Path, members: str) -> ServerConfig:
    conf = tmp_path / "hc.conf"
    conf.write_text(f"Listen 127.0.0.1:1\nServerName t\n<Proxy {POOL}>\n{members}</Proxy>\n"
                    f"ProxyPass /app {POOL}\n")
    return load_config(str(conf))


def passed(ok: bool) -> ProbeResult:
    return ProbeResult(ok, 1.0, "GET /health → " + ("200" if ok else "503"),
                       200 if ok else 503)


@pytest.fixture
def one(tmp_path: Path) -> tuple[ServerConfig, Scoreboard]:
    config = load(tmp_path, "BalancerMember http://127.0.0.1:9 hcmethod=GET hcuri=/health "
                            "hcfails=2 hcpasses=2\n")
    return config, scoreboard_for(config, 1)


def test_consecutive_failures_set_c_and_consecutive_passes_clear_it(
        one: tuple[ServerConfig, Scoreboard], caplog: pytest.LogCaptureFixture) -> None:
    config, board = one
    spec = next(iter(config.workers.values()))
    slot = board.worker(spec.name, POOL)
    checker = HealthChecker(config, board)
    for ok in (False, True, False, True):      # never two failures in a row
        checker.apply(spec, slot, passed(ok))
    assert not slot.status & Status.HCFAIL
    with caplog.at_level(logging.WARNING, "portico.health"):
        checker.apply(spec, slot, passed(False))
        checker.apply(spec, slot, passed(False))
    assert slot.status & Status.HCFAIL and not slot.usable
    assert f"member {spec.name} of {POOL} failed 2 checks: GET /health → 503" in caplog.text
    for ok in (True, False, True):             # never two passes in a row
        checker.apply(spec, slot, passed(ok))
    assert slot.status & Status.HCFAIL
    checker.apply(spec, slot, passed(True))
    assert slot.usable
    assert "passed 2 checks: back in service" in caplog.text
    history = slot.health_history()
    assert [ok for _, ok, _ in history] == [False, True, False, True, False, False,
                                            True, False, True, True]
    assert (slot.pcount, slot.fcount) == (0, 0)


def test_a_passing_check_clears_an_error_set_by_traffic(
        one: tuple[ServerConfig, Scoreboard]) -> None:
    config, board = one
    spec = next(iter(config.workers.values()))
    slot = board.worker(spec.name, POOL)
    slot.set_flags(Status.ERROR)
    checker = HealthChecker(config, board)
    checker.apply(spec, slot, passed(True))
    assert slot.status & Status.ERROR
    checker.apply(spec, slot, passed(True))
    assert slot.usable


def test_slow_start_ramps_after_a_recovery(one: tuple[ServerConfig, Scoreboard]) -> None:
    config, board = one
    spec = next(iter(config.workers.values()))
    slot = board.worker(spec.name, POOL)
    t = [1000.0]
    checker = HealthChecker(config, board, clock=lambda: t[0])
    assert slow_start_factor(slot, 1000.0, 30) == 1.0      # nothing on record
    for ok in (False, False, True, True):
        checker.apply(spec, slot, passed(ok))
        t[0] += 1
    assert recovered_at(slot, fails=2) == 1002.0
    assert slow_start_factor(slot, 1002.0, 30, fails=2) == pytest.approx(0.05)
    assert slow_start_factor(slot, 1017.0, 30, fails=2) == pytest.approx(0.5)
    assert slow_start_factor(slot, 1040.0, 30, fails=2) == 1.0
    assert slow_start_factor(slot, 1017.0, 0, fails=2) == 1.0
    # One failure that did not take the member out (hcfails=2) starts no ramp.
    for ok in (False, True):
        checker.apply(spec, slot, passed(ok))
    assert recovered_at(slot, fails=2) is None


async def test_checker_runs_every_interval_and_skips_stopped_members(
        tmp_path: Path, backends: HealthBackends) -> None:
    config = load(tmp_path, (
        f"BalancerMember {backends.url('a')} hcmethod=GET hcuri=/health hcinterval=200ms\n"
        f"BalancerMember {backends.url('b')} hcmethod=GET hcuri=/health hcinterval=200ms "
        "status=+S\n"))
    board = scoreboard_for(config, 1)
    checker = HealthChecker(config, board)
    checker.start()
    try:
        await asyncio.sleep(1.1)   # the thing under test is the schedule itself
    finally:
        checker.close()
    assert 5 <= len(backends.probes("a")) <= 7
    assert backends.probes("b") == []
    slot = board.worker(backends.url("a"), POOL)
    assert slot.hc_last is True and len(slot.health_history()) >= 5
    count = len(backends.probes("a"))
    await asyncio.sleep(0.4)
    assert len(backends.probes("a")) == count     # close() cancelled every timer


async def test_repoint_follows_the_new_board(tmp_path: Path, backends: HealthBackends) -> None:
    members = (f"BalancerMember {backends.url('a')} hcmethod=GET hcuri=/health "
               "hcinterval=200ms hcfails=1\n")
    config = load(tmp_path, members)
    old = scoreboard_for(config, 1)
    checker = HealthChecker(config, old)
    checker.start()
    try:
        new = scoreboard_for(config, 1, generation=1, previous=old)
        checker.repoint(config, new)
        backends.set_health("a", 503)
        deadline = time.monotonic() + 3
        slot = new.worker(backends.url("a"), POOL)
        while not slot.status & Status.HCFAIL and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert slot.status & Status.HCFAIL
        assert not old.worker(backends.url("a"), POOL).status & Status.HCFAIL
    finally:
        checker.close()


async def test_slow_start_ramps_the_shared_weight(tmp_path: Path) -> None:
    """hcslowstart: after a recovery the member's lbfactor in the scoreboard climbs from 5%
    to its loadfactor, so every lbmethod in every process sees the ramp."""
    config = load(tmp_path, "BalancerMember http://127.0.0.1:9 loadfactor=4 hcmethod=GET "
                            "hcuri=/health hcfails=1 hcpasses=1 hcslowstart=10\n")
    board = scoreboard_for(config, 1)
    spec = next(iter(config.workers.values()))
    slot = board.worker(spec.name, POOL)
    t = [2000.0]
    checker = HealthChecker(config, board, clock=lambda: t[0])
    checker.start()
    try:
        checker.apply(spec, slot, passed(False))
        assert slot.status & Status.HCFAIL
        checker.apply(spec, slot, passed(True))      # back in service: the ramp starts
        assert not slot.status & Status.HCFAIL
        assert slot.lbfactor == 20                   # 5% of 400
        t[0] += 5
        checker._ramp_step(checker._members[("balancer://pool", spec.name)])
        assert slot.lbfactor == 200                  # half way
        t[0] += 6
        checker._ramp_step(checker._members[("balancer://pool", spec.name)])
        assert slot.lbfactor == 400                  # done: the configured weight
    finally:
        checker.close()
    assert slot.lbfactor == 400
