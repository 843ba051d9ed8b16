"""The balancers a config defines while it is read, frozen into ``BalancerSpec``s at the end.

One balancer per name for the whole config (docs/compat.md): httpd keeps a balancer list per
virtual host, but every place that names ``balancer://x`` here means the same balancer. Two
rules keep that from silently changing a config's meaning:

* the members of a balancer all come from one server scope (the main server or one
  <VirtualHost>); members given in a second scope are an error, since in httpd they would make
  a second, different balancer;
* each server scope remembers the balancers it named, so a virtual host lists the balancers
  it can see (its own, then the main server's when BalancerInherit is on), as httpd does.

Errors raised here carry file:line but no directive; the walker adds the directive.
"""

from __future__ import annotations

__all__ = ["BalancerTable", "HostBalancerSettings", "host_balancer_fields"]

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from portico.config.model import BalancerParams, BalancerSpec, Source
from portico.config.params import parse_balancer_params
from portico.errors import ConfigError

_log = logging.getLogger("portico.config")


@dataclass
class _Pending:
    """A balancer while the config is read."""

    name: str
    source: Source
    params: BalancerParams = field(default_factory=BalancerParams)
    members: list[str] = field(default_factory=list)
    frontends: list[str] = field(default_factory=list)
    member_scope: Source | None = None     # the server scope whose members it has
    member_source: Source | None = None    # the first BalancerMember, for error messages


class BalancerTable:
    """Balancers in the order the config first names them, keyed by ``balancer://name``.

    Server scopes are identified by their own Source (the main server's file:1, or the
    <VirtualHost> line), which is unique per scope.
    """

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._named_in: dict[Source, list[str]] = {}

    def exists(self, name: str) -> bool:
        return name in self._pending

    def name(self, name: str, scope: Source, source: Source) -> None:
        """Record that ``scope`` names balancer ``name`` at ``source``; create it if new."""
        if name not in self._pending:
            self._pending[name] = _Pending(name, source)
        names = self._named_in.setdefault(scope, [])
        if name not in names:
            names.append(name)

    def set_params(self, name: str, pairs: Sequence[tuple[str, str]], source: Source) -> None:
        """Apply balancer ``key=value`` pairs (later values win, as in httpd)."""
        pending = self._pending[name]
        pending.params = parse_balancer_params(pairs, source, base=pending.params)

    def add_member(self, name: str, worker_name: str, scope: Source, source: Source) -> None:
        """Append member ``worker_name`` (already in the worker table) to balancer ``name``.

        A member that shares an earlier member's worker is not listed twice.
        """
        pending = self._pending[name]
        if pending.member_scope is None:
            pending.member_scope, pending.member_source = scope, source
        elif pending.member_scope != scope:
            raise ConfigError(
                f"{name} already has members from another server scope (first at "
                f"{pending.member_source}); portico keeps one balancer per name for the whole "
                "config, so give each virtual host's balancer its own name",
                source.file, source.line)
        if worker_name not in pending.members:
            pending.members.append(worker_name)

    def add_frontend(self, name: str, path: str) -> None:
        """Record a ProxyPass path that routes to balancer ``name`` (the manager shows it)."""
        self._pending[name].frontends.append(path)

    def names_in(self, scope: Source) -> tuple[str, ...]:
        """The balancers that ``scope`` named, in the order it first named them."""
        return tuple(self._named_in.get(scope, ()))

    def freeze(self) -> MappingProxyType[str, BalancerSpec]:
        """The frozen balancers; ``maxattempts`` not given becomes members-1 (httpd's rule)."""
        specs = {}
        for name, pending in self._pending.items():
            params = pending.params
            if "maxattempts" not in params.explicit:
                params = dataclasses.replace(params,
                                             maxattempts=max(len(pending.members) - 1, 0))
            if not pending.members:
                _log.warning("%s: %s has no members (BalancerMember); its requests will get "
                             "503 until members are added", pending.source, name)
            specs[name] = BalancerSpec(name, params, pending.source, tuple(pending.members),
                                       tuple(pending.frontends))
        return MappingProxyType(specs)


@dataclass
class HostBalancerSettings:
    """A server scope's explicit BalancerInherit / BalancerPersist / BalancerGrowth."""

    inherit: bool | None = None
    persist: bool | None = None
    growth: int | None = None


def host_balancer_fields(
    table: BalancerTable, main_scope: Source, main: HostBalancerSettings,
    scope: Source | None = None, own: HostBalancerSettings | None = None,
    proxy_pass_inherit: bool = True,
) -> dict[str, object]:
    """The VirtualHost balancer fields: for the main server (``scope`` None) or a vhost.

    A vhost's unset values take the main server's (httpd: "the global value is the default");
    it sees the main server's balancers only when both BalancerInherit and ProxyPassInherit
    are on (the manual: ProxyPassInherit Off also turns BalancerInherit off).
    """
    inherit = main.inherit if main.inherit is not None else True
    persist = main.persist if main.persist is not None else False
    growth = main.growth if main.growth is not None else 5
    names = table.names_in(main_scope)
    if scope is not None and own is not None:
        inherit = own.inherit if own.inherit is not None else inherit
        persist = own.persist if own.persist is not None else persist
        growth = own.growth if own.growth is not None else growth
        inherited = names if inherit and proxy_pass_inherit else ()
        names = inherited + tuple(n for n in table.names_in(scope) if n not in inherited)
    return {"balancers": names, "balancer_inherit": inherit, "balancer_persist": persist,
            "balancer_growth": growth}
