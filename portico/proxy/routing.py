"""Which rule serves a request, and the backend URL it maps to (reference §2.1, §2.2).

Everything that can be computed from the config is computed once in ``Router.__init__``;
``Router.route`` does string comparisons only. Order (§1.1, §2.1.2):

1. rules with ``mapping=encoded`` or ``mapping=servlet`` (httpd's pre_translate phase): the
   merged ``<Location>``'s ProxyPass if it has such a mapping, then the virtual host's mapped
   rules in config order, matched against the still-encoded path (``uri.encoded_path``); a
   matching ``!`` ends only this phase;
2. the merged ``<Location>``'s ProxyPass (unmapped);
3. the virtual host's other rules (the main server's first when inherited) in config order.

The first match wins and a matching ``!`` stops the search. Rules flagged ``interpolate`` have
``${VAR}`` replaced from the request environment when the caller passes one (§2.1.5).
"""

from __future__ import annotations

__all__ = ["CompiledRoute", "Match", "Router", "VhostSelector"]

import copy
import enum
import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import quote, urlsplit

from portico.config.model import (
    LocationSpec,
    ProxySettings,
    Route,
    VirtualHost,
    WorkerSpec,
)
from portico.config.urls import parse_backend_url
from portico.proxy.interpolate import has_variables, interpolate
from portico.proxy.uri import (
    NEEDS_ENCODING,
    BadTarget,
    ParsedTarget,
    canon_path,
    encode_unsafe,
    encoded_path,
    to_wire_str,
)

_SLASH_RUN = re.compile("/{2,}")
_DOLLAR = re.compile(r"\\(.)|\$(\d)")
# What an interpolated value may carry into a request-target as it is: printable ASCII
# (escapes a value already has stay as they are); spaces, controls and other text are escaped.
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


