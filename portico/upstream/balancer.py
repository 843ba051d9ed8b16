"""A balancer at run time: members, their shared records, the lbmethod and sticky routing.

``Balancer.choose`` is httpd's pre_request (reference §7.4): under the balancer's
cross-process lock it runs forced recovery, the sticky lookup (§8) and, failing that, the
lbmethod over the shared candidate walk (§9.1). ``mark_error`` and ``after_response`` carry
out the failover rules of §6.4/§7.5 (connect failures, failonstatus, failontimeout). All state
lives in the scoreboard, so every worker process balances like one.

Run-time edits (the balancer-manager) write the balancer's shared record. ``choose`` compares
the record's edit counter with the one it last saw (one shared read per request) and, when it
moved, re-reads what the manager may change: the lbmethod (a new instance from the registry,
reset) and the sticky-session names. ``params`` is a `LiveParams`: ``timeout``,
``maxattempts`` and ``nofailover`` read the shared record, everything else is the config's.
"""

from __future__ import annotations

__all__ = ["Balancer", "Choice", "LiveParams"]

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from portico.config.model import BalancerParams, BalancerSpec
from portico.state.scoreboard import BalancerSlot, Scoreboard, WorkerSlot
from portico.upstream.candidates import BalancerView, force_recovery
from portico.upstream.lbmethods.registry import UnknownLBMethod, default_registry
from portico.upstream.status import ERROR, IGNORE_ERRORS, is_usable
from portico.upstream.sticky import StickyConfig, StickyResult, find_session_route
from portico.upstream.worker import Worker


@dataclass(frozen=True, slots=True)
class Choice:
    """The outcome of ``choose``: a member index, or a refusal (503)."""

    index: int | None
    sticky: StickyResult | None = None
    refused: bool = False     # nofailover: the session's member is down (503)


class LiveParams:
    """A balancer's parameters as they are now: the config's, except the ones the manager
    edits at run time (``timeout``, ``maxattempts``, ``nofailover``), which are read from the
    shared record on every access, so an edit made in any process applies in all of them."""

    __slots__ = ("config", "record")

    def __init__(self, config: BalancerParams, record: BalancerSlot) -> None:
        self.config = config
        self.record = record

    @property
    def timeout(self) -> float:
        return self.record.timeout

    @property
    def maxattempts(self) -> int:
        return self.record.maxattempts

    @property
    def nofailover(self) -> bool:
        return bool(self.record.nofailover)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not defined above: the config's value.
        return getattr(self.config, name)


