"""The exception types shared by every layer.

Two kinds of protocol error exist (DESIGN rule 3): a *local* one is our own bug or a limit we
enforce on ourselves; a *remote* one means a peer misbehaved. Only ``proxy/errors.py`` turns
them into HTTP statuses.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "UpstreamError",
    "UpstreamErrorKind",
]

import enum


class ConfigError(Exception):
    """A configuration problem, located like httpd does: file, line and directive."""

    def __init__(
        self, message: str, file: str | None = None, line: int | None = None,
        directive: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.directive = directive
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        what = f"{self.directive}: " if self.directive else ""
        return f"{where}{what}{self.message}"


class LocalProtocolError(Exception):
    """We were asked to do something the protocol does not allow (our side's fault)."""


class RemoteProtocolError(Exception):
    """A peer sent something the protocol does not allow.

    ``status`` is the HTTP status a client-side violation earns (400, 413, 414, 431, ...);
    for a backend-side violation it is left at 502.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


class UpstreamErrorKind(enum.Enum):
    """Why talking to a backend failed; proxy/errors.py maps each to a status."""

    CONNECT = "connect"            # refused, unreachable, DNS, TLS handshake: 503
    CONNECT_TIMEOUT = "connect-timeout"  # connectiontimeout expired: 503
    DNS = "dns"                    # the backend's name does not resolve: 500, as httpd
    POOL_EXHAUSTED = "pool-exhausted"    # no free connection within `acquire`: 503
    TIMEOUT = "timeout"            # no response head within `timeout`: 502 (httpd's choice)
    BAD_RESPONSE = "bad-response"  # malformed status line or headers: 502
    CLOSED = "closed"              # closed before a complete response head: 502
    NO_HANDLER = "no-handler"      # no module for the scheme: 500
    TLS_VERIFY = "tls-verify"      # certificate or peer-name check failed: 502


class UpstreamError(Exception):
    """Talking to a backend failed before the client was sent a response head."""

    def __init__(self, kind: UpstreamErrorKind, message: str, *, reused: bool = False) -> None:
        self.kind = kind
        self.reused = reused  # the connection came from the pool (keep-alive race candidate)
        super().__init__(message)