class _Next(enum.Enum):
    """How a rule left the search when it produced no Match."""

    NO_MATCH = "no match"   # try the next rule
    EXCLUDED = "excluded"   # a `!` matched


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

    __slots__ = ("alias", "alias_ends_slash", "alias_len", "balancer", "base", "depth",
                 "direct", "error", "host", "interpolate", "longer_workers", "mapping",
                 "pattern", "plain_url", "port", "route", "scheme", "url", "url_prefix",
                 "worker", "worker_name")

    def __init__(self, route: Route, workers: Mapping[str, WorkerSpec]) -> None:
        self.route = route
        self._set_alias(route.path)
        self.pattern = (re.compile(to_wire_str(route.pattern.pattern), route.pattern.flags)
                        if route.pattern is not None else None)
        self.mapping = route.mapping
        self.worker = workers.get(route.worker) if route.worker else None
        self.base = ""
        self.scheme = ""
        self.error: str | None = None   # set when an interpolated URL does not parse
        self.longer_workers: tuple[WorkerSpec, ...] = ()
        self.balancer: str | None = None
        # ProxyPassMatch substitutes $n into `url`; when nothing changed, the path is
        # appended to `plain_url` (they differ only once values are interpolated)
        self.url = self.plain_url = (_nominal_url(route.target)
                                     if route.target is not None else "")
        if route.target is not None and route.target[:11].lower() == "balancer://":
            # The member's URL replaces "balancer://name" when a member is chosen (§7.4).
            self.balancer = route.worker
            self.scheme = "balancer"
            self.base = urlsplit(route.target).path
        elif route.target is not None and self.worker is not None:
            url = self.url
            if self.pattern is None or "$" not in url or not self.worker.has_placeholders:
                parts = urlsplit(url)
                self.scheme = parts.scheme.lower()
                self.base = encode_unsafe(parts.path)
            name = self.worker.name
            self.longer_workers = tuple(
                sorted((w for w in workers.values()
                        if len(w.name) > len(name) and w.name.lower().startswith(name.lower())
                        and not w.has_placeholders),
                       key=lambda w: -len(w.name)))
        # A ProxyPassMatch pattern is compiled once, so only a prefix path interpolates
        # (httpd compiles the regex at load too).
        self.interpolate = route.interpolate and (
            (self.pattern is None and has_variables(route.path))
            or has_variables(route.target))
        # A plain prefix rule to one worker (no balancer, nocanon or longer worker name that
        # could claim the URL): Router.route builds its Match itself.
        self.direct = (route.target is not None and self.pattern is None
                       and not route.nocanon and self.balancer is None
                       and self.worker is not None and not self.longer_workers)
        self.host = self.worker.host if self.worker is not None else ""
        self.port = self.worker.port if self.worker is not None else 0
        self.url_prefix = f"{self.scheme}://{self.host}:{self.port}"
        self.worker_name = route.worker or ""

    def _set_alias(self, path: str) -> None:
        self.alias = _SLASH_RUN.sub("/", to_wire_str(path))
        self.alias_ends_slash = self.alias.endswith("/")
        self.alias_len = len(self.alias)
        self.depth = sum(1 for segment in self.alias.split("/") if segment)

    def match_prefix(self, path: str) -> int:
        """Characters of ``path`` consumed by the alias, or -1 (§2.1.1, on a slash-merged path)."""
        alias = self.alias
        if not path.startswith(alias):
            return -1
        n = len(alias)
        if not self.alias_ends_slash and len(path) > n and path[n] != "/":
            return -1
        return n

    def servlet_remainder(self, path: str, view: _ServletView) -> str | None:
        """mapping=servlet: what follows the alias in ``path`` when the alias matches its
        servlet form ``view`` (from ``_servlet_view(path)``), else None.

        The remainder is taken from ``path`` as it is, from the first segment the alias does
        not cover; an alias without a trailing slash also keeps its last segment's
        ``;params`` and the slash before the rest (httpd does the same, §2.1.3).
        """
        normal, starts, params = view
        if self.match_prefix(normal) < 0:
            return None
        depth = self.depth
        if depth < len(starts):
            start = starts[depth]
            if not self.alias_ends_slash and depth and params[depth - 1] >= 0:
                start = params[depth - 1]
        else:
            start = len(path)
        if not self.alias_ends_slash and path[start - 1] == "/":
            start -= 1
        return path[start:]

    def with_env(self, env: Mapping[str, str]) -> CompiledRoute:
        """This rule with ``${VAR}`` in its path and URL replaced from ``env`` (itself when
        it does not interpolate). A URL that no longer parses makes the copy answer 500
        when it matches."""
        if not self.interpolate:
            return self
        route = self.route
        clone = copy.copy(self)
        if self.pattern is None and has_variables(route.path):
            clone._set_alias(interpolate(route.path, env))
        target = route.target
        if target is None or not has_variables(target):
            return clone
        if self.balancer is not None:
            clone.base = urlsplit(interpolate(target, env, _safe_in_target)).path
        elif self.pattern is not None:
            clone.plain_url = interpolate(self.url, env, _safe_in_target)
            clone.url = interpolate(self.url, env, _safe_for_substitution)
        else:
            try:
                parsed = parse_backend_url(interpolate(self.url, env, _safe_in_target), "")
            except ValueError as exc:
                clone.error = f"interpolated backend URL: {exc}"
                return clone
            clone.scheme, clone.host, clone.port = parsed.scheme, parsed.host, parsed.port
            clone.base = encode_unsafe(parsed.path)
            clone.url_prefix = f"{parsed.scheme}://{parsed.host}:{parsed.port}"
        return clone


# A path in servlet form: (normalised path, where each kept segment's text starts in the
# original path, where its ';' is or -1), as _servlet_view builds it.
_ServletView = tuple[str, list[int], list[int]]


def _servlet_view(path: str) -> _ServletView | None:
    """The servlet normalisation of ``path`` (which starts with '/'), or None when a ``..``
    climbs above the root (§2.1.3 mapping=servlet).

    Each segment loses its ``;params``; empty segments and ``.`` go; ``..`` (also ``..;x``)
    removes the segment before it. A segment's start in the original is where the text after
    the previous kept segment begins, so what a skipped ``/;x/`` or ``/./`` left behind is
    sent on with the segment after it; after a ``..`` it is the segment's own start.
    """
    names: list[str] = []
    starts: list[int] = []
    params: list[int] = []
    anchor = 1          # where the next kept segment's text starts; -1: at its own start
    trailing = False    # the path ends in a '/' (after what was kept)
    end_of_path = len(path)
    pos = 1
    while pos <= end_of_path:
        end = path.find("/", pos)
        if end < 0:
            end = end_of_path
        semi = path.find(";", pos, end)
        name = path[pos:end] if semi < 0 else path[pos:semi]
        if name == "" or name == ".":
            trailing = True
        elif name == "..":
            if not names:
                return None
            names.pop()
            starts.pop()
            params.pop()
            anchor = -1
            trailing = True
        else:
            names.append(name)
            starts.append(anchor if anchor >= 0 else pos)
            params.append(semi)
            anchor = end + 1
            trailing = False
        pos = end + 1
    normal = "/" + "/".join(names)
    if trailing and names:
        normal += "/"
    return normal, starts, params


