"""hop.py's header knowledge and the event value objects."""

from __future__ import annotations

import pytest

from portico.protocols.events import BodyKind, Data, EndOfMessage, RequestHead, ResponseHead
from portico.protocols.hop import (
    HOP_BY_HOP,
    REQUEST_HOP_BY_HOP,
    RESPONSE_HOP_BY_HOP,
    connection_tokens,
    without_hop_by_hop,
)


def test_connection_tokens_are_lowercased_split_stripped_and_merged():
    headers = [(b"Host", b"h"), (b"Connection", b" Keep-Alive ,X-Custom,, "),
               (b"connection", b"CLOSE"), (b"X-Connection", b"nope")]
    assert connection_tokens(headers) == frozenset({b"keep-alive", b"x-custom", b"close"})
    assert connection_tokens([]) == frozenset()


def test_hop_by_hop_sets_follow_the_reference():
    assert {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
            b"transfer-encoding", b"upgrade"} == HOP_BY_HOP
    assert b"content-length" in REQUEST_HOP_BY_HOP  # §4.4: regenerated for the backend
    assert b"proxy-authenticate" in RESPONSE_HOP_BY_HOP  # §3.4
    assert all(name == name.lower() for name in RESPONSE_HOP_BY_HOP | REQUEST_HOP_BY_HOP)


def test_without_hop_by_hop_drops_named_fields_and_keeps_order():
    headers = [(b"Host", b"h"), (b"Connection", b"X-Drop, keep-alive"), (b"X-Drop", b"1"),
               (b"Keep-Alive", b"timeout=5"), (b"Accept", b"*/*"), (b"TE", b"trailers"),
               (b"x-keep", b"2")]
    assert without_hop_by_hop(headers) == [(b"Host", b"h"), (b"Accept", b"*/*"),
                                           (b"x-keep", b"2")]
    assert without_hop_by_hop([(b"Content-Length", b"3")], REQUEST_HOP_BY_HOP) == []


def test_events_compare_by_value_and_show_their_fields():
    a = ResponseHead(200, b"OK", b"1.1", [(b"A", b"1")], True, BodyKind.LENGTH, 3)
    b = ResponseHead(200, b"OK", b"1.1", [(b"A", b"1")], True, BodyKind.LENGTH, 3)
    assert a == b and a != ResponseHead(200, b"OK", b"1.1", [], True, BodyKind.LENGTH, 3)
    assert Data(b"x") != EndOfMessage()
    assert "status=200" in repr(a)
    assert EndOfMessage().trailers == [] and EndOfMessage().trailers is not EndOfMessage().trailers
    head = RequestHead(b"GET", b"/", b"1.1", [])
    assert head.keep_alive and head.body_kind == BodyKind.NONE and head.upgrade is None
    with pytest.raises(AttributeError):
        head.extra = 1  # slotted: no stray attributes on the hot path
    with pytest.raises(TypeError):
        hash(a)
