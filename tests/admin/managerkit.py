"""What the balancer-manager tests share: the manager's routes for a config, the members
that answered n requests, and ``portico ctl`` run as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from tests.support.lbclient import fetch
from tests.support.proxy import REPO, Portico

#: The tail of a test config: the manager at /balancer-manager, everything else to
#: balancer://lb (a config's <Proxy "balancer://lb"> section goes before it).
MANAGER_ROUTES = """\
<Location "/balancer-manager">
    SetHandler balancer-manager
</Location>
ProxyPass "/balancer-manager" !
ProxyPass "/" "balancer://lb/"
"""


def who(proxy: Portico, n: int) -> Counter[str]:
    """How many of ``n`` requests (all must answer 200) each member served."""
    answers = [fetch(proxy.port, f"/p/{i}") for i in range(n)]
    assert all(a.status == 200 for a in answers), [a.status for a in answers]
    return Counter(a.member for a in answers)


def ctl(proxy: Portico, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m portico ctl --url <proxy's manager> ARGS`` to completion."""
    return ctl_url(proxy.url + "/balancer-manager", *args)


def ctl_url(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "portico", "ctl", "--url", url, *args],
                          cwd=REPO, capture_output=True, text=True, timeout=20,
                          stdin=subprocess.DEVNULL)
