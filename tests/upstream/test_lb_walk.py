"""The shared candidate walk (§9.1), retry_worker (§6.4), force_recovery (§7.4), status bits."""

from __future__ import annotations

import doctest

import pytest

from portico.upstream import candidates, status
from portico.upstream.candidates import BalancerView, eligible, force_recovery, retry_worker
from portico.upstream.status import (
    DISABLED,
    DRAIN,
    ERROR,
    HCFAIL,
    IGNORE_ERRORS,
    INIT,
    SHUTDOWN,
    SPARE,
    STANDBY,
    STOPPED,
    LocalMemberState,
    apply_status_param,
    is_usable,
    status_letters,
    status_text,
)


def members(*specs: str, lbsets: tuple[int, ...] = ()) -> list[LocalMemberState]:
    """One member per spec; a spec is a status= value ("" for a plain member)."""
    out = [LocalMemberState(status=apply_status_param(INIT, s)) for s in specs]
    for m, lbset in zip(out, lbsets, strict=False):
        m.lbset = lbset
    return out


def test_bits_are_the_scoreboards() -> None:
    # One meaning for `status` everywhere: the lb code uses the scoreboard's bits.
    from portico.state.flags import LETTERS as SCOREBOARD_LETTERS
    assert {c: int(b) for c, b in SCOREBOARD_LETTERS.items()} == status.LETTERS
    assert len(set(status.LETTERS.values())) == 12


@pytest.mark.parametrize(("bits", "text"), [
    (INIT, "Init Ok "),
    (INIT | DISABLED, "Init Dis "),
    (INIT | ERROR, "Init Err "),
    (INIT | IGNORE_ERRORS | DRAIN, "Init Ign Drn Ok "),
    (INIT | STOPPED | STANDBY | SPARE | HCFAIL, "Init Stop Stby Spar HcFl "),
    (0, ""),
])
def test_status_text_in_httpd_order(bits: int, text: str) -> None:
    assert status_text(bits) == text


def test_usable_needs_init_and_no_blocking_flag() -> None:
    assert is_usable(INIT | DRAIN | STANDBY | SPARE | IGNORE_ERRORS)
    assert not is_usable(0)
    for bit in (DISABLED, STOPPED, ERROR, HCFAIL, SHUTDOWN):
        assert not is_usable(INIT | bit)


def test_status_param_modes_apply_to_following_letters() -> None:
    assert apply_status_param(INIT | ERROR, "S-E") == INIT | STOPPED
    assert apply_status_param(INIT | DISABLED | ERROR, "-de") == INIT
    assert apply_status_param(INIT, "+H") == INIT | STANDBY
    assert status_letters(apply_status_param(INIT, "hR")) == "OHR"
    with pytest.raises(ValueError, match="'X'"):
        apply_status_param(INIT, "+X")
    with pytest.raises(ValueError):
        apply_status_param(INIT, "O")  # internal letters are not for status=


def test_doctests() -> None:
    for module in (status, candidates):
        assert doctest.testmod(module).failed == 0


# ----------------------------------------------------------------- retry_worker (§6.4)

def test_retry_clears_error_only_strictly_after_retry_seconds() -> None:
    m = LocalMemberState(status=INIT | ERROR, error_time=100.0)
    assert not retry_worker(m, 60, 160.0)     # equal is not later
    assert m.status & ERROR and m.retries == 0
    assert retry_worker(m, 60, 160.001)
    assert m.status == INIT and m.retries == 1


def test_retry_never_clears_a_stopped_member_and_always_an_ignoring_one() -> None:
    stopped = LocalMemberState(status=INIT | ERROR | STOPPED, error_time=0.0)
    assert not retry_worker(stopped, 0, 1e9)
    assert stopped.status & ERROR
    ign = LocalMemberState(status=INIT | ERROR | IGNORE_ERRORS, error_time=100.0)
    assert retry_worker(ign, 60, 100.0)
    assert not ign.status & ERROR and ign.retries == 1


def test_retry_leaves_disabled_and_hcfail_alone() -> None:
    m = LocalMemberState(status=INIT | ERROR | DISABLED | HCFAIL, error_time=0.0)
    retry_worker(m, 0, 10.0)
    assert m.status == INIT | DISABLED | HCFAIL


