"""Hop-by-hop header knowledge (RFC 9110 §7.6.1; reference §3.4 and §4.4).

Every name here is lowercase bytes, so callers compare against ``name.lower()``.
Which of these sets a stage applies is the proxy's policy (``proxy/headers.py``); this
module only knows the protocol facts.
"""

from __future__ import annotations

__all__ = [
    "FRAMING",
    "HOP_BY_HOP",
    "REQUEST_HOP_BY_HOP",
    "RESPONSE_HOP_BY_HOP",
    "connection_tokens",
    "without_hop_by_hop",
]

from collections.abc import Iterable

HOP_BY_HOP: frozenset[bytes] = frozenset({
    b"connection",
    b"keep-alive",
    b"proxy-connection",  # never standard, still sent by old clients; httpd drops it
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
})
"""Fields that describe one connection and never travel past a proxy as they are."""

FRAMING: frozenset[bytes] = frozenset({b"content-length", b"transfer-encoding"})
"""Fields regenerated for the outgoing connection to match how the body is actually sent."""

REQUEST_HOP_BY_HOP: frozenset[bytes] = HOP_BY_HOP | FRAMING
"""What httpd drops from a request before sending it to a backend (§4.4, item 1)."""

RESPONSE_HOP_BY_HOP: frozenset[bytes] = HOP_BY_HOP | FRAMING | {b"proxy-authenticate"}
"""What httpd drops from a backend response before relaying it (§3.4)."""


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The lowercased, stripped, non-empty tokens of every ``Connection`` field in ``headers``."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection":
            for token in value.split(b","):
                token = token.strip(b" \t")
                if token:
                    tokens.add(token.lower())
    return frozenset(tokens)


def without_hop_by_hop(
    headers: Iterable[tuple[bytes, bytes]], drop: frozenset[bytes] = HOP_BY_HOP,
) -> list[tuple[bytes, bytes]]:
    """``headers`` minus the names in ``drop`` and every name the Connection fields list.

    Order and spelling of the kept fields are preserved.
    """
    headers = list(headers)
    named = connection_tokens(headers)
    gone = drop | named if named else drop
    return [(n, v) for n, v in headers if n.lower() not in gone]
