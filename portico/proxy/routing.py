"""Which rule serves a request, and the backend URL it maps to (reference §2.1, §2.2).

Everything that can be computed from the config is computed once in ``Router.__init__``;
``Router.route`` does string comparisons only. Order (§2.1.2): a ProxyPass from the merged
``<Location>`` configuration first, then the virtual host's rules (the main server's first when
inherited) in config order; the first match wins and a matching ``!`` stops the search.
"""

from __future__ import annotations

__all__ = ["CompiledRoute", "Match", "Router", "VhostSelector"]

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from portico.config.model import (
    LocationSpec,
    ProxySettings,
    Route,
    VirtualHost,
    WorkerSpec,
)
from portico.proxy.uri import (
    NEEDS_ENCODING,
    BadTarget,
    ParsedTarget,
    canon_path,
    to_wire_str,
)

_SLASH_RUN = re.compile("/{2,}")
_DOLLAR = re.compile(r"\\(.)|\$(\d)")


@dataclass(slots=True)
class Match:
    """The outcome of routing one request to a backend."""

    route: Route
    worker: str                 # WorkerSpec.name whose pool and parameters apply
    url: str                    # the full backend URL (for logs, %f, <Proxy> matching)
    host: str                   # backend host and port to connect to
    port: int
    path: str                   # request-target sent to the backend (path?query)
    balancer: str | None = None  # "balancer://name" when a balancer picks the member


class CompiledRoute:
    """A Route with its target pre-split and its match function chosen."""

    __slots__ = ("alias", "alias_ends_slash", "alias_len", "balancer", "base", "direct", "host",
                 "longer_workers", "pattern", "port", "route", "scheme", "url_prefix", "worker",
                 "worker_name")

    def __init__(self, route: Route, workers: Mapping[str, WorkerSpec]) -> None:
        self.route = route
        self.alias = _SLASH_RUN.sub("/", to_wire_str(route.path))
        self.alias_ends_slash = self.alias.endswith("/")
        self.pattern = (re.compile(to_wire_str(route.pattern.pattern), route.pattern.flags)
                        if route.pattern is not None else None)
        self.worker = workers.get(route.worker) if route.worker else None
        self.base = ""
        self.scheme = ""
        self.longer_workers: tuple[WorkerSpec, ...] = ()
        self.balancer: str | None = None
        if route.target is not None and route.target[:11].lower() == "balancer://":
            # The member's URL replaces "balancer://name" when a member is chosen (§7.4).
            self.balancer = route.worker
            self.scheme = "balancer"
            self.base = urlsplit(route.target).path
        elif route.target is not None and self.worker is not None:
            url = _nominal_url(route.target)
            if "$" not in url or not self.worker.has_placeholders:
                parts = urlsplit(url)
                self.scheme = parts.scheme.lower()
                self.base = parts.path
            name = self.worker.name
            self.longer_workers = tuple(
                sorted((w for w in workers.values()
                        if len(w.name) > len(name) and w.name.lower().startswith(name.lower())
                        and not w.has_placeholders),
                       key=lambda w: -len(w.name)))
        self.alias_len = len(self.alias)
        # A plain prefix rule to one worker (no balancer, nocanon or longer worker name that
        # could claim the URL): Router.route builds its Match itself.
        self.direct = (route.target is not None and self.pattern is None
                       and not route.nocanon and self.balancer is None
                       and self.worker is not None and not self.longer_workers)
        self.host = self.worker.host if self.worker is not None else ""
        self.port = self.worker.port if self.worker is not None else 0
        self.url_prefix = f"{self.scheme}://{self.host}:{self.port}"
        self.worker_name = route.worker or ""

    def match_prefix(self, path: str) -> int:
        """Characters of ``path`` consumed by the alias, or -1 (§2.1.1, on a slash-merged path)."""
        alias = self.alias
        if not path.startswith(alias):
            return -1
        n = len(alias)
        if not self.alias_ends_slash and len(path) > n and path[n] != "/":
            return -1
        return n


def _nominal_url(target: str) -> str:
    """The URL part of ``unix:/sock|http://host/path`` (the part after '|')."""
    if target[:5].lower() == "unix:" and "|" in target:
        return target.split("|", 1)[1]
    return target