# ----------------------------------------------------------------- the walk (§9.1)

def test_plain_members_in_config_order() -> None:
    assert eligible(BalancerView(members("", "", "")), 0.0) == [0, 1, 2]


def test_blocked_members_are_left_out() -> None:
    ms = members("", "D", "S", "E", "C", "")
    ms[3].error_time = 0.0
    assert eligible(BalancerView(ms, [60] * 6), 10.0) == [0, 5]


def test_error_member_comes_back_after_retry_during_the_walk() -> None:
    ms = members("", "E")
    ms[1].error_time = 50.0
    view = BalancerView(ms, [10, 10])
    assert eligible(view, 60.0) == [0]
    assert eligible(view, 60.5) == [0, 1]
    assert ms[1].retries == 1


def test_one_spare_per_unusable_member_after_the_normal_ones() -> None:
    ms = members("R", "", "D", "R", "R", "S")
    # two unusable normals (D, S) let the first two spares in, after the usable normal
    assert eligible(BalancerView(ms), 0.0) == [1, 0, 3]


def test_unusable_spares_are_skipped() -> None:
    ms = members("D", "RD", "R")
    assert eligible(BalancerView(ms), 0.0) == [2]


def test_drained_normal_member_frees_a_spare_place_but_is_never_a_candidate() -> None:
    ms = members("", "N", "R", "NR", "NH")
    assert eligible(BalancerView(ms), 0.0) == [0, 2]


def test_standbys_only_when_nothing_else() -> None:
    ms = members("", "H", "H")
    assert eligible(BalancerView(ms), 0.0) == [0]
    ms[0].status |= DISABLED
    assert eligible(BalancerView(ms), 0.0) == [1, 2]


def test_spares_beat_standbys() -> None:
    ms = members("D", "H", "R")
    assert eligible(BalancerView(ms), 0.0) == [2]


def test_lowest_lbset_with_any_candidate_wins() -> None:
    ms = members("", "", "", "", lbsets=(2, 1, 1, 5))
    assert eligible(BalancerView(ms), 0.0) == [1, 2]
    ms[1].status |= DISABLED
    ms[2].status |= STOPPED
    assert eligible(BalancerView(ms), 0.0) == [0]


def test_a_standby_keeps_its_lbset_in_front_of_higher_lbsets() -> None:
    ms = members("D", "H", "", lbsets=(0, 0, 1))
    assert eligible(BalancerView(ms), 0.0) == [1]


def test_higher_lbsets_are_not_examined_when_a_lower_one_answers() -> None:
    ms = members("", "E", lbsets=(0, 1))
    ms[1].error_time = 0.0
    eligible(BalancerView(ms, [1, 1]), 100.0)
    assert ms[1].status & ERROR and ms[1].retries == 0   # its timer was not looked at


def test_nothing_usable_gives_no_candidates() -> None:
    assert eligible(BalancerView(members("D", "S", "N")), 0.0) == []
    assert eligible(BalancerView([]), 0.0) == []


# ----------------------------------------------------------------- force_recovery (§7.4)

def test_force_recovery_when_every_member_is_in_error() -> None:
    ms = members("E", "ED", "E")
    for m in ms:
        m.error_time = 100.0
    view = BalancerView(ms, [60, 60, 60])
    assert force_recovery(view, 101.0)
    assert [m.status for m in ms] == [INIT, INIT | DISABLED, INIT]
    assert [m.retries for m in ms] == [1, 1, 1]


def test_no_forced_recovery_when_one_member_is_fine_or_recovers_by_retry() -> None:
    ms = members("E", "", "E")
    assert not force_recovery(BalancerView(ms), 0.0)
    assert ms[0].status & ERROR and ms[2].status & ERROR
    ms = members("E", "E")
    ms[0].error_time = ms[1].error_time = 0.0
    assert not force_recovery(BalancerView(ms, [5, 5]), 10.0)  # member 0 retried back
    assert not ms[0].status & ERROR
    assert ms[1].status & ERROR  # httpd stops at the first member out of error


def test_forcerecovery_off_keeps_the_errors() -> None:
    ms = members("E", "E")
    assert not force_recovery(BalancerView(ms, forcerecovery=False), 0.0)
    assert all(m.status & ERROR for m in ms)
