"""Which members of a balancer may take a request: the one shared walk of §9.1, plus the
error recovery it relies on (§6.4 ``retry_worker``, §7.4 ``force_recovery``).

The walk only decides eligibility; an lbmethod then scores the candidates it returns
(DESIGN rule 9). How it works:

* lbsets are tried lowest first; a higher lbset is looked at only when every lower one gave
  no candidate at all (standbys included). Members of lbsets above the one that gave
  candidates are not examined, so their error timers are not touched (as in httpd).
* Inside an lbset, in configuration order: a draining (``N``) member is never a candidate;
  a draining *normal* member counts as unusable, so a spare may replace it. A member that is
  not usable is first offered to `retry_worker`. Usable normal members are candidates;
  each unusable normal member (D, S, E, C, U, or draining) lets one usable spare (``R``) in,
  spares taken in configuration order after all normal members. Only when that gives
  nobody are the usable standbys (``H``) the candidates.
* The order of the returned list is the order httpd's ``is_best`` sees them, so a method
  that breaks ties toward the earlier candidate matches httpd exactly.

Locking: everything here reads and writes member status; call it under the balancer lock,
together with the method's scoring of the result.
"""

from __future__ import annotations

__all__ = ["BalancerView", "eligible", "force_recovery", "retry_worker"]

from collections.abc import Sequence
from dataclasses import dataclass

from portico.upstream.status import (
    DRAIN,
    ERROR,
    IGNORE_ERRORS,
    SPARE,
    STANDBY,
    STOPPED,
    MemberState,
    is_usable,
)

DEFAULT_RETRY = 60.0


@dataclass(frozen=True, slots=True)
class BalancerView:
    """One balancer's members in configuration order, and the config the walk needs.

    ``retry`` holds each member's ``retry=`` in seconds, index for index with ``members``
    (missing entries mean the default, 60 s). ``forcerecovery`` is the balancer parameter.
    """

    members: Sequence[MemberState]
    retry: Sequence[float] = ()
    forcerecovery: bool = True

    def retry_of(self, index: int) -> float:
        """The ``retry`` seconds of member ``index``."""
        return self.retry[index] if index < len(self.retry) else DEFAULT_RETRY


def retry_worker(member: MemberState, retry: float, now: float) -> bool:
    """httpd's retry_worker (§6.4): maybe clear ``E``; True when the member is not in error.

    A stopped member stays in error; ``I`` always recovers; otherwise ``E`` is cleared only
    when ``now`` is *strictly* later than ``error_time + retry``. Each clearing counts in
    ``retries``. D and C are never cleared here.
    """
    status = member.status
    if not status & ERROR:
        return True
    if status & STOPPED:
        return False
    if status & IGNORE_ERRORS or now > member.error_time + retry:
        member.status = status & ~ERROR
        member.retries += 1
        return True
    return False


def force_recovery(view: BalancerView, now: float) -> bool:
    """§7.4: when every member is in error (even after retry), clear ``E`` on all of them.

    Members are examined in order until one is found (or recovered) out of error, as httpd
    does, so later members' timers are not touched then. Only with ``forcerecovery`` on does
    the forced clearing happen; each cleared member counts a retry. Returns True when the
    recovery was forced.
    """
    for i, member in enumerate(view.members):
        if not member.status & ERROR or retry_worker(member, view.retry_of(i), now):
            return False
    if not view.forcerecovery or not view.members:
        return False
    for member in view.members:
        member.retries += 1
        member.status &= ~ERROR
    return True


def eligible(view: BalancerView, now: float) -> list[int]:
    """Indexes of the members an lbmethod may choose from, in scoring order (§9.1).

    Empty when no member of any lbset is usable. Side effect: members examined while
    unusable go through `retry_worker`.
    """
    members = view.members
    lbsets = sorted({m.lbset for m in members})
    for lbset in lbsets:
        normal: list[int] = []
        spares: list[int] = []
        standbys: list[int] = []
        unusable = 0
        for i, m in enumerate(members):
            if m.lbset != lbset:
                continue
            status = m.status
            if status & DRAIN:
                if not status & (SPARE | STANDBY):
                    unusable += 1  # a drained normal member frees a spare's place
                continue
            if not is_usable(status):
                retry_worker(m, view.retry_of(i), now)
                status = m.status
            if status & SPARE:
                if is_usable(status):
                    spares.append(i)
            elif status & STANDBY:
                if is_usable(status):
                    standbys.append(i)
            elif is_usable(status):
                normal.append(i)
            else:
                unusable += 1
        chosen = normal + spares[:unusable]
        if chosen:
            return chosen
        if standbys:
            return standbys
    return []