def _substitute(template: str, m: re.Match[str]) -> str:
    """ProxyPassMatch substitution: $0-$9 → groups (missing → ''), backslash escapes (§2.2)."""

    def repl(sub: re.Match[str]) -> str:
        if sub.group(1) is not None:
            return sub.group(1)
        idx = int(sub.group(2))
        if idx > (m.re.groups):
            return ""
        return m.group(idx) or ""

    return _DOLLAR.sub(repl, template)


class Router:
    """Routes for one virtual host (its own rules after the inherited ones)."""

    __slots__ = ("_locations", "_routes", "_workers", "has_locations", "vhost")

    def __init__(self, vhost: VirtualHost, workers: Mapping[str, WorkerSpec]) -> None:
        self.vhost = vhost
        self._workers = workers
        self._routes = tuple(CompiledRoute(r, workers) for r in vhost.routes)
        self._locations = tuple(
            (loc, _compile_location(loc), CompiledRoute(loc.proxy_pass, workers)
             if loc.proxy_pass is not None else None)
            for loc in vhost.locations)
        self.has_locations = bool(self._locations)

    def locations_for(self, path: str) -> list[tuple[LocationSpec, CompiledRoute | None]]:
        """Every <Location> whose path matches, in config order (they merge in that order)."""
        found = []
        for loc, matcher, compiled in self._locations:
            if matcher(path):
                found.append((loc, compiled))
        return found

    def settings_for(self, locations: Sequence[tuple[LocationSpec, object]]) -> ProxySettings:
        settings = self.vhost.settings
        for loc, _ in locations:
            if loc.overrides:
                settings = replace(settings, **loc.overrides)  # type: ignore[arg-type]
        return settings

    def route(self, target: ParsedTarget,
              locations: Sequence[tuple[LocationSpec, CompiledRoute | None]] = (),
              ) -> Match | None:
        """The backend for this request, or None (not proxied: excluded or no rule)."""
        path = target.path
        if locations:
            for _, compiled in reversed(locations):
                if compiled is not None:
                    return self._apply(compiled, target, path)
        for compiled in self._routes:
            if compiled.pattern is not None:
                m = compiled.pattern.search(path)
                if m is None:
                    continue
                if compiled.route.target is None:
                    return None
                return self._apply_regex(compiled, target, m)
            if not path.startswith(compiled.alias):  # match_prefix, inline
                continue
            consumed = compiled.alias_len
            if not compiled.alias_ends_slash and len(path) > consumed and path[consumed] != "/":
                continue
            if not compiled.direct:
                if compiled.route.target is None:
                    return None
                return self._apply_prefix(compiled, target, consumed)
            # _apply_prefix → _finish → _make, with what they compute per route precomputed
            remainder = path[consumed:]
            # canon_path's own test, after a cheaper one that settles plain names
            if (not (remainder.isascii() and remainder.isalnum())
                    and NEEDS_ENCODING.search(remainder)):
                remainder = canon_path(remainder, "%2F" in path)
            if compiled.base:
                path = compiled.base + remainder
            elif not remainder:
                path = "/"
            elif remainder[0] != "/":
                raise BadTarget(500, f"backend URL {compiled.route.target}{remainder} "
                                     "has no valid host")
            else:
                path = remainder
            url = compiled.url_prefix + path
            query = target.query
            if query is not None and "?" not in path:
                path = f"{path}?{query}"  # the query passes as the client sent it
            return Match(compiled.route, compiled.worker_name, url, compiled.host,
                         compiled.port, path)
        return None

    def _apply(self, compiled: CompiledRoute, target: ParsedTarget, path: str) -> Match | None:
        if compiled.route.target is None:
            return None
        if compiled.pattern is not None:
            m = compiled.pattern.search(path)
            if m is None:
                return None
            return self._apply_regex(compiled, target, m)
        consumed = compiled.match_prefix(path)
        if consumed < 0:  # a Location matched by prefix rules of its own; take it whole
            consumed = min(len(compiled.alias), len(path))
        return self._apply_prefix(compiled, target, consumed)

    def _apply_prefix(self, compiled: CompiledRoute, target: ParsedTarget,
                      consumed: int) -> Match:
        route = compiled.route
        if route.nocanon:
            remainder = _raw_remainder(target, consumed, compiled)
        else:
            remainder = canon_path(target.path[consumed:], "%2F" in target.path)
        path = compiled.base + remainder
        if compiled.base == "" and remainder and remainder[0] != "/":
            raise BadTarget(500, f"backend URL {route.target}{remainder} has no valid host")
        return self._finish(compiled, path or "/", target)

    def _apply_regex(self, compiled: CompiledRoute, target: ParsedTarget,
                     m: re.Match[str]) -> Match:
        route = compiled.route
        assert route.target is not None
        url = _nominal_url(route.target)
        substituted = _substitute(url, m)
        if substituted == url:
            substituted = url + canon_path(target.path)
        parts = urlsplit(substituted)
        if compiled.worker is not None and compiled.worker.has_placeholders:
            host = parts.hostname or compiled.worker.host
            port = parts.port or compiled.worker.port
            return self._make(compiled, substituted.split("?", 1)[0], host, port,
                              parts.path or "/", target)
        return self._finish(compiled, parts.path or "/", target)

    def _finish(self, compiled: CompiledRoute, path: str, target: ParsedTarget) -> Match:
        if compiled.balancer is not None:
            if target.query is not None and "?" not in path:
                path = f"{path}?{target.query}"
            return Match(compiled.route, compiled.balancer, compiled.balancer + path, "", 0,
                         path, compiled.balancer)
        worker = compiled.worker
        assert worker is not None
        url = f"{compiled.scheme}://{worker.host}:{worker.port}{path}"
        return self._make(compiled, url, worker.host, worker.port, path, target)

    def _make(self, compiled: CompiledRoute, url: str, host: str, port: int, path: str,
              target: ParsedTarget) -> Match:
        worker_name = compiled.route.worker or ""
        for longer in compiled.longer_workers:
            if url.lower().startswith(longer.name.lower()):
                worker_name = longer.name
                break
        if target.query is not None and "?" not in path:
            path = f"{path}?{target.query}"  # the query passes as the client sent it
        return Match(compiled.route, worker_name, url, host, port, path)


