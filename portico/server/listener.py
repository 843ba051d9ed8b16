"""Listening sockets for the config's ``Listen`` lines.

Sockets are made by hand (SO_REUSEADDR, SO_REUSEPORT so several worker processes can share a
port) and handed to ``loop.create_server(sock=...)``. Accepted sockets get TCP_NODELAY in
``FrontConnection.connection_made`` (a hand-made socket does not pass it on; DESIGN's trap).
"""

from __future__ import annotations

__all__ = ["ListenAddress", "bind_socket", "check_free", "open_listener", "resolve_listens"]

import socket
from dataclasses import dataclass

from portico.config.model import ListenSpec
from portico.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int
    family: int
    protocol: str  # "http" or "https"

    def __str__(self) -> str:
        host = f"[{self.host}]" if self.family == socket.AF_INET6 else self.host
        return f"{host}:{self.port}"


def resolve_listens(listens: tuple[ListenSpec, ...]) -> list[ListenAddress]:
    """Concrete addresses to bind; ``Listen 80`` means every IPv4 and IPv6 address."""
    out: list[ListenAddress] = []
    for spec in listens:
        protocol = (spec.protocol or ("https" if spec.port == 443 else "http")).lower()
        if spec.host is None:
            out.append(ListenAddress("0.0.0.0", spec.port, socket.AF_INET, protocol))
            if socket.has_ipv6 and _ipv6_works():
                out.append(ListenAddress("::", spec.port, socket.AF_INET6, protocol))
            continue
        host = spec.host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        out.append(ListenAddress(host, spec.port, family, protocol))
    return out


def _ipv6_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def check_free(addr: ListenAddress) -> None:
    """Refuse an address another process listens on, as httpd does. SO_REUSEPORT would let
    a second server share the port silently and split the traffic between two configs; a
    plain bind (no SO_REUSEPORT) fails while anyone listens there. Raises ConfigError."""
    probe = socket.socket(addr.family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if addr.family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        probe.bind((addr.host, addr.port))
    except OSError as exc:
        raise ConfigError(f"could not bind to address {addr}: {exc.strerror or exc}",
                          directive="Listen") from None
    finally:
        probe.close()


def bind_socket(addr: ListenAddress) -> socket.socket:
    """A bound, non-blocking SO_REUSEPORT socket, not listening yet. Raises ConfigError."""
    sock = socket.socket(addr.family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if addr.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((addr.host, addr.port))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"could not bind to address {addr}: {exc.strerror or exc}",
                          directive="Listen") from None
    return sock


def open_listener(addr: ListenAddress, backlog: int = 511) -> socket.socket:
    """``check_free``, ``bind_socket`` and listening. Raises ConfigError."""
    check_free(addr)
    sock = bind_socket(addr)
    try:
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"could not listen on address {addr}: {exc.strerror or exc}",
                          directive="Listen") from None
    return sock