def _safe_in_target(value: str) -> str:
    """An interpolated value as it may stand in a request-target."""
    if value.isascii() and value.isprintable() and " " not in value:
        return value
    return quote(value, safe=_TARGET_SAFE)


def _safe_for_substitution(value: str) -> str:
    """An interpolated value that ProxyPassMatch's $n substitution will leave as it is."""
    value = _safe_in_target(value)
    if "$" in value or "\\" in value:
        value = value.replace("\\", "\\\\").replace("$", "\\$")
    return value


def _nominal_url(target: str) -> str:
    """The URL part of ``unix:/sock|http://host/path`` (the part after '|')."""
    if target[:5].lower() == "unix:" and "|" in target:
        return target.split("|", 1)[1]
    return target


def _encode_group(group: str) -> str:
    """A group of the decoded path, encoded for the backend URL ('/' kept, '?' and '%' not)."""
    return canon_path(group) if NEEDS_ENCODING.search(group) else group


def _substitute(template: str, m: re.Match[str],
                encode: Callable[[str], str] | None = None) -> str:
    """ProxyPassMatch substitution: $0-$9 → groups (missing → ''), backslash escapes (§2.2).
    ``encode`` re-encodes groups taken from a decoded path."""

    def repl(sub: re.Match[str]) -> str:
        if sub.group(1) is not None:
            return sub.group(1)
        idx = int(sub.group(2))
        if idx > (m.re.groups):
            return ""
        group = m.group(idx) or ""
        return encode(group) if encode is not None and group else group

    return _DOLLAR.sub(repl, template)


