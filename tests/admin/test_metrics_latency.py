"""The per-member request-duration histogram in /metrics, over real sockets: a slow member
(60 ms) lands between the 0.05 and 0.1 buckets, a fast standalone worker below 0.05."""

from __future__ import annotations

from pathlib import Path

import pytest

from portico.state.layout import LATENCY_BOUNDS
from tests.admin.promtext import Sample, parse, value
from tests.support.idservers import IdServers
from tests.support.lbclient import fetch
from tests.support.lbconf import start_balanced
from tests.support.proxy import server_kind

pytestmark = pytest.mark.skipif(server_kind() != "portico", reason="portico's own handlers")

CONF = """\
<Proxy "balancer://lb">
    BalancerMember {{slow}}
</Proxy>
<Location "/metrics">
    SetHandler metrics
    Require ip 127.0.0.1
</Location>
ProxyPass "/metrics" !
ProxyPass "/solo/" "{{fast}}/"
ProxyPass "/" "balancer://lb/"
"""

HIST = "portico_member_request_duration_seconds"
LB = "balancer://lb"


def _le(bound: float) -> str:
    return repr(float(bound))


def _members(samples: list[Sample], balancer: str) -> list[str]:
    return sorted({dict(ls)["member"] for name, ls, _ in samples
                   if name == HIST + "_count" and dict(ls)["balancer"] == balancer})


def test_slow_member_histogram(tmp_path: Path) -> None:
    n_slow, n_fast = 5, 4
    with (IdServers(["slow", "fast"]) as servers,
          start_balanced(CONF, tmp_path, servers) as proxy):
        servers.set_delay("slow", 0.06)
        before = fetch(proxy.port, "/metrics")
        slow = [fetch(proxy.port, f"/s/{i}").status for i in range(n_slow)]
        fast = [fetch(proxy.port, f"/solo/{i}").status for i in range(n_fast)]
        after = fetch(proxy.port, "/metrics")
    assert slow == [200] * n_slow and fast == [200] * n_fast
    types, samples = parse(after.body.decode())     # strict, histogram rules included
    _, empty = parse(before.body.decode())
    assert types[HIST] == "histogram"
    member = servers.url("slow")
    assert _members(samples, LB) == [member]
    assert value(empty, HIST + "_count", balancer=LB, member=member) == 0
    assert value(empty, HIST + "_bucket", balancer=LB, member=member, le="+Inf") == 0

    # Every slow request is counted, none is at or under 50 ms, all are under 100 ms.
    count = value(samples, HIST + "_count", balancer=LB, member=member)
    assert count == n_slow == value(samples, "portico_member_requests_total",
                                    balancer=LB, member=member)
    assert value(samples, HIST + "_bucket", balancer=LB, member=member, le="0.05") == 0
    assert value(samples, HIST + "_bucket", balancer=LB, member=member, le="0.1") == n_slow
    assert value(samples, HIST + "_bucket", balancer=LB, member=member, le="+Inf") == n_slow
    total = value(samples, HIST + "_sum", balancer=LB, member=member)
    assert 0.06 * n_slow <= total < 0.1 * n_slow
    bucket_les = [dict(ls)["le"] for name, ls, _ in samples
                  if name == HIST + "_bucket" and dict(ls)["member"] == member]
    assert bucket_les == [*(_le(b) for b in LATENCY_BOUNDS), "+Inf"]

    # The standalone worker is labelled balancer="" and its requests are fast.
    (solo,) = _members(samples, "")
    assert value(samples, HIST + "_count", balancer="", member=solo) == n_fast
    assert value(samples, HIST + "_bucket", balancer="", member=solo, le="0.05") == n_fast
    assert value(samples, HIST + "_sum", balancer="", member=solo) < 0.05 * n_fast
