"""Access control (mod_authz_core / mod_access_compat) until portico implements it.

``Require all granted`` changes nothing for a proxy that allows everything, so it is
accepted; anything else would be a security promise portico cannot keep yet, so it fails.
"""

from __future__ import annotations

__all__ = ["TABLE"]

from portico.config.build import BuildContext
from portico.config.registry import ALL_CONTEXTS, DirectiveTable
from portico.config.tree import Node

TABLE = DirectiveTable("access")

_UNSUPPORTED = "access control is not supported yet (only 'Require all granted' is accepted)"


@TABLE.directive("Require", ALL_CONTEXTS, args=(1, None))
def _require(ctx: BuildContext, node: Node) -> None:
    if [word.lower() for word in node.args] != ["all", "granted"]:
        raise ctx.error(_UNSUPPORTED)


def _refuse(ctx: BuildContext, node: Node) -> None:
    raise ctx.error(_UNSUPPORTED)


for _name in ("Order", "Allow", "Deny", "Satisfy"):
    TABLE.directive(_name, ALL_CONTEXTS, args=(0, None))(_refuse)
for _name in ("RequireAll", "RequireAny", "RequireNone"):
    TABLE.section(_name, ALL_CONTEXTS, args=(0, None))(_refuse)