class Balancer:
    """One ``balancer://name`` in one serving process (see the module docstring)."""

    __slots__ = ("_configured", "_edits", "_method_name", "_seen", "board", "grow", "lock",
                 "method", "members", "name", "params", "record", "spec", "sticky", "view")

    def __init__(self, spec: BalancerSpec, members: Sequence[Worker], board: Scoreboard) -> None:
        self.name = spec.name
        self.spec = spec
        self.board = board
        # Makes the Worker of a member added at run time (set by the pipeline); None: such
        # members are not routed to by this process.
        self.grow: Callable[[str, WorkerSlot], Worker | None] | None = None
        self.members = tuple(members)
        self._configured = len(self.members)
        # The scoreboard's member tuple last adopted; () until the first look, so members
        # added before this process started are adopted on its first request.
        self._seen: tuple[WorkerSlot, ...] = ()
        self.record = board.balancer(spec.name)
        self.params = LiveParams(spec.params, self.record)
        self.lock = board.lock(spec.name)
        self.view = BalancerView(
            [w.slot for w in self.members], retry=[w.spec.params.retry for w in self.members],
            forcerecovery=spec.params.forcerecovery)
        self.method = default_registry().create(spec.params.lbmethod)
        self._method_name = spec.params.lbmethod.lower()
        p = spec.params
        self.sticky = None
        if p.stickysession:
            sticky_name = p.stickysession
            if p.stickysession_url and p.stickysession_url != p.stickysession:
                sticky_name = f"{p.stickysession}|{p.stickysession_url}"
            self.sticky = StickyConfig.from_params(
                sticky_name, p.stickysessionsep if p.stickysessionsep is not None else "Off",
                scolonpathdelim=p.scolonpathdelim, nofailover=p.nofailover)
        # The record may already differ from the config (a reload that kept manager edits,
        # or an edit made before this process started): adopt it now.
        self._edits = -1
        self.sync_from_record()

    def sync_from_record(self) -> None:
        """Adopt the record's lbmethod and sticky settings (call under ``self.lock``, or
        before the balancer serves). Cheap when nothing the method or sticky use changed."""
        record = self.record
        self._edits = record.edits
        wanted = record.lbmethod.lower()
        if wanted and wanted != self._method_name:
            try:
                method = default_registry().create(wanted)
            except UnknownLBMethod:
                method = None   # the manager only writes registered names; keep serving
            if method is not None:
                method.reset(self.view)
                self.method = method
                self._method_name = wanted
        cookie, url = record.sticky, record.sticky_path
        current = self.sticky
        if not cookie and not url:
            self.sticky = None
            return
        nofailover = bool(record.nofailover)
        if (current is not None and current.cookie == cookie and current.url == (url or cookie)
                and current.nofailover == nofailover):
            return
        p = self.params.config
        name = cookie if not url or url == cookie else f"{cookie or url}|{url}"
        try:
            self.sticky = StickyConfig.from_params(
                name, p.stickysessionsep if p.stickysessionsep is not None else "Off",
                scolonpathdelim=p.scolonpathdelim, nofailover=nofailover)
        except ValueError:
            self.sticky = None

    def choose(self, url: str, cookie: str | None, exclude: frozenset[int] = frozenset()
               ) -> Choice:
        """Pick the member for one request (sticky first, then the lbmethod)."""
        now = time.time()
        if self.grow is not None:
            slots = self.board.members(self.name)   # a new tuple only after an add/remove
            if slots is not self._seen:
                self._adopt_added_members(slots)
        view = self.view
        with self.lock:
            if self.record.edits != self._edits:
                self.sync_from_record()
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

    def _adopt_added_members(self, slots: tuple[WorkerSlot, ...]) -> None:
        """Follow the members the manager added to or removed from growth slots (in any
        process): make Workers here for new ones, drop the removed ones, so this process
        routes like the others. Config members keep their places (they come first and are
        never removed); when a member went away the lbmethod state restarts, because the
        positions of the added members after it moved."""
        assert self.grow is not None
        self._seen = slots
        configured = self.members[:self._configured]
        had = {(w.slot.index, w.slot.name): w for w in self.members[self._configured:]}
        added: list[Worker] = []
        # Config members occupy the first records (never freed); growth slots follow.
        in_config = self.record.max_members - self.record.growth
        for slot in slots[in_config:]:
            worker = had.pop((slot.index, slot.name), None)
            if worker is None:
                worker = self.grow(self.name, slot)
            if worker is not None:
                added.append(worker)
        members = (*configured, *added)
        if members == self.members:
            return
        removed = bool(had)
        for worker in had.values():
            worker.close()   # its idle pooled connections go; in-flight ones finish
        self.members = members
        self.view = BalancerView(
            [w.slot for w in members], retry=[w.spec.params.retry for w in members],
            forcerecovery=self.view.forcerecovery)
        if removed:
            with self.lock:
                self.method.reset(self.view)

    def _now_at(self, view: BalancerView, index: int) -> int:
        """Where the member that was ``index`` in ``view`` (the view the request was
        assigned in) is now: members added at run time move down when one before them is
        removed. -1 when it was removed itself; its accounting is then dropped (its growth
        slot may already serve another member)."""
        if view is self.view:
            return index
        slot = view.members[index]
        for position, member in enumerate(self.view.members):
            if member is slot:
                return position
        return -1

    def start(self, view: BalancerView, index: int) -> None:
        """The request assigned to member ``index`` of ``view`` is about to go to it."""
        index = self._now_at(view, index)
        if index >= 0:
            self.method.on_request_start(self.view, index, time.time())

    def first_byte(self, view: BalancerView, index: int, ttfb: float) -> None:
        index = self._now_at(view, index)
        if index >= 0:
            self.method.on_first_byte(self.view, index, ttfb, time.time())

    def end(self, view: BalancerView, index: int, sent: int, received: int,
            error: bool) -> None:
        """The request on member ``index`` of ``view`` finished (once per ``start``)."""
        index = self._now_at(view, index)
        if index < 0:
            return
        self.method.on_request_end(self.view, index, sent=sent, received=received,
                                   now=time.time())
        if error:
            self.view.members[index].add_errors(1)

    def mark_error(self, view: BalancerView, index: int) -> None:
        """Put member ``index`` of ``view`` into error (E) unless it ignores errors (§6.4)."""
        index = self._now_at(view, index)
        if index < 0:
            return
        slot = self.view.members[index]
        if slot.status & IGNORE_ERRORS:
            return
        slot.error_time = time.time()
        slot.set_flags(ERROR)

    def usable(self, view: BalancerView, index: int) -> bool:
        index = self._now_at(view, index)
        return index >= 0 and is_usable(self.view.members[index].status)

    def after_response(self, view: BalancerView, index: int, status: int | None,
                       timed_out: bool) -> None:
        """post_request: failonstatus and failontimeout (§7.1), skipped for ``I`` members."""
        p = self.params.config
        if (status is not None and status in p.failonstatus) or (timed_out and p.failontimeout):
            self.mark_error(view, index)
