"""``lbmethod=bybusyness``: fewest requests in flight, §9.4.

The candidate with the lowest ``busy`` wins; among equally busy candidates the byrequests
score decides (every candidate's ``lbstatus`` grows by its ``lbfactor``, the winner loses the
sum, ties go to the earlier candidate). The loadfactor does not scale ``busy``: a heavier
member only wins ties more often.

Worked schedule, a (100), b (100), c (300); a already has 1 request in flight, b and c none::

    request  busy a/b/c   lbstatus after adding   chosen   lbstatus after
       1       1/0/0        100 / 100 / 300         c      100 / 100 / -200
       2       1/0/1        200 / 200 / 100         b      200 / -300 / 100   (b: busy 0)
    (b and c still busy; a finishes)
       3       0/1/1        300 / -200 / 400        a      -200 / -200 / 400  (a: busy 0)

With sequential requests (nothing in flight) it picks exactly as byrequests.
"""

from __future__ import annotations

__all__ = ["ByBusyness"]

from collections.abc import Sequence

from portico.upstream.lbmethods.base import LBMethod
from portico.upstream.status import MemberState


class ByBusyness(LBMethod):
    """Least busy, ties by weighted request counting."""

    name = "bybusyness"

    def pick(self, members: Sequence[MemberState], candidates: Sequence[int]) -> int:
        best = -1
        total = 0
        for i in candidates:
            m = members[i]
            m.lbstatus += m.lbfactor
            total += m.lbfactor
            if best < 0:
                best = i
                continue
            b = members[best]
            if m.busy < b.busy or (m.busy == b.busy and m.lbstatus > b.lbstatus):
                best = i
        members[best].lbstatus -= total
        return best
