"""mod_status and ProxyStatus directives (§14): what server-status shows.

``ExtendedStatus On|Off`` (server config; On by default, as in httpd since 2.3.6) adds the
request and byte totals to server-status. ``ProxyStatus On|Off|Full`` (server or virtual
host; Full means On) adds one table per balancer. The page itself is
``<Location …> SetHandler server-status </Location>`` (portico.admin.status).
"""

from __future__ import annotations

__all__ = ["TABLE"]

from portico.config.build import BuildContext
from portico.config.directives.common import flag
from portico.config.registry import Context, DirectiveTable
from portico.config.tree import Node

TABLE = DirectiveTable("status")


@TABLE.directive("ExtendedStatus", Context.SERVER)
def _extended_status(ctx: BuildContext, node: Node) -> None:
    ctx.server.core["extended_status"] = flag(ctx, node.args[0])


@TABLE.directive("ProxyStatus", Context.SERVER | Context.VHOST)
def _proxy_status(ctx: BuildContext, node: Node) -> None:
    word = node.args[0].lower()
    if word not in ("on", "off", "full"):
        raise ctx.error(f"must be On, Off or Full, not {node.args[0]!r}")
    ctx.set_setting("proxy_status", word != "off")
