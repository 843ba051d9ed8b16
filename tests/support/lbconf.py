"""Start a proxy whose config balances over `IdServers` members.

Templates name each member's URL by its id as a placeholder (``BalancerMember {{a}}``), as
everything else in `Portico` templates. The LoadModule lines mod_proxy_balancer needs in
Apache httpd are prepended: portico ignores LoadModule, and with PORTICO_E2E_SERVER=httpd the
same test runs against the reference.
"""

from __future__ import annotations

__all__ = ["LB_MODULES", "start_balanced"]

from collections.abc import Sequence
from pathlib import Path

from tests.support.idservers import IdServers
from tests.support.proxy import Portico

LB_MODULES = "".join(
    f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so\n"
    for m in ("proxy_balancer", "slotmem_shm", "lbmethod_byrequests", "lbmethod_bytraffic",
              "lbmethod_bybusyness"))


def start_balanced(template: str, workdir: Path, servers: IdServers,
                   extra_args: Sequence[str] = (), **subs: object) -> Portico:
    """`Portico.start` on ``LB_MODULES + template`` with ``{{<member id>}}`` = member URL.

    Member ids must not collide with the harness's own placeholders (port, tmp, ...).
    """
    values: dict[str, object] = {ident: servers.url(ident) for ident in servers.members}
    values.update(subs)
    return Portico.start(LB_MODULES + template, workdir, extra_args=extra_args, **values)
