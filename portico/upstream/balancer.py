"""A balancer at run time: members, their shared records, the lbmethod and sticky routing.

``Balancer.choose`` is httpd's pre_request (reference §7.4): under the balancer's
cross-process lock it runs forced recovery, the sticky lookup (§8) and, failing that, the
lbmethod over the shared candidate walk (§9.1). ``mark_error`` and ``after_response`` carry
out the failover rules of §6.4/§7.5 (connect failures, failonstatus, failontimeout). All state
lives in the scoreboard, so every worker process balances like one.
"""

from __future__ import annotations

__all__ = ["Balancer", "Choice"]

import time
from collections.abc import Sequence
from dataclasses import dataclass

from portico.config.model import BalancerSpec
from portico.state.scoreboard import Scoreboard
from portico.upstream.candidates import BalancerView, force_recovery
from portico.upstream.lbmethods.registry import default_registry
from portico.upstream.status import ERROR, IGNORE_ERRORS, is_usable
from portico.upstream.sticky import StickyConfig, StickyResult, find_session_route
from portico.upstream.worker import Worker


@dataclass(frozen=True, slots=True)
class Choice:
    """The outcome of ``choose``: a member index, or a refusal (503)."""

    index: int | None
    sticky: StickyResult | None = None
    refused: bool = False     # nofailover: the session's member is down (503)


class Balancer:
    """One ``balancer://name`` in one serving process (see the module docstring)."""

    __slots__ = ("lock", "method", "members", "name", "params", "record", "sticky", "view")

    def __init__(self, spec: BalancerSpec, members: Sequence[Worker], board: Scoreboard) -> None:
        self.name = spec.name
        self.params = spec.params
        self.members = tuple(members)
        self.record = board.balancer(spec.name)
        self.lock = board.lock(spec.name)
        self.view = BalancerView(
            [w.slot for w in self.members], retry=[w.spec.params.retry for w in self.members],
            forcerecovery=spec.params.forcerecovery)
        self.method = default_registry().create(spec.params.lbmethod)
        p = spec.params
        self.sticky = None
        if p.stickysession:
            sticky_name = p.stickysession
            if p.stickysession_url and p.stickysession_url != p.stickysession:
                sticky_name = f"{p.stickysession}|{p.stickysession_url}"
            self.sticky = StickyConfig.from_params(
                sticky_name, p.stickysessionsep if p.stickysessionsep is not None else "Off",
                scolonpathdelim=p.scolonpathdelim, nofailover=p.nofailover)

    def choose(self, url: str, cookie: str | None, exclude: frozenset[int] = frozenset()
               ) -> Choice:
        """Pick the member for one request (sticky first, then the lbmethod)."""
        now = time.time()
        view = self.view
        with self.lock:
            force_recovery(view, now)
            result = None
            if self.sticky is not None:
                result = find_session_route(self.sticky, view, url, cookie, now)
                if result.index is not None and result.index not in exclude:
                    self.method.account_sticky(view, result.index)
                    return Choice(result.index, result)
                if result.refuse:
                    return Choice(None, result, refused=True)
            index = self.method.find_best(view, now)
        return Choice(index, result)

    def start(self, index: int) -> None:
        """The request is about to go to member ``index``."""
        self.method.on_request_start(self.view, index, time.time())

    def first_byte(self, index: int, ttfb: float) -> None:
        self.method.on_first_byte(self.view, index, ttfb, time.time())

    def end(self, index: int, sent: int, received: int, error: bool) -> None:
        """The request on member ``index`` finished (exactly once per ``start``)."""
        self.method.on_request_end(self.view, index, sent=sent, received=received,
                                   now=time.time())
        if error:
            self.view.members[index].add_errors(1)

    def mark_error(self, index: int) -> None:
        """Put member ``index`` into error (E) unless it ignores errors (§6.4)."""
        slot = self.view.members[index]
        if slot.status & IGNORE_ERRORS:
            return
        slot.error_time = time.time()
        slot.set_flags(ERROR)

    def usable(self, index: int) -> bool:
        return is_usable(self.view.members[index].status)

    def after_response(self, index: int, status: int | None, timed_out: bool) -> None:
        """post_request: failonstatus and failontimeout (§7.1), skipped for ``I`` members."""
        p = self.params
        if (status is not None and status in p.failonstatus) or (timed_out and p.failontimeout):
            self.mark_error(index)