class Router:
    """Routes for one virtual host (its own rules after the inherited ones).

    ``interpolates`` is True when a rule of the host or of its Locations is flagged
    ``interpolate`` and has a ``${VAR}`` to replace: only then can ``route`` give a different
    answer for the same target depending on the environment.
    """

    __slots__ = ("_locations", "_mapped", "_routes", "_servlet", "_workers", "has_locations",
                 "interpolates", "maps", "vhost")

    def __init__(self, vhost: VirtualHost, workers: Mapping[str, WorkerSpec]) -> None:
        self.vhost = vhost
        self._workers = workers
        compiled = [CompiledRoute(r, workers) for r in vhost.routes]
        self._routes = tuple(c for c in compiled if not c.mapping)
        self._mapped = tuple(c for c in compiled if c.mapping)   # tried first (§1.1)
        self._locations = tuple(
            (loc, _compile_location(loc), CompiledRoute(loc.proxy_pass, workers)
             if loc.proxy_pass is not None else None)
            for loc in vhost.locations)
        self.has_locations = bool(self._locations)
        every = compiled + [c for _, _, c in self._locations if c is not None]
        self.interpolates = any(c.interpolate for c in every)
        self.maps = any(c.mapping for c in every)   # a mapping=encoded|servlet rule anywhere
        # a mapping=servlet prefix rule can rename the path the Locations see
        self._servlet = any(c.mapping == "servlet" and c.pattern is None
                            and c.route.target is not None for c in every)

    def locations_for(self, path: str) -> list[tuple[LocationSpec, CompiledRoute | None]]:
        """Every <Location> whose path matches, in config order (they merge in that order).

        When a ``mapping=servlet`` rule takes the request, the Locations are those of its
        servlet form (``/app;x/admin`` is seen as ``/app/admin``), as httpd commits that form
        before its final Location walk. Which rule takes it is worked out here on the
        decoded ``path`` (``route`` decides on the encoded one; they differ only for rules
        with escapes in their path), without the request environment.
        """
        found = [(loc, compiled) for loc, matcher, compiled in self._locations
                 if matcher(path)]
        # The decoded path has no '//' or dot segments left, so only ';' can make its
        # servlet form differ.
        if self._servlet and ";" in path:
            committed = self._servlet_commit(path, found)
            if committed is not None and committed != path:
                found = [(loc, compiled) for loc, matcher, compiled in self._locations
                         if matcher(committed)]
        return found

    def _servlet_commit(self, path: str,
                        found: Sequence[tuple[LocationSpec, CompiledRoute | None]]
                        ) -> str | None:
        """The servlet form of ``path`` if a mapping=servlet rule wins the mapped phase."""
        local = _location_rule(found)
        first = (local,) if local is not None and local.mapping else ()
        for compiled in (*first, *self._mapped):
            if compiled.pattern is not None:
                if compiled.pattern.search(path) is not None:
                    return None   # a ProxyPassMatch decides; it renames nothing
            elif compiled.mapping == "servlet":
                view = _servlet_view(path)
                if view is not None and compiled.servlet_remainder(path, view) is not None:
                    return view[0] if compiled.route.target is not None else None
            elif compiled.match_prefix(path) >= 0:
                return None
        return None

    def settings_for(self, locations: Sequence[tuple[LocationSpec, object]]) -> ProxySettings:
        settings = self.vhost.settings
        for loc, _ in locations:
            if loc.overrides:
                settings = replace(settings, **loc.overrides)  # type: ignore[arg-type]
        return settings

    def route(self, target: ParsedTarget,
              locations: Sequence[tuple[LocationSpec, CompiledRoute | None]] = (),
              env: Mapping[str, str] | None = None) -> Match | None:
        """The backend for this request, or None (not proxied: excluded or no rule).

        ``env`` is the request environment when ProxyPassInterpolateEnv is On; with None,
        ``${VAR}`` in rules flagged ``interpolate`` is taken literally.
        """
        if env is not None and self.interpolates:
            return self._route_with_env(target, locations, env)
        path = target.path
        if locations or self._mapped:
            found = self._before_own_rules(target, locations, None)
            if found is not _Next.NO_MATCH:
                return found  # type: ignore[return-value]
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

    def route_mapped(self, target: ParsedTarget,
                     locations: Sequence[tuple[LocationSpec, CompiledRoute | None]] = (),
                     env: Mapping[str, str] | None = None) -> Match | None:
        """Only the ``mapping=encoded|servlet`` rules (step 1 of the order), for a path the
        other rules must not see: one with ``%2F`` under AllowEncodedSlashes Off, which
        httpd refuses when it decodes the path, after its mapped rules had their turn.
        None when no mapped rule takes it (an exclusion included)."""
        _, found = self._mapped_first(target, locations, env if self.interpolates else None)
        return None if isinstance(found, _Next) else found

    def _route_with_env(self, target: ParsedTarget,
                        locations: Sequence[tuple[LocationSpec, CompiledRoute | None]],
                        env: Mapping[str, str]) -> Match | None:
        """``route`` for a host with interpolating rules: the same order, each rule seen
        with ``${VAR}`` replaced."""
        found = self._before_own_rules(target, locations, env)
        if found is not _Next.NO_MATCH:
            return found  # type: ignore[return-value]
        path = target.path
        for compiled in self._routes:
            compiled = compiled.with_env(env)
            if compiled.pattern is not None:
                m = compiled.pattern.search(path)
                if m is None:
                    continue
                if compiled.route.target is None:
                    return None
                return self._apply_regex(compiled, target, m)
            consumed = compiled.match_prefix(path)
            if consumed < 0:
                continue
            if compiled.route.target is None:
                return None
            return self._apply_prefix(compiled, target, consumed)
        return None

    def _before_own_rules(self, target: ParsedTarget,
                          locations: Sequence[tuple[LocationSpec, CompiledRoute | None]],
                          env: Mapping[str, str] | None) -> Match | _Next | None:
        """Steps 1 and 2 of the order (module docstring); NO_MATCH: go on with the host's
        unmapped rules."""
        local, found = self._mapped_first(target, locations, env)
        if found is not _Next.NO_MATCH:
            return found
        if local is not None and not local.mapping:
            return self._apply(local, target, target.path)
        return _Next.NO_MATCH

    def _mapped_first(self, target: ParsedTarget,
                      locations: Sequence[tuple[LocationSpec, CompiledRoute | None]],
                      env: Mapping[str, str] | None
                      ) -> tuple[CompiledRoute | None, Match | _Next]:
        """Step 1: the merged Location's rule (with ``env`` applied) and what the mapped
        rules make of the request (NO_MATCH when none takes it)."""
        local = _location_rule(locations)
        if local is not None and env is not None:
            local = local.with_env(env)
        if self._mapped or (local is not None and local.mapping):
            return local, self._mapped_phase(target, local, env)
        return local, _Next.NO_MATCH

    def _mapped_phase(self, target: ParsedTarget, local: CompiledRoute | None,
                      env: Mapping[str, str] | None) -> Match | _Next:
        """The mapping=encoded|servlet rules, on the encoded path (step 1)."""
        encoded = encoded_path(target.raw_path)
        rules: Sequence[CompiledRoute] = self._mapped
        if env is not None:
            rules = [compiled.with_env(env) for compiled in rules]
        if local is not None and local.mapping:   # already seen with env by the caller
            rules = (local, *rules)
        for compiled in rules:
            found = self._apply_mapped(compiled, target, encoded)
            if found is _Next.EXCLUDED:
                # httpd's pre_translate declines: the unmapped rules still get their turn
                return _Next.NO_MATCH
            if found is not _Next.NO_MATCH:
                return found
        return _Next.NO_MATCH

    def _apply_mapped(self, compiled: CompiledRoute, target: ParsedTarget,
                      encoded: str) -> Match | _Next:
        """One mapped rule: the backend gets the encoded remainder as it is, plus the query."""
        excluded = compiled.route.target is None
        if compiled.pattern is not None:
            m = compiled.pattern.search(encoded)
            if m is None:
                return _Next.NO_MATCH
            return _Next.EXCLUDED if excluded else self._apply_regex(compiled, target, m,
                                                                     encoded)
        if compiled.mapping == "servlet":
            view = _servlet_view(encoded)
            remainder = None if view is None else compiled.servlet_remainder(encoded, view)
            if remainder is None:
                return _Next.NO_MATCH
        else:
            consumed = compiled.match_prefix(encoded)
            if consumed < 0:
                return _Next.NO_MATCH
            remainder = encoded[consumed:]
        return _Next.EXCLUDED if excluded else self._join(compiled, remainder, target)

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
        if compiled.route.nocanon:
            remainder = _raw_remainder(target, consumed, compiled)
        else:
            remainder = canon_path(target.path[consumed:], "%2F" in target.path)
        return self._join(compiled, remainder, target)

    def _join(self, compiled: CompiledRoute, remainder: str, target: ParsedTarget) -> Match:
        """The rule's URL path followed by ``remainder`` (appended as it is, §2.1.1)."""
        if compiled.base == "" and remainder and remainder[0] != "/":
            raise BadTarget(500, f"backend URL {compiled.route.target}{remainder} has no "
                                 "valid host")
        return self._finish(compiled, compiled.base + remainder or "/", target)

    def _apply_regex(self, compiled: CompiledRoute, target: ParsedTarget,
                     m: re.Match[str], whole: str | None = None) -> Match:
        """ProxyPassMatch: ``whole`` is the path appended when the URL has no ``$n``
        (default: the decoded path, re-encoded)."""
        # Groups of a decoded path are encoded as they go in (a space, '?' or '%' in one
        # must neither break the request line nor start a query), as httpd re-encodes.
        substituted = _substitute(compiled.url, m, _encode_group if whole is None else None)
        if substituted == compiled.plain_url:
            substituted += canon_path(target.path) if whole is None else whole
        parts = urlsplit(substituted)
        path = encode_unsafe(parts.path) or "/"   # the config URL's own '{', ' ', ...
        if compiled.worker is not None and compiled.worker.has_placeholders:
            host = parts.hostname or compiled.worker.host
            port = parts.port or compiled.worker.port
            url = substituted.split("?", 1)[0]
            return self._make(compiled, url[:len(url) - len(parts.path)] + path, host, port,
                              path, target)
        return self._finish(compiled, path, target)

    def _finish(self, compiled: CompiledRoute, path: str, target: ParsedTarget) -> Match:
        if compiled.error is not None:
            raise BadTarget(500, compiled.error)
        if compiled.balancer is not None:
            if target.query is not None and "?" not in path:
                path = f"{path}?{target.query}"
            return Match(compiled.route, compiled.balancer, compiled.balancer + path, "", 0,
                         path, compiled.balancer)
        url = f"{compiled.scheme}://{compiled.host}:{compiled.port}{path}"
        return self._make(compiled, url, compiled.host, compiled.port, path, target)

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


def _location_rule(locations: Sequence[tuple[LocationSpec, CompiledRoute | None]]
                   ) -> CompiledRoute | None:
    """The ProxyPass of the merged Locations: the last matching one that has one."""
    for _, compiled in reversed(locations):
        if compiled is not None:
            return compiled
    return None


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
