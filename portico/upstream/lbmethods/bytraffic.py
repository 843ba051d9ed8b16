"""``lbmethod=bytraffic``: least weighted traffic, §9.3.

A candidate's traffic is ``transferred // lbfactor + read // lbfactor`` (bytes sent to it
plus bytes read from it, each divided by loadfactor x 100 with integer division, as httpd
does); the lowest wins, ties go to the earlier candidate. The counters are cumulative with
no decay, so a member added or re-enabled later gets the traffic until it catches up.
The scores themselves (``lbstatus``) are not used.

To pick as httpd does, the request path must count like httpd 2.4 (checked against it by the
recorded sequences): ``transferred`` = request head + body sent; ``read`` = the response
status line without its CRLF + the body (the other response header lines are not counted).

Worked schedule, a (100) answers 1000 bytes, b (100) 2000, c (200) 2000; every request
sends 200 bytes; traffic = sent//factor + read//factor::

    request  traffic a / b / c       chosen   counters after (sent+read)
       1        0 /  0 /  0           a       a 200+1000
       2       12 /  0 /  0           b       b 200+2000
       3       12 / 22 /  0           c       c 200+2000
       4       12 / 22 / 11           c       c 400+4000   (11 < 12: c's weight 2 halves it)
       5       12 / 22 / 22           a       a 400+2000
"""

from __future__ import annotations

__all__ = ["ByTraffic"]

from collections.abc import Sequence

from portico.upstream.lbmethods.base import LBMethod
from portico.upstream.status import MemberState


class ByTraffic(LBMethod):
    """Least bytes moved per unit of weight."""

    name = "bytraffic"

    def pick(self, members: Sequence[MemberState], candidates: Sequence[int]) -> int:
        best = -1
        least = 0
        for i in candidates:
            m = members[i]
            factor = m.lbfactor or 1  # a zero factor cannot come from config; do not divide by it
            traffic = m.transferred // factor + m.read // factor
            if best < 0 or traffic < least:
                best, least = i, traffic
        return best
