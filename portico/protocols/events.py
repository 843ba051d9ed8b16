"""The events the HTTP/1 codecs hand out.

A parser turns bytes into a flat list of these. One message is always a head
(``RequestHead``/``ResponseHead``, optionally preceded by ``InformationalHead``\\ s on the
response side), then zero or more ``Data``, then exactly one ``EndOfMessage``, except after a
protocol switch (101, CONNECT, Upgrade), where ``EndOfMessage`` ends the HTTP part and the
rest of the connection is a tunnel.

The classes use ``__slots__`` and plain ``__init__`` because one is built per message on the
hot path; they compare equal field by field so tests can write expected events literally.
"""

from __future__ import annotations

__all__ = [
    "BodyKind",
    "Data",
    "EndOfMessage",
    "Event",
    "Headers",
    "InformationalHead",
    "RequestHead",
    "ResponseHead",
]

import enum

Headers = list[tuple[bytes, bytes]]
"""Header fields in arrival order: names as sent, values with surrounding OWS stripped."""


class BodyKind(enum.IntEnum):
    """How the body of a message is delimited on the wire it arrived on.

    ``NONE`` means no body bytes follow the head (which includes ``Content-Length: 0``, a
    response to HEAD, 1xx/204/304); ``content_length`` still tells what was declared.
    """

    NONE = 0
    LENGTH = 1
    CHUNKED = 2
    UNTIL_CLOSE = 3


class _Event:
    """Field-wise equality and a readable repr for the slotted event classes."""

    __slots__ = ()

    _fields: tuple[str, ...] = ()   # what equality and repr compare (each class says)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._fields)

    __hash__ = None  # type: ignore[assignment]  # mutable value objects

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({fields})"


class RequestHead(_Event):
    """A complete, validated request head (request line and header fields).

    ``target`` is the raw request-target; ``version`` is ``b"1.1"`` or ``b"1.0"``.
    ``upgrade`` is the ``Upgrade`` value when the request asks to switch protocols
    (``Connection: upgrade``) and ``b"CONNECT"`` for a CONNECT request; after such a request
    the parser stops and the remaining bytes belong to the tunnel.
    """

    _fields = (
        "body_kind",
        "content_length",
        "expect_continue",
        "headers",
        "keep_alive",
        "method",
        "target",
        "upgrade",
        "version",
    )
    # ``host`` is the Host field's value (None: none was sent). The parser sets it while it
    # reads the fields, so later stages need not scan ``headers`` for it; a producer of
    # heads must do the same. Derived from ``headers``, so equality leaves it out.
    __slots__ = (*_fields, "host")

    def __init__(
        self, method: bytes, target: bytes, version: bytes, headers: Headers,
        keep_alive: bool = True, body_kind: BodyKind = BodyKind.NONE,
        content_length: int | None = None, expect_continue: bool = False,
        upgrade: bytes | None = None,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.body_kind = body_kind
        self.content_length = content_length
        self.expect_continue = expect_continue
        self.upgrade = upgrade
        self.host: bytes | None = None


class ResponseHead(_Event):
    """A final response head (status >= 200, or 101 Switching Protocols).

    ``keep_alive`` is False when the connection cannot carry another response afterwards:
    ``Connection: close``, HTTP/1.0 without keep-alive, a close-delimited body, ambiguous
    framing, or a protocol switch.
    """

    _fields = ("body_kind", "content_length", "headers", "keep_alive", "reason", "status",
               "version")
    # ``names_key`` is the field names joined with "\n" when the parser knows them valid and
    # unambiguous (None otherwise): an identity later stages may key their own per-shape
    # work by. Derived from ``headers``, so equality leaves it out.
    __slots__ = (*_fields, "names_key")

    def __init__(
        self, status: int, reason: bytes, version: bytes, headers: Headers,
        keep_alive: bool = True, body_kind: BodyKind = BodyKind.NONE,
        content_length: int | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.body_kind = body_kind
        self.content_length = content_length
        self.names_key: bytes | None = None


class InformationalHead(_Event):
    """An interim 1xx response other than 101 (100 Continue, 102, 103 Early Hints)."""

    __slots__ = ("headers", "reason", "status")
    _fields = __slots__

    def __init__(self, status: int, reason: bytes, headers: Headers) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers


class Data(_Event):
    """A piece of decoded body (chunk framing removed). Never empty."""

    __slots__ = ("data",)
    _fields = __slots__

    def __init__(self, data: bytes) -> None:
        self.data = data


class EndOfMessage(_Event):
    """The message is complete; ``trailers`` holds chunked trailer fields (often empty)."""

    __slots__ = ("trailers",)
    _fields = __slots__

    def __init__(self, trailers: Headers | None = None) -> None:
        self.trailers = trailers if trailers is not None else []


Event = RequestHead | ResponseHead | InformationalHead | Data | EndOfMessage
