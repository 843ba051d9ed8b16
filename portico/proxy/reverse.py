"""Response header reverse mapping: ProxyPassReverse and the cookie rules (reference §3).

Rules are compiled once per scope; ``ReverseMapper.location`` and ``.cookie`` run only for the
few headers they apply to. Entries flagged ``interpolate`` keep their ``${VAR}`` until
``ReverseMapper.with_env`` gives a request's copy (ProxyPassInterpolateEnv, §2.1.5).
"""

from __future__ import annotations

__all__ = ["REVERSE_MAPPED_HEADERS", "ReverseMapper"]

from collections.abc import Mapping, Sequence
from dataclasses import replace

from portico.config.model import ReverseRule
from portico.proxy.interpolate import has_variables, interpolate

REVERSE_MAPPED_HEADERS = frozenset({b"location", b"content-location", b"uri", b"destination"})


def _nominal(real: str) -> str:
    if real[:5].lower() == "unix:" and "|" in real:
        return real.split("|", 1)[1]
    return real


class ReverseMapper:
    """ProxyPassReverse* rules of one scope, in configuration order."""

    __slots__ = ("_balancers", "_cookie_domains", "_cookie_paths", "_rules", "_urls",
                 "interpolates")

    def __init__(self, urls: Sequence[ReverseRule], cookie_domains: Sequence[ReverseRule],
                 cookie_paths: Sequence[ReverseRule],
                 balancers: Mapping[str, Sequence[str]] | None = None) -> None:
        """``balancers`` maps ``balancer://name`` (lowercased) to its member URLs, for rules
        whose real side is a balancer URL (§3.1: the value is compared with each member)."""
        self._rules = (tuple(urls), tuple(cookie_domains), tuple(cookie_paths))
        self._balancers = balancers
        # True when an entry flagged interpolate has a ${VAR} to replace
        self.interpolates = any(_interpolating(r) for rules in self._rules for r in rules)
        # (fake, real lowercased, real is path-only, member URLs or None, balancer url part)
        entries = []
        for r in urls:
            if not r.real:
                continue
            real = _nominal(r.real)
            members = None
            urlpart = ""
            if real[:11].lower() == "balancer://" and balancers is not None:
                rest = real[11:]
                name, slash, tail = rest.partition("/")
                members = balancers.get(("balancer://" + name).lower())
                urlpart = slash + tail
            entries.append((r.fake, real.lower(), real.startswith("/"),
                            tuple(members) if members is not None else None, urlpart))
        self._urls = tuple(entries)
        self._cookie_domains = tuple((r.real.lower(), r.fake) for r in cookie_domains)
        self._cookie_paths = tuple((r.real, r.fake) for r in cookie_paths)

    def with_env(self, env: Mapping[str, str]) -> ReverseMapper:
        """A mapper whose ``interpolate`` entries have ``${VAR}`` replaced from ``env``
        (unset: empty); the other entries are unchanged. Itself if nothing interpolates."""
        if not self.interpolates:
            return self
        urls, domains, paths = (
            [replace(r, fake=interpolate(r.fake, env), real=interpolate(r.real, env))
             if _interpolating(r) else r for r in rules]
            for rules in self._rules)
        return ReverseMapper(urls, domains, paths, self._balancers)

    @property
    def maps_urls(self) -> bool:
        return bool(self._urls)

    @property
    def maps_cookies(self) -> bool:
        return bool(self._cookie_domains or self._cookie_paths)

    def location(self, value: str, base: str) -> str:
        """Map a Location-style header value; ``base`` is this server's scheme://host[:port]."""
        for fake, real, path_only, members, urlpart in self._urls:
            if members is not None:
                mapped = _via_members(value, fake, members, urlpart)
                if mapped is not None:
                    return mapped if "://" in mapped else base + mapped
                continue
            part = value
            if path_only:
                part = _path_of(value)
            if part.lower().startswith(real):
                mapped = fake + part[len(real):]
                return mapped if "://" in mapped else base + mapped
        return value

    def cookie(self, value: str) -> str:
        """Rewrite the Path= and Domain= attributes of one Set-Cookie value (§3.2)."""
        attrs = value.split(";")
        changed = False
        for i, attr in enumerate(attrs):
            stripped = attr.lstrip()
            low = stripped[:7].lower()
            if low.startswith("path=") and self._cookie_paths:
                current = stripped[5:]
                for real, fake in self._cookie_paths:
                    if current.startswith(real):
                        attrs[i] = attr[:len(attr) - len(stripped)] + stripped[:5] + fake
                        changed = True
                        break
            elif low.startswith("domain=") and self._cookie_domains:
                current = stripped[7:]
                for real, fake in self._cookie_domains:
                    if current.lower().startswith(real):
                        attrs[i] = attr[:len(attr) - len(stripped)] + stripped[:7] + fake
                        changed = True
                        break
        return ";".join(attrs) if changed else value


def _interpolating(rule: ReverseRule) -> bool:
    return rule.interpolate and (has_variables(rule.fake) or has_variables(rule.real))


def _via_members(value: str, fake: str, members: Sequence[str], urlpart: str) -> str | None:
    """§3.1's balancer branch: match ``value`` against each member URL."""
    low = value.lower()
    for name in members:
        if urlpart and urlpart != "/":
            base = name[:-1] if name.endswith("/") else name
            if low.startswith(base.lower()) and value[len(base):].startswith(urlpart):
                return fake + value[len(base) + len(urlpart):]
        elif low.startswith(name.lower()):
            rest = value[len(name):]
            if fake == "/" and rest.startswith("/"):
                return rest  # no "//"
            return fake + rest
    return None


def _path_of(value: str) -> str:
    """The path of an absolute URL (from the first '/' after '://'); others unchanged."""
    scheme_end = value.find("://")
    if scheme_end < 0:
        return value
    slash = value.find("/", scheme_end + 3)
    return value[slash:] if slash >= 0 else "/"
