"""``lbmethod=p2c``: power of two choices on busy/loadfactor, ties by peak-EWMA latency.

Not an httpd method. Each request draws two distinct candidates at random and keeps the one
with fewer requests in flight per unit of weight (``busy / lbfactor``, compared exactly by
cross-multiplication). When that ties, the one with the lower peak-EWMA of time to first
byte wins; when that ties too (e.g. neither has a sample yet), the one drawn first, so
equal members share the load at random instead of the earlier one always winning. With a
single candidate there is no draw.

Peak-EWMA: a sample above the current average replaces it at once (a slowing backend is
noticed on its first slow answer); a lower one is blended in with weight
``1 - exp(-dt/decay)``, ``dt`` being the time since the last sample. When read, the average
also decays toward 0 with the time since its last sample, so a member that was slow once is
tried again after a while instead of being starved forever.

The averages are per process (a latency seen by this process); ``busy`` comes from the
shared member state. The RNG is injectable (``rng=random.Random(seed)``) for repeatable tests.

Worked schedule, a and b both loadfactor 1, c loadfactor 2; busy a=2, b=1, c=2; ttfb
averages a 0.050 s, b 0.200 s, c 0.010 s::

    draw (a, b): busy/factor 2 vs 1      → b
    draw (a, c): busy/factor 2 vs 1      → c   (c's weight 2 halves its load)
    draw (b, c): busy/factor 1 vs 1, tie → c   (ttfb 0.010 < 0.200)
"""

from __future__ import annotations

__all__ = ["PowerOfTwo"]

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from portico.upstream.candidates import BalancerView
from portico.upstream.lbmethods.base import LBMethod
from portico.upstream.status import MemberState

DEFAULT_DECAY = 10.0  # seconds: how fast old latency stops mattering


@dataclass(slots=True)
class PeakEwma:
    """A peak-sensitive, time-decayed average of one member's time to first byte."""

    value: float = 0.0
    stamp: float = 0.0      # when the last sample was taken
    samples: int = 0

    def read(self, now: float, decay: float) -> float:
        """The average as of ``now`` (decayed toward 0 since the last sample)."""
        if not self.samples:
            return 0.0
        dt = max(0.0, now - self.stamp)
        return self.value * math.exp(-dt / decay)

    def observe(self, sample: float, now: float, decay: float) -> None:
        """Add one latency sample taken at ``now``."""
        current = self.read(now, decay)
        if not self.samples or sample > current:
            self.value = sample
        else:
            dt = max(0.0, now - self.stamp)
            keep = math.exp(-dt / decay)
            self.value = current * keep + sample * (1.0 - keep)
        self.stamp = now
        self.samples += 1


class PowerOfTwo(LBMethod):
    """Two random candidates, the less loaded per weight wins; ties by peak-EWMA ttfb."""

    name = "p2c"

    def __init__(self, rng: random.Random | None = None, decay: float = DEFAULT_DECAY) -> None:
        if decay <= 0:
            raise ValueError("decay must be positive")
        self._rng = rng if rng is not None else random.Random()
        self._decay = decay
        self._latency: dict[int, PeakEwma] = {}   # member index → average (this process)
        self._now = 0.0

    def latency(self, index: int, now: float) -> float:
        """The current peak-EWMA ttfb of member ``index`` (0.0 before any sample)."""
        ewma = self._latency.get(index)
        return ewma.read(now, self._decay) if ewma is not None else 0.0

    def find_best(self, view: BalancerView, now: float) -> int | None:
        self._now = now  # pick() reads latencies as of this request
        return super().find_best(view, now)

    def pick(self, members: Sequence[MemberState], candidates: Sequence[int]) -> int:
        if len(candidates) == 1:
            return candidates[0]
        x, y = self._rng.sample(range(len(candidates)), 2)
        first, second = candidates[x], candidates[y]
        return second if self._better(members, second, first) else first

    def _better(self, members: Sequence[MemberState], i: int, j: int) -> bool:
        """True when member ``i`` is strictly preferable to member ``j``."""
        a, b = members[i], members[j]
        load_a = a.busy * max(b.lbfactor, 1)
        load_b = b.busy * max(a.lbfactor, 1)
        if load_a != load_b:
            return load_a < load_b
        return self.latency(i, self._now) < self.latency(j, self._now)

    def on_first_byte(self, view: BalancerView, index: int, ttfb: float, now: float) -> None:
        ewma = self._latency.get(index)
        if ewma is None:
            ewma = self._latency[index] = PeakEwma()
        ewma.observe(ttfb, now, self._decay)

    def reset(self, view: BalancerView) -> None:
        """Scores and this process's latency averages forgotten."""
        super().reset(view)
        self._latency.clear()
