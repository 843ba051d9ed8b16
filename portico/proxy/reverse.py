"""Response header reverse mapping: ProxyPassReverse and the cookie rules (reference §3).

Rules are compiled once per scope; ``ReverseMapper.location`` and ``.cookie`` run only for the
few headers they apply to.
"""

from __future__ import annotations

__all__ = ["REVERSE_MAPPED_HEADERS", "ReverseMapper"]

from collections.abc import Sequence

from portico.config.model import ReverseRule

REVERSE_MAPPED_HEADERS = frozenset({b"location", b"content-location", b"uri", b"destination"})


def _nominal(real: str) -> str:
    if real[:5].lower() == "unix:" and "|" in real:
        return real.split("|", 1)[1]
    return real


class ReverseMapper:
    """ProxyPassReverse* rules of one scope, in configuration order."""

    __slots__ = ("_cookie_domains", "_cookie_paths", "_urls")

    def __init__(self, urls: Sequence[ReverseRule], cookie_domains: Sequence[ReverseRule],
                 cookie_paths: Sequence[ReverseRule]) -> None:
        # (fake, real lowercased, real is path-only)
        self._urls = tuple((r.fake, _nominal(r.real).lower(), _nominal(r.real).startswith("/"))
                           for r in urls if r.real)
        self._cookie_domains = tuple((r.real.lower(), r.fake) for r in cookie_domains)
        self._cookie_paths = tuple((r.real, r.fake) for r in cookie_paths)

    @property
    def maps_urls(self) -> bool:
        return bool(self._urls)

    @property
    def maps_cookies(self) -> bool:
        return bool(self._cookie_domains or self._cookie_paths)

    def location(self, value: str, base: str) -> str:
        """Map a Location-style header value; ``base`` is this server's scheme://host[:port]."""
        for fake, real, path_only in self._urls:
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


def _path_of(value: str) -> str:
    """The path of an absolute URL (from the first '/' after '://'); others unchanged."""
    scheme_end = value.find("://")
    if scheme_end < 0:
        return value
    slash = value.find("/", scheme_end + 3)
    return value[slash:] if slash >= 0 else "/"