def _raw_remainder(target: ParsedTarget, consumed: int, compiled: CompiledRoute) -> str:
    """nocanon: the remainder from the raw URI, when matching it consumes the same length."""
    raw = _SLASH_RUN.sub("/", target.raw_path)
    if compiled.match_prefix(raw) == consumed:
        return raw[consumed:]
    return canon_path(target.path[consumed:])


def _compile_location(loc: LocationSpec):  # -> Callable[[str], bool]
    if loc.pattern is not None:
        pattern = re.compile(to_wire_str(loc.pattern.pattern))
        return lambda path: pattern.search(path) is not None
    prefix = _SLASH_RUN.sub("/", to_wire_str(loc.path))
    if prefix.endswith("/"):
        return lambda path: path.startswith(prefix)
    n = len(prefix)
    return lambda path: path.startswith(prefix) and (len(path) == n or path[n] == "/")


class VhostSelector:
    """Name-based virtual host selection (httpd: address match, then ServerName/Alias)."""

    __slots__ = ("_by_addr", "_candidates", "main")

    def __init__(self, main: Router, vhosts: Sequence[Router]) -> None:
        self.main = main
        self._by_addr: list[tuple[str, int | None, Router]] = []
        for router in vhosts:
            for host, port in router.vhost.addresses:
                self._by_addr.append((host, port, router))
        self._candidates: dict[tuple[str, int], list[Router]] = {}

    def candidates(self, local_ip: str, local_port: int) -> list[Router]:
        """The vhosts whose <VirtualHost> address covers this listener (cached per address)."""
        key = (local_ip, local_port)
        found = self._candidates.get(key)
        if found is None:
            exact = [r for h, p, r in self._by_addr
                     if (p is None or p in (local_port, 0)) and h == local_ip]
            wild = [r for h, p, r in self._by_addr
                    if (p is None or p in (local_port, 0)) and h in ("*", "_default_")]
            found = self._candidates[key] = exact or wild  # httpd: exact address wins
        return found

    def select(self, local_ip: str, local_port: int, host: str | None) -> Router:
        """The vhost for a connection's local address and the request's Host name."""
        if not self._by_addr:
            return self.main
        candidates = self.candidates(local_ip, local_port)
        if not candidates:
            return self.main
        if host:
            name = host.lower()
            for router in candidates:
                vh = router.vhost
                if vh.server_name.lower() == name:
                    return router
                for alias in vh.server_aliases:
                    if _alias_match(alias.lower(), name):
                        return router
        return candidates[0]


def _alias_match(pattern: str, name: str) -> bool:
    if "*" in pattern or "?" in pattern:
        return fnmatch.fnmatchcase(name, pattern)
    return pattern == name
