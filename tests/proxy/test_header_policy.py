"""Header policy (§3.4, §4): the fast paths of the head builders give exactly the bytes of the
general path, whatever the spelling of a name, and the results are pinned byte for byte."""

from __future__ import annotations

import itertools

import pytest

from portico.config.model import ProxySettings, ProxyVia
from portico.proxy import headers as header_policy
from portico.proxy.headers import (
    BackendRequest,
    ResponseFraming,
    _request_head_general,
    build_request_head,
    build_response_head,
    max_forwards_action,
)


@pytest.fixture(autouse=True)
def fixed_date(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Date the proxy adds is the clock's; comparing two heads built a moment apart must
    not depend on whether a second boundary fell between them."""
    monkeypatch.setattr(header_policy, "http_date", lambda: b"Tue, 24 Nov 2026 06:00:00 GMT")


WRK = [(b"Host", b"127.0.0.1:8080"), (b"User-Agent", b"wrk"), (b"Accept", b"*/*")]


def request(**kw) -> BackendRequest:
    return BackendRequest(b"GET", b"/small", b"b:9", "10.0.0.1", "front", "px", **kw)


def test_request_head_common_case_is_pinned() -> None:
    assert build_request_head(request(), WRK, ProxySettings()) == (
        b"GET /small HTTP/1.1\r\nHost: b:9\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
        b"X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Host: 127.0.0.1:8080\r\n"
        b"X-Forwarded-Server: front\r\nConnection: Keep-Alive\r\n\r\n")


def test_request_head_without_host_add_headers_off_and_via() -> None:
    settings = ProxySettings(add_headers=False, via=ProxyVia.FULL)
    head = build_request_head(request(close=True, body_length=3), WRK[1:], settings)
    assert head.startswith(b"GET /small HTTP/1.1\r\nHost: b:9\r\nUser-Agent: wrk\r\n")
    assert b"X-Forwarded" not in head
    assert b"\r\nVia: 1.1 px (" in head
    assert head.endswith(b"Content-Length: 3\r\nConnection: close\r\n\r\n")


# Every name the policy acts on, in the spellings the fast path knows and in others.
NAMES = [b"Host", b"HOST", b"hOSt", b"Connection", b"connection", b"CONNECTION", b"Keep-Alive",
         b"TE", b"te", b"Trailer", b"Transfer-Encoding", b"Upgrade", b"Content-Length",
         b"Proxy-Connection", b"X-Forwarded-For", b"x-forwarded-host", b"X-FORWARDED-SERVER",
         b"Via", b"vIA", b"Expect", b"EXPECT", b"Max-Forwards", b"X-Hop", b"x-hop", b"Accept",
         b"ACCEPT", b"accept-Encoding"]
CONNECTION_VALUES = [b"keep-alive", b"Keep-Alive", b"close", b"upgrade", b"", b"x-hop",
                     b"keep-alive, X-Hop", b"close, accept"]


def _header_lists():
    for a, b in itertools.product(NAMES, repeat=2):
        for value in (CONNECTION_VALUES if b"connection" in (a.lower(), b.lower())
                      else [b"v"]):
            yield [(a, value), (b"Accept", b"*/*"), (b, value)]


@pytest.mark.parametrize("via", list(ProxyVia))
@pytest.mark.parametrize("add", [True, False])
def test_request_fast_path_equals_general_path(via: ProxyVia, add: bool) -> None:
    settings = ProxySettings(add_headers=add, via=via)
    for headers in _header_lists():
        for expect in (False, True):
            req = request(forward_expect=expect, max_forwards=b"4", add_expect=expect)
            assert (build_request_head(req, headers, settings)
                    == _request_head_general(req, headers, settings)), headers


def test_connection_listed_names_are_removed_in_any_spelling() -> None:
    headers = [(b"X-Hop", b"1"), (b"Connection", b"keep-alive, x-HOP"), (b"Accept", b"a")]
    head = build_request_head(request(), headers, ProxySettings())
    assert b"X-Hop" not in head and b"Connection: keep" not in head
    assert b"\r\nAccept: a\r\n" in head


RESPONSE = [(b"Server", b"origin"), (b"Date", b"Tue, 24 Nov 2026 04:00:00 GMT"),
            (b"Content-Type", b"text/plain"), (b"Content-Length", b"100")]


def respond(headers, framing: int = ResponseFraming.LENGTH, **kw):
    args = dict(framing=framing, content_length=100, keep_alive=True, client_version=b"1.1",
                settings=ProxySettings(), via_name="px", mapper=None, base_url="")
    args.update(kw)
    return build_response_head(200, b"OK", headers, **args)  # type: ignore[arg-type]


def test_response_head_common_case_is_pinned() -> None:
    data, sent = respond(RESPONSE)
    assert data == (b"HTTP/1.1 200 OK\r\nServer: origin\r\nDate: Tue, 24 Nov 2026 04:00:00 GMT"
                    b"\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n")
    assert sent == [*RESPONSE[:3], (b"Content-Length", b"100")]


def test_response_head_keeps_spelling_and_order_and_regenerates_framing() -> None:
    headers = [(b"DATE", b"d"), (b"content-length", b"7"), (b"ETag", b'"x"'),
               (b"Connection", b"close, etag"), (b"Via", b"1.0 up"), (b"keep-alive", b"t=5")]
    data, sent = respond(headers, framing=ResponseFraming.CHUNKED, client_version=b"1.0",
                         keepalive_header=b"timeout=5",
                         settings=ProxySettings(via=ProxyVia.ON))
    assert sent == [(b"DATE", b"d"), (b"Via", b"1.0 up, 1.0 px"),
                    (b"Transfer-Encoding", b"chunked"), (b"Connection", b"Keep-Alive"),
                    (b"Keep-Alive", b"timeout=5")]
    assert data == (b"HTTP/1.1 200 OK\r\nDATE: d\r\nVia: 1.0 up, 1.0 px\r\n"
                    b"Transfer-Encoding: chunked\r\nConnection: Keep-Alive\r\n"
                    b"Keep-Alive: timeout=5\r\n\r\n")


def test_response_without_framing_keeps_the_backend_length_and_adds_a_date() -> None:
    _, sent = respond([(b"Content-Length", b"5")], framing=ResponseFraming.NONE)
    assert sent[0] == (b"Content-Length", b"5")
    assert sent[1][0] == b"Date" and len(sent) == 2


def test_status_line_follows_the_reason_of_each_response() -> None:
    for reason in (b"OK", b"Fine", b"OK"):
        data, _ = build_response_head(
            200, reason, [], framing=ResponseFraming.CLOSE, content_length=None,
            keep_alive=False, client_version=b"1.1", settings=ProxySettings(), via_name="",
            mapper=None, base_url="")
        assert data.startswith(b"HTTP/1.1 200 " + reason + b"\r\n")


@pytest.mark.parametrize(("headers", "method", "configured", "expected"), [
    (WRK, b"GET", -1, (None, None)),
    (WRK, b"GET", 5, (None, b"5")),
    ([(b"Content-Type", b"x")], b"GET", 0, (None, b"0")),
    ([(b"MAX-FORWARDS", b"3")], b"GET", -1, (None, b"2")),
    ([(b"max-forwards", b"0")], b"OPTIONS", -1, (200, None)),
    ([(b"Max-Forwards", b"0")], b"GET", -1, (400, None)),
    ([(b"Max-Forwards", b"x")], b"GET", -1, (400, None)),
    ([(b"Max-Forwards", b"1"), (b"max-Forwards", b" 7")], b"GET", -1, (None, b"6")),
])
def test_max_forwards(headers, method: bytes, configured: int, expected) -> None:
    assert max_forwards_action(headers, method, configured) == expected


# Response fields the policy acts on (and plain ones), in several spellings.
RESPONSE_NAMES = [b"Server", b"Date", b"DATE", b"Content-Length", b"content-length",
                  b"Connection", b"CONNECTION", b"Keep-Alive", b"Transfer-Encoding", b"TE",
                  b"Via", b"Location", b"Set-Cookie", b"ETag", b"X-Hop", b"Proxy-Authenticate"]
RESPONSE_VALUES = {b"connection": [b"keep-alive", b"Close", b"x-hop", b"keep-alive, etag"],
                   b"location": [b"http://backend.test/x", b"/y"],
                   b"set-cookie": [b"s=1; Path=/app; Domain=backend.test"]}


def _response_lists():
    for a, b in itertools.product(RESPONSE_NAMES, repeat=2):
        for va in RESPONSE_VALUES.get(a.lower(), [b"1"]):
            for vb in RESPONSE_VALUES.get(b.lower(), [b"2"])[:2]:
                yield [(a, va), (b"Accept-Ranges", b"bytes"), (b, vb)]


@pytest.mark.parametrize("via", list(ProxyVia))
@pytest.mark.parametrize("mapped", [False, True])
@pytest.mark.parametrize("framing", [ResponseFraming.NONE, ResponseFraming.LENGTH,
                                     ResponseFraming.CHUNKED])
def test_response_shapes_give_what_the_field_by_field_path_gives(via, mapped, framing) -> None:
    """With the parser's names key the per-field decisions come from a remembered shape;
    the bytes and the sent list must be exactly those of the field-by-field path (asked
    twice, so the second answer comes from the table)."""
    from portico.config.model import ReverseRule, Source
    from portico.proxy.reverse import ReverseMapper

    src = Source("t", 1)
    mapper = (ReverseMapper([ReverseRule("/pub/", "http://backend.test/", src)],
                            [ReverseRule("front.test", "backend.test", src)],
                            [ReverseRule("/pub", "/app", src)]) if mapped else None)
    kw = dict(framing=framing, settings=ProxySettings(via=via), mapper=mapper,
              base_url="http://front.test")
    for headers in _response_lists():
        key = b"\n".join(name for name, _ in headers)
        expected = respond(list(headers), **kw)
        assert respond(list(headers), names_key=key, **kw) == expected, headers
        assert respond(list(headers), names_key=key, **kw) == expected, headers
