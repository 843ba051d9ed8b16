"""Parsing of backend URLs as ProxyPass/ProxySet write them, and worker naming.

A worker's name is its URL with the scheme and host lowercased, the scheme's default port
dropped (as apr_uri_unparse does) and the path kept exactly as written. Socket URLs
``unix:/path|scheme://host/path`` keep the socket part in the name, so two sockets never
share a worker.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_PORTS",
    "BackendURL",
    "balancer_name",
    "is_balancer_url",
    "parse_backend_url",
]

import os
import re
from dataclasses import dataclass

#: Default backend port per scheme (§15).
DEFAULT_PORTS: dict[str, int] = {
    "http": 80, "ws": 80, "h2c": 80,
    "https": 443, "wss": 443, "h2": 443,
    "ajp": 8009, "fcgi": 8000, "scgi": 4000, "uwsgi": 3031, "ftp": 21,
}

_URL = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>\[[^\]]*\]|[^/:?#\[\]]*)"
    r"(?::(?P<port>[^/?#]*))?"
    r"(?P<path>[^?#]*)(?P<rest>[?#].*)?$"
)


@dataclass(frozen=True, slots=True)
class BackendURL:
    """A parsed backend URL. ``authority`` is the name up to (not including) the path."""

    name: str
    scheme: str
    host: str
    port: int
    path: str
    authority: str
    unix_path: str | None = None


def parse_backend_url(url: str, runtime_dir: str, placeholders: bool = False) -> BackendURL:
    """Parse ``url``; raises ValueError saying what is wrong.

    ``runtime_dir`` resolves relative socket paths. With ``placeholders`` (a ProxyPassMatch
    URL containing ``$n``, or an ``interpolate`` URL with ``${VAR}`` in its host or port) a
    ``$`` in the host or port is accepted as written.
    """
    if url[:5].lower() == "unix:":
        sock, bar, inner = url[5:].partition("|")
        if not bar:
            raise ValueError("a unix: socket URL needs '|scheme://host/path' after the socket")
        if not sock:
            raise ValueError("the unix: socket path is empty")
        parsed = _parse_plain(inner, placeholders, allow_empty_host=True)
        unix_path = sock if os.path.isabs(sock) else os.path.join(runtime_dir, sock)
        prefix = f"unix:{sock}|"
        return BackendURL(prefix + parsed.name, parsed.scheme, parsed.host, parsed.port,
                          parsed.path, prefix + parsed.authority, unix_path)
    return _parse_plain(url, placeholders, allow_empty_host=False)


def _parse_plain(url: str, placeholders: bool, allow_empty_host: bool) -> BackendURL:
    match = _URL.match(url)
    if match is None:
        raise ValueError(f"{url!r} is not an absolute URL (scheme://host[:port][/path])")
    if match.group("rest"):
        if match.group("rest").startswith("?"):
            raise ValueError("the backend URL may not contain a query string")
        raise ValueError("the backend URL may not contain a fragment")
    scheme = match.group("scheme").lower()
    host = match.group("host")
    bracketed = host.startswith("[")
    if bracketed:
        host = host[1:-1]
    host = host.lower()
    if not host:
        if not allow_empty_host:
            raise ValueError(f"{url!r} has no host name")
        host = "localhost"
    default = DEFAULT_PORTS.get(scheme, 0)
    port_text = match.group("port")
    port = default
    explicit_port = ""
    if port_text:
        if port_text.isdigit():
            port = int(port_text)
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is out of range")
            if port != default:
                explicit_port = f":{port}"
        elif placeholders and "$" in port_text:
            explicit_port = f":{port_text}"
        else:
            raise ValueError(f"{port_text!r} is not a port number")
    shown_host = f"[{host}]" if bracketed or ":" in host else host
    authority = f"{scheme}://{shown_host}{explicit_port}"
    path = match.group("path")
    return BackendURL(authority + path, scheme, host, port, path, authority)


_BALANCER_PREFIX = "balancer://"


def is_balancer_url(url: str) -> bool:
    """True for ``balancer://...`` (scheme in any case)."""
    return url[:len(_BALANCER_PREFIX)].lower() == _BALANCER_PREFIX


def balancer_name(url: str) -> str:
    """``balancer://Name/any/path`` → ``balancer://name``; raises ValueError if malformed.

    As httpd, the path is not part of a balancer's identity and the name is lowercased.
    Unlike httpd, an empty name (``balancer:///x``) is refused, and so is a ``$``
    placeholder in the name: the balancer is chosen at config time.
    """
    if not is_balancer_url(url):
        raise ValueError(f"{url!r} is not a balancer:// URL")
    host = url[len(_BALANCER_PREFIX):].partition("/")[0]
    if not host:
        raise ValueError(f"bad syntax for a balancer name ({url})")
    if "$" in host:
        raise ValueError(f"a balancer name can not contain a $n placeholder ({url})")
    if any(char in host for char in "?# \t"):
        raise ValueError(f"bad character in the balancer name ({url})")
    return _BALANCER_PREFIX + host.lower()
