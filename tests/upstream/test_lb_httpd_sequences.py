"""Replay the member sequences recorded from real httpd 2.4 (httpd_sequences/*.json).

Each file holds a balancer config, the requests sent one after another, and the member that
answered each one (``record.py`` beside the data made them). Here the same members are
built as `LocalMemberState`s and the same requests are simulated the way httpd handles them
(§7.4, §7.5): force recovery → sticky lookup → account the sticky hit or load-balance →
send; a member that refuses the connection is put in error and the request fails over, up
to ``maxattempts`` (members - 1) times. The simulated sequence must equal httpd's.

Byte accounting (what bytraffic sees) as httpd 2.4.71 does it, found by these recordings:
``transferred`` grows by the request head sent to the backend (the backend measured it), and
``read`` by the length of the response's status line without its CRLF plus the body; the
other response header lines are not counted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portico.upstream.candidates import BalancerView, force_recovery
from portico.upstream.lbmethods import LBMethod, default_registry
from portico.upstream.status import ERROR, INIT, LocalMemberState, apply_status_param, is_usable
from portico.upstream.sticky import StickyConfig, find_session_route

DATA = Path(__file__).parent / "httpd_sequences"
FILES = sorted(DATA.glob("*.json"))
N_MIN_SCENARIOS = 25
STATUS_LINE = len("HTTP/1.1 200 OK")  # what httpd adds to `read` besides the body


def _members(spec: list[dict]) -> tuple[list[LocalMemberState], list[float]]:
    members, retry = [], []
    for m in spec:
        members.append(LocalMemberState(
            status=apply_status_param(INIT, m.get("status", "")),
            lbfactor=round(float(m.get("loadfactor", 1)) * 100),
            lbset=int(m.get("lbset", 0)),
            route=m.get("route", ""), redirect=m.get("redirect", "")))
        retry.append(float(m.get("retry", 60)))
    return members, retry


def _sticky(balancer: dict) -> StickyConfig | None:
    if "stickysession" not in balancer:
        return None
    return StickyConfig.from_params(
        balancer["stickysession"], balancer.get("stickysessionsep", "."),
        scolonpathdelim=balancer.get("scolonpathdelim", "Off").lower() == "on",
        nofailover=balancer.get("nofailover", "Off").lower() == "on")


def _pick(method: LBMethod, view: BalancerView, sticky: StickyConfig | None, url: str,
          cookie: str | None, now: float) -> int | None:
    """One pre_request (§7.4): the member index, or None for a 503."""
    force_recovery(view, now)
    result = find_session_route(sticky, view, url, cookie, now)
    if result.index is not None:
        method.account_sticky(view, result.index)
        return result.index
    if result.refuse:
        return None
    return method.find_best(view, now)


def simulate(scenario: dict) -> list[str]:
    """The member ids httpd would answer with, one per request, "503" for a refusal."""
    spec = scenario["members"]
    members, retry = _members(spec)
    view = BalancerView(members, retry)
    method = default_registry().create(scenario["lbmethod"])
    sticky = _sticky(scenario.get("balancer", {}))
    max_attempts = len(members) - 1 if len(members) > 1 else 0
    requests = scenario.get("requests") or [{} for _ in scenario["sequence"]]
    out: list[str] = []
    for i, req in enumerate(requests):
        now = 1000.0 + i
        path = req.get("path", f"/p/{i:02d}")
        url = "balancer://lb" + path
        attempts = 0
        while True:
            index = _pick(method, view, sticky, url, req.get("cookie"), now)
            if index is None:
                out.append("503")
                break
            method.on_request_start(view, index, now)
            if spec[index].get("dead"):
                # Connection refused: the scheme handler's 503 puts the member in error.
                method.on_request_end(view, index, sent=0, received=0, now=now)
                members[index].status |= ERROR
                members[index].error_time = now
                if not is_usable(members[index].status) and max_attempts > attempts:
                    attempts += 1
                    continue
                out.append("503")
                break
            method.on_first_byte(view, index, 0.001, now)
            method.on_request_end(view, index, sent=scenario["request_head_bytes"][i],
                                  received=STATUS_LINE + spec[index].get("size", 2), now=now)
            out.append(spec[index]["id"])
            break
    return out


def test_recordings_are_present() -> None:
    assert len(FILES) >= N_MIN_SCENARIOS
    methods = {json.loads(p.read_text())["lbmethod"] for p in FILES}
    assert methods == {"byrequests", "bytraffic", "bybusyness"}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_replays_httpd_sequence(path: Path) -> None:
    scenario = json.loads(path.read_text())
    if "config_error" in scenario:
        # Kept as a record for the config checks: httpd refuses loadfactor < 1.
        assert "LoadFactor must be a number between 1..100" in scenario["config_error"]
        return
    assert scenario["sequence"], "an empty recording proves nothing"
    assert simulate(scenario) == scenario["sequence"]
