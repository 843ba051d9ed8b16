"""The set of workers a config defines, with httpd's sharing rule (§1.2).

A new ProxyPass URL reuses an existing worker whose name is a prefix of it and has the same
``scheme://host[:port]`` (longest such wins); the later directive's parameters are then
ignored, with warnings. URLs with placeholders (``$n``, or ``${VAR}`` in the host or port of
an ``interpolate`` rule) only ever share with an identical name.
Unlike httpd, which keeps a worker list per virtual host, portico keeps one list for the
whole config (docs/compat.md).

Balancer members follow the same rule within their balancer only, as httpd keeps a worker list
per balancer: a member never shares with a standalone worker or with another balancer's
member, and a standalone URL never shares with a member. Members are keyed by
``member_key(balancer, name)``.
"""

from __future__ import annotations

__all__ = ["WorkerTable"]

import dataclasses
import logging
from collections.abc import Sequence
from types import MappingProxyType

from portico.config.model import Source, WorkerParams, WorkerSpec
from portico.config.params import parse_worker_params
from portico.config.urls import BackendURL

_log = logging.getLogger("portico.config")

# Schemes whose connections are not reused unless the config says so (§6.2 enablereuse).
_NO_REUSE_BY_DEFAULT = frozenset({"fcgi"})


@dataclasses.dataclass
class _Entry:
    spec: WorkerSpec
    authority: str


class WorkerTable:
    """Workers in definition order, keyed by name."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def find(self, url: BackendURL, placeholders: bool,
             balancer: str | None = None) -> WorkerSpec | None:
        """The existing worker a URL would share (among ``balancer``'s members), or None."""
        if placeholders:
            entry = self._entries.get(url.name)
            return entry.spec if entry and entry.spec.has_placeholders else None
        best: _Entry | None = None
        for entry in self._entries.values():
            if (entry.spec.has_placeholders or entry.spec.balancer != balancer
                    or entry.authority != url.authority):
                continue
            if url.name.startswith(entry.spec.name) and (
                    best is None or len(entry.spec.name) > len(best.spec.name)):
                best = entry
        return best.spec if best else None

    def for_pass(
        self, url: BackendURL, pairs: Sequence[tuple[str, str]], source: Source,
        placeholders: bool,
    ) -> WorkerSpec:
        """The worker a ProxyPass/ProxyPassMatch URL uses: shared if one fits, else new."""
        shared = self.find(url, placeholders)
        if shared is None:
            return self.define(url, pairs, source, placeholders)
        if shared.name != url.name:
            _log.warning("%s: sharing worker '%s' instead of creating new worker '%s'",
                         source, shared.name, url.name)
        for key, value in pairs:
            _log.warning("%s: ignoring parameter '%s=%s' for worker '%s' because of worker "
                         "sharing", source, key, value, shared.name)
        return shared

    def for_member(
        self, balancer: str, url: BackendURL, pairs: Sequence[tuple[str, str]], source: Source,
    ) -> WorkerSpec:
        """The worker a BalancerMember URL makes: a new member of ``balancer``, or the member
        it shares (same rule as ProxyPass, within the balancer; parameters then ignored)."""
        shared = self.find(url, placeholders=False, balancer=balancer)
        if shared is None:
            return self.define(url, pairs, source, placeholders=False, balancer=balancer)
        _log.info("%s: sharing worker '%s' instead of creating new worker '%s' in %s",
                  source, shared.name, url.name, balancer)
        for key, value in pairs:
            _log.warning("%s: ignoring parameter '%s=%s' for worker '%s' because of worker "
                         "sharing", source, key, value, shared.name)
        return shared

    def define(
        self, url: BackendURL, pairs: Sequence[tuple[str, str]], source: Source,
        placeholders: bool, balancer: str | None = None,
    ) -> WorkerSpec:
        """Create a new worker (the caller checked that none is shared)."""
        params = parse_worker_params(pairs, source)
        if "enablereuse" not in params.explicit and "disablereuse" not in params.explicit and (
                placeholders or url.scheme in _NO_REUSE_BY_DEFAULT):
            params = dataclasses.replace(params, enablereuse=False)
        spec = WorkerSpec(url.name, url.scheme, url.host, url.port, url.path, params, source,
                          unix_path=url.unix_path, has_placeholders=placeholders,
                          balancer=balancer)
        self._entries[spec.key] = _Entry(spec, url.authority)
        return spec

    def set_params(
        self, url: BackendURL, pairs: Sequence[tuple[str, str]], source: Source,
    ) -> WorkerSpec:
        """ProxySet: merge parameters into the worker the URL selects, creating it if none."""
        existing = self.find(url, placeholders=False)
        if existing is None:
            return self.define(url, pairs, source, placeholders=False)
        if existing.name != url.name:
            _log.warning("%s: ProxySet for '%s' applies to the existing worker '%s'", source,
                         url.name, existing.name)
        params: WorkerParams = parse_worker_params(pairs, source, base=existing.params)
        updated = dataclasses.replace(existing, params=params)
        self._entries[existing.key].spec = updated
        return updated

    def freeze(self) -> MappingProxyType[str, WorkerSpec]:
        return MappingProxyType({key: entry.spec for key, entry in self._entries.items()})
