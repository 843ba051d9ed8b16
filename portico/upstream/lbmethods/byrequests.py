"""``lbmethod=byrequests`` (httpd's default): weighted request counting, §9.2.

Each request, every candidate's ``lbstatus`` grows by its ``lbfactor`` (loadfactor x 100);
the candidate with the highest ``lbstatus`` wins (ties: the earlier candidate) and loses the
sum of the candidates' factors. That is a smooth weighted round-robin: the sum of the
scores stays constant and each member's share tends to its weight.

Worked schedule, a loadfactor=1 (100) and b loadfactor=3 (300), scores start at 0::

    request  a before→after   b before→after   chosen
       1      100 →  100       300 → -100       b     (400 subtracted from b)
       2      200 → -200       200 →  200       a     (tie: a is earlier)
       3     -100 → -100       500 →  100       b
       4        0 →    0       400 →    0       b
       5      100 →  100       300 → -100       b
       6      200 → -200       200 →  200       a     ... b a b b b a (as httpd does)
"""

from __future__ import annotations

__all__ = ["ByRequests"]

from collections.abc import Sequence

from portico.upstream.lbmethods.base import LBMethod
from portico.upstream.status import MemberState


class ByRequests(LBMethod):
    """Weighted request counting (smooth weighted round-robin on ``lbstatus``)."""

    name = "byrequests"

    def pick(self, members: Sequence[MemberState], candidates: Sequence[int]) -> int:
        best = -1
        best_status = 0
        total = 0
        for i in candidates:
            m = members[i]
            m.lbstatus += m.lbfactor
            total += m.lbfactor
            if best < 0 or m.lbstatus > best_status:
                best, best_status = i, m.lbstatus
        members[best].lbstatus -= total
        return best
