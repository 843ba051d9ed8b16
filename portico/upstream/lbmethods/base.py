"""The lbmethod plugin API: what a load-balancing method is, and what it may touch.

Writing a method
================

A method is a subclass of `LBMethod` with a ``name`` and a `LBMethod.pick`. It only scores:
the shared walk (`portico.upstream.candidates.eligible`) has already applied status flags,
lbsets, spares, standbys, draining and error recovery, and hands ``pick`` a non-empty list of
member indexes in httpd's scoring order. ``pick`` returns one of them and may update the
members' scores (``lbstatus``) as it goes. Sticky routing never reaches ``pick``; sticky
choices are accounted through `LBMethod.account_sticky`.

Publish it for portico with an entry point in the ``portico.lbmethods`` group, whose name
is the ``lbmethod=`` value and whose object is the class (or any zero-argument callable
returning an `LBMethod`)::

    [project.entry-points."portico.lbmethods"]
    leastbytes = "mypkg.lb:LeastBytes"

Built-in names (byrequests, bytraffic, bybusyness, p2c) cannot be replaced by a plugin.

State and concurrency
=====================

Members are `portico.upstream.status.MemberState` objects, normally slots of the shared
scoreboard, so every serving process sees the same numbers. Keep lasting state there
(``lbstatus``, counters) and keep a method instance free of shared state, except for local
observations that are per process by nature (as ``p2c``'s latency averages).

The caller holds the balancer lock around `find_best` and `account_sticky` (they
read-modify-write ``lbstatus``/``status`` across members). The request hooks
(`on_request_start`, `on_first_byte`, `on_request_end`) only add to one member's
counters and are called without the lock.

Call sequence for one request: ``find_best`` (or ``account_sticky`` for a sticky hit) →
``on_request_start`` → ``on_first_byte`` (when the response head arrives) →
``on_request_end`` (always, also after an error).
"""

from __future__ import annotations

__all__ = ["LBMethod"]

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from portico.upstream.candidates import BalancerView, eligible
from portico.upstream.status import MemberState, is_usable


class LBMethod(ABC):
    """A load-balancing method. Subclasses set ``name`` and implement `pick`."""

    name: ClassVar[str] = ""

    @abstractmethod
    def pick(self, members: Sequence[MemberState], candidates: Sequence[int]) -> int:
        """Choose one of ``candidates`` (indexes into ``members``, never empty) and account it.

        Ties must go to the earlier candidate when the method claims httpd's behaviour.
        """

    def find_best(self, view: BalancerView, now: float) -> int | None:
        """The member index for a non-sticky request, or None when no member may take it.

        Runs the shared walk, lets `pick` choose, and counts the election.
        """
        candidates = eligible(view, now)
        if not candidates:
            return None
        index = self.pick(view.members, candidates)
        view.members[index].add_elected()
        return index

    def account_sticky(self, view: BalancerView, index: int) -> None:
        """Account a request that sticky routing sent to ``index`` (httpd's default, §7.4).

        Every usable member gains its lbfactor; the chosen one loses the sum. That keeps the
        byrequests-style scores fair although the method did not choose. Counts the election.
        """
        total = 0
        for m in view.members:
            if is_usable(m.status):
                m.lbstatus += m.lbfactor
                total += m.lbfactor
        chosen = view.members[index]
        chosen.lbstatus -= total
        chosen.add_elected()

    def reset(self, view: BalancerView) -> None:
        """Forget scores (manager re-enable, lbmethod change): lbstatus back to 0.

        The per-request counters (busy, transferred, read) belong to the scoreboard, which
        resets them itself (httpd's reset clears them too for bybusyness and bytraffic).
        """
        for m in view.members:
            m.lbstatus = 0

    def on_request_start(self, view: BalancerView, index: int, now: float) -> None:
        """The request is about to be sent to ``index``: one more in flight."""
        view.members[index].add_busy(1)

    def on_first_byte(  # noqa: B027 (a hook; doing nothing is the default)
        self, view: BalancerView, index: int, ttfb: float, now: float,
    ) -> None:
        """The response head from ``index`` arrived ``ttfb`` seconds after the request went."""

    def on_request_end(
        self, view: BalancerView, index: int, *, sent: int, received: int, now: float,
    ) -> None:
        """The request on ``index`` finished (or failed): bytes sent to / read from it.

        Call exactly once per `on_request_start`, so ``busy`` returns to where it was.
        """
        view.members[index].end(sent, received)
