"""ResponseParser: status lines, framing (RFC 9112 §6.3), 1xx, switches, ProxyBadHeader,
responsefieldsize, reuse decisions and every refusal (502)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import portico.protocols.http1 as http1
from portico.errors import LocalProtocolError, RemoteProtocolError
from portico.protocols.chunked import chunk_frames, encode_trailers
from portico.protocols.events import (
    BodyKind,
    Data,
    EndOfMessage,
    InformationalHead,
    ResponseHead,
)
from portico.protocols.http1 import ResponseParser
from tests.protocols.helpers import every_split, feed_pieces, merge_data, pieces


@pytest.fixture(autouse=True, params=["compiled", "python"])
def head_path(request, monkeypatch):
    """Every test here runs with the compiled fast path for response heads (where it is
    built) and with the Python one, as on a machine without a C compiler."""
    if request.param == "compiled":
        if http1._fast_head is http1._python_fast_head:
            pytest.skip("the compiled fast path is not built or is turned off")
    else:
        monkeypatch.setattr(http1, "_fast_head", http1._python_fast_head)
    return request.param


def parse(data: bytes, how: str | int = "whole", method: bytes = b"GET",
          eof: bool = False, **options):
    parser = ResponseParser(**options)
    parser.start(method)
    events = feed_pieces(parser.feed, data, how)
    if eof:
        events = merge_data(events + parser.feed_eof())
    return events


def resp(*lines: bytes, body: bytes = b"", nl: bytes = b"\r\n") -> bytes:
    return nl.join(lines) + nl + nl + body


# -- valid responses, every way of splitting --------------------------------------------

LENGTH = resp(b"HTTP/1.1 200 OK", b"Content-Length: 5", b"X-A:  a b  ", body=b"hello")
LENGTH_EVENTS = [
    ResponseHead(200, b"OK", b"1.1", [(b"Content-Length", b"5"), (b"X-A", b"a b")], True,
                 BodyKind.LENGTH, 5),
    Data(b"hello"),
    EndOfMessage([]),
]
CHUNKED = resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked",
               body=b"5;e=1\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n")
CHUNKED_EVENTS = [
    ResponseHead(200, b"OK", b"1.1", [(b"Transfer-Encoding", b"chunked")], True,
                 BodyKind.CHUNKED, None),
    Data(b"hello world"),
    EndOfMessage([(b"T", b"v")]),
]
BARE_LF = resp(b"HTTP/1.0 404 Not Found", b"Content-Length: 2", b"Connection: keep-alive",
               body=b"no", nl=b"\n")
BARE_LF_EVENTS = [
    ResponseHead(404, b"Not Found", b"1.0",
                 [(b"Content-Length", b"2"), (b"Connection", b"keep-alive")], True,
                 BodyKind.LENGTH, 2),
    Data(b"no"),
    EndOfMessage([]),
]
CONTINUE = resp(b"HTTP/1.1 100 Continue") + resp(b"HTTP/1.1 103 Early Hints",
                                                  b"Link: </s.css>") + LENGTH
CONTINUE_EVENTS = [InformationalHead(100, b"Continue", []),
                   InformationalHead(103, b"Early Hints", [(b"Link", b"</s.css>")]),
                   *LENGTH_EVENTS]


@pytest.mark.parametrize(("data", "expected"), [
    (LENGTH, LENGTH_EVENTS), (CHUNKED, CHUNKED_EVENTS), (BARE_LF, BARE_LF_EVENTS),
    (CONTINUE, CONTINUE_EVENTS),
], ids=["length", "chunked", "bare-lf", "interim"])
def test_valid_response_every_split(data, expected):
    for how in every_split(data):
        assert parse(data, how) == expected, how


def test_until_close_body_every_split():
    data = resp(b"HTTP/1.1 200 OK", b"Content-Type: text/plain", body=b"all of it")
    expected = [ResponseHead(200, b"OK", b"1.1", [(b"Content-Type", b"text/plain")], False,
                             BodyKind.UNTIL_CLOSE, None),
                Data(b"all of it"), EndOfMessage([])]
    for how in every_split(data):
        assert parse(data, how, eof=True) == expected, how


def test_length_body_is_the_input_object_when_it_is_all_body():
    parser = ResponseParser()
    parser.start(b"GET")
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    chunk = b"0123456789"
    first, second = chunk[:4], chunk[4:]
    assert parser.feed(first)[0].data is first
    events = parser.feed(second)
    assert events[0].data is second and events[1] == EndOfMessage([])


def test_status_line_forms():
    assert parse(resp(b"HTTP/1.1 204"))[0].reason == b""
    assert parse(resp(b"HTTP/1.1 204 "))[0].reason == b""
    assert parse(resp(b"HTTP/1.1 200 Very  OK ", b"Content-Length: 0"))[0].reason == (
        b"Very  OK ")
    head = parse(resp(b"HTTP/1.1 599 Odd", b"Content-Length: 0"))[0]
    assert head.status == 599 and head.body_kind == BodyKind.NONE and head.content_length == 0


def test_stray_blank_lines_before_the_status_line_are_skipped():
    assert parse(b"\r\n\r\n" + LENGTH) == LENGTH_EVENTS
    assert parse(b"\n" + LENGTH, "bytes") == LENGTH_EVENTS


def test_obs_fold_becomes_one_space():
    data = resp(b"HTTP/1.1 200 OK", b"X-Long: one", b"   two", b"\tthree",
                b"X-Empty:", b" later", b"Content-Length: 0")
    head = parse(data)[0]
    assert head.headers == [(b"X-Long", b"one two three"), (b"X-Empty", b"later"),
                            (b"Content-Length", b"0")]


# -- framing ------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "status_line"), [
    (b"HEAD", b"HTTP/1.1 200 OK"),
    (b"GET", b"HTTP/1.1 204 No Content"),
    (b"GET", b"HTTP/1.1 304 Not Modified"),
])
def test_no_body_responses_keep_the_declared_length(method, status_line):
    parser = ResponseParser()
    parser.start(method)
    data = resp(status_line, b"Content-Length: 1234")
    events = parser.feed(data)
    assert events[0].body_kind == BodyKind.NONE and events[0].content_length == 1234
    assert events[1:] == [EndOfMessage([])]
    assert parser.idle
    # The next response on the same connection parses normally.
    parser.start(b"GET")
    assert parser.feed(LENGTH) == LENGTH_EVENTS


def test_head_response_ignores_chunked_framing():
    events = parse(resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked"), method=b"HEAD")
    assert events[0].body_kind == BodyKind.NONE and events[1:] == [EndOfMessage([])]


def test_te_and_cl_drops_length_and_the_connection():
    data = resp(b"HTTP/1.1 200 OK", b"Content-Length: 100", b"Transfer-Encoding: chunked",
                body=b"2\r\nok\r\n0\r\n\r\n")
    head, body, end = parse(data)
    assert head.body_kind == BodyKind.CHUNKED and head.content_length is None
    assert head.keep_alive is False
    assert head.headers == [(b"Transfer-Encoding", b"chunked")]
    assert body == Data(b"ok") and end == EndOfMessage([])


def test_te_with_final_chunked_after_other_codings():
    data = resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: gzip", b"transfer-encoding: CHUNKED",
                body=b"2\r\n\x1f\x8b\r\n0\r\n\r\n")
    head, body, _ = parse(data)
    assert head.body_kind == BodyKind.CHUNKED and head.keep_alive is True
    assert body == Data(b"\x1f\x8b")


def test_te_not_ending_in_chunked_reads_until_close():
    data = resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked, gzip", b"Content-Length: 3",
                body=b"raw bytes")
    head, body, end = parse(data, eof=True)
    assert head.body_kind == BodyKind.UNTIL_CLOSE and head.keep_alive is False
    assert head.content_length is None
    assert body == Data(b"raw bytes") and end == EndOfMessage([])


def test_chunked_in_http10_response_is_decoded_but_not_reused():
    data = resp(b"HTTP/1.0 200 OK", b"Connection: keep-alive", b"Transfer-Encoding: chunked",
                body=b"1\r\nx\r\n0\r\n\r\n")
    head, body, _ = parse(data)
    assert head.body_kind == BodyKind.CHUNKED and head.keep_alive is False
    assert body == Data(b"x")


@pytest.mark.parametrize("values", [[b"5", b"5"], [b"5, 5"], [b" 5 "]])
def test_identical_content_lengths_are_accepted(values):
    lines = [b"Content-Length: " + v for v in values]
    head, body, _ = parse(resp(b"HTTP/1.1 200 OK", *lines, body=b"12345"))
    assert head.content_length == 5 and body == Data(b"12345")


def test_no_length_means_until_close_and_no_reuse():
    head = parse(resp(b"HTTP/1.1 200 OK"))[0]
    assert head.body_kind == BodyKind.UNTIL_CLOSE and head.keep_alive is False


@pytest.mark.parametrize(("version", "connection", "keep"), [
    (b"1.1", None, True),
    (b"1.1", b"close", False),
    (b"1.1", b"Upgrade, Close", False),
    (b"1.0", None, False),
    (b"1.0", b"Keep-Alive", True),
    (b"1.0", b"keep-alive, close", False),
    (b"1.2", None, True),  # a later 1.x minor is treated as 1.1
])
def test_keep_alive(version, connection, keep):
    lines = [b"HTTP/" + version + b" 200 OK", b"Content-Length: 0"]
    if connection is not None:
        lines.append(b"Connection: " + connection)
    assert parse(resp(*lines))[0].keep_alive is keep


# -- reuse: leftovers, idle, start ---------------------------------------------------------

def test_next_response_parses_from_leftover_bytes():
    parser = ResponseParser()
    parser.start(b"GET")
    events = parser.feed(LENGTH + CHUNKED[:30])
    assert events == LENGTH_EVENTS
    assert not parser.idle  # bytes are waiting
    parser.start(b"GET")
    assert merge_data(parser.feed(CHUNKED[30:])) == CHUNKED_EVENTS
    assert parser.idle
    parser.start(b"GET")
    parser_events = parser.feed(LENGTH + LENGTH)
    assert parser_events == LENGTH_EVENTS
    parser.start(b"GET")
    assert parser.feed(b"") == LENGTH_EVENTS  # all of it was already buffered
    assert parser.idle


def test_idle_only_between_complete_reusable_responses():
    parser = ResponseParser()
    assert parser.idle
    parser.start(b"GET")
    assert not parser.idle
    parser.feed(LENGTH[:-1])
    assert not parser.idle
    parser.feed(LENGTH[-1:])
    assert parser.idle
    parser.start(b"GET")
    parser.feed(resp(b"HTTP/1.1 200 OK", b"Connection: close", b"Content-Length: 0"))
    assert not parser.idle
    assert parser.feed(b"junk after close") == []
    with pytest.raises(LocalProtocolError):
        parser.start(b"GET")


def test_start_in_the_middle_of_a_response_is_our_bug():
    parser = ResponseParser()
    parser.start(b"GET")
    with pytest.raises(LocalProtocolError):
        parser.start(b"GET")


def test_unsolicited_bytes_make_the_connection_unusable():
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200") == []
    assert not parser.idle


def test_feed_eof():
    parser = ResponseParser()
    assert parser.feed_eof() == []  # idle close: fine
    parser = ResponseParser()
    parser.start(b"GET")
    with pytest.raises(RemoteProtocolError, match="without sending a response") as info:
        parser.feed_eof()
    assert info.value.status == 502
    for partial in (LENGTH[:10], LENGTH[:-2], CHUNKED[:-3]):
        parser = ResponseParser()
        parser.start(b"GET")
        parser.feed(partial)
        with pytest.raises(RemoteProtocolError) as info:
            parser.feed_eof()
        assert info.value.status == 502


# -- protocol switches ---------------------------------------------------------------------

@pytest.mark.parametrize("how", ["whole", "bytes", 20])
def test_101_switches_and_keeps_the_tunnel_bytes(how):
    head_bytes = resp(b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket",
                      b"Connection: Upgrade")
    parser = ResponseParser()
    parser.start(b"GET")
    events = []
    for piece in pieces(head_bytes + b"\x81\x02hi", how):
        events += parser.feed(piece)
    assert events == [ResponseHead(101, b"Switching Protocols", b"1.1",
                                   [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")],
                                   False, BodyKind.NONE, None), EndOfMessage([])]
    assert parser.take_unparsed() == b"\x81\x02hi"
    assert parser.take_unparsed() == b""
    assert not parser.idle and parser.feed_eof() == []


def test_2xx_to_connect_is_a_tunnel():
    parser = ResponseParser()
    parser.start(b"CONNECT")
    events = parser.feed(resp(b"HTTP/1.1 200 Connection Established") + b"\x16\x03")
    assert events[0].status == 200 and events[0].keep_alive is False
    assert events[0].body_kind == BodyKind.NONE
    assert parser.take_unparsed() == b"\x16\x03"


def test_failed_connect_is_an_ordinary_response():
    events = parse(resp(b"HTTP/1.1 403 Forbidden", b"Content-Length: 2", body=b"no"),
                   method=b"CONNECT")
    assert events[1] == Data(b"no")


# -- ProxyBadHeader --------------------------------------------------------------------------

NO_COLON = resp(b"HTTP/1.1 200 OK", b"Content-Length: 4", b"this line has no colon",
                b"X-After: 1", body=b"body")


def test_bad_header_iserror():
    with pytest.raises(RemoteProtocolError) as info:
        parse(NO_COLON)
    assert info.value.status == 502


def test_bad_header_ignore_drops_the_line():
    for how in ("whole", "bytes"):
        head, body, _ = parse(NO_COLON, how, bad_header="Ignore")
        assert head.headers == [(b"Content-Length", b"4"), (b"X-After", b"1")], how
        assert body == Data(b"body")


def test_bad_header_startbody_with_blank_line_later():
    data = resp(b"HTTP/1.0 200 OK", b"Content-Type: text/html", b"<html>oops",
                b"</html>", body=b"tail")
    for how in every_split(data):
        head, body, _ = parse(data, how, eof=True, bad_header="startbody")
        assert head.headers == [(b"Content-Type", b"text/html")], how
        assert head.body_kind == BodyKind.UNTIL_CLOSE
        assert body == Data(b"<html>oops\r\n</html>\r\n\r\ntail"), how


def test_bad_header_startbody_without_any_blank_line():
    data = b"HTTP/1.0 200 OK\nContent-Type: text/plain\nplain body\nmore"
    for how in ("whole", "bytes", 30):
        head, body, _ = parse(data, how, eof=True, bad_header="startbody")
        assert head.headers == [(b"Content-Type", b"text/plain")], how
        assert body == Data(b"plain body\nmore"), how


def test_bad_header_mode_is_validated():
    with pytest.raises(ValueError):
        ResponseParser(bad_header="sometimes")


# -- responsefieldsize and field count ------------------------------------------------------

@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_header_line_longer_than_max_field_size_is_502(how):
    line = b"X-Big: " + b"v" * (64 - 7)
    assert parse(resp(b"HTTP/1.1 200 OK", line, b"Content-Length: 0"), how,
                 max_field_size=64)[0].headers[0] == (b"X-Big", b"v" * 57)
    with pytest.raises(RemoteProtocolError) as info:
        parse(resp(b"HTTP/1.1 200 OK", line + b"v", b"Content-Length: 0"), how,
              max_field_size=64)
    assert info.value.status == 502


def test_endless_header_line_fails_before_it_ends():
    parser = ResponseParser(max_field_size=64)
    parser.start(b"GET")
    parser.feed(b"HTTP/1.1 200 OK\r\nX-Endless: ")
    with pytest.raises(RemoteProtocolError, match="too long"):
        for _ in range(100):  # bounded
            parser.feed(b"v" * 8)


def test_too_many_fields_is_502_complete_or_not():
    fields = [b"X-%d: v" % i for i in range(5)]
    assert len(parse(resp(b"HTTP/1.1 200 OK", *fields[:4]), max_fields=4)[0].headers) == 4
    with pytest.raises(RemoteProtocolError, match="too many"):
        parse(resp(b"HTTP/1.1 200 OK", *fields), max_fields=4)
    parser = ResponseParser(max_fields=4)
    parser.start(b"GET")
    with pytest.raises(RemoteProtocolError, match="too many"):
        for _ in range(100):  # bounded; the head never ends
            parser.feed(b"X-F: v\r\n")


# -- refusals ------------------------------------------------------------------------------

BAD = {
    "not-http": b"HTPT/1.1 200 OK\r\n\r\n",
    "http2": b"HTTP/2.0 200 OK\r\n\r\n",
    "http09-body": b"<html>hello</html>\r\n\r\n",
    "two-digit-status": b"HTTP/1.1 20 OK\r\n\r\n",
    "alpha-status": b"HTTP/1.1 2x0 OK\r\n\r\n",
    "status-too-low": b"HTTP/1.1 099 Low\r\n\r\n",
    "no-space-after-status": b"HTTP/1.1 200OK\r\n\r\n",
    "minor-not-digit": b"HTTP/1.x 200 OK\r\n\r\n",
    "bad-name": resp(b"HTTP/1.1 200 OK", b"Bad Name: v", b"Content-Length: 0"),
    "space-before-colon": resp(b"HTTP/1.1 200 OK", b"X-A : v", b"Content-Length: 0"),
    "empty-name": resp(b"HTTP/1.1 200 OK", b": v", b"Content-Length: 0"),
    "fold-first": resp(b"HTTP/1.1 200 OK", b" folded", b"Content-Length: 0"),
    "nul-in-value": resp(b"HTTP/1.1 200 OK", b"X-A: a\x00b", b"Content-Length: 0"),
    "bare-cr": resp(b"HTTP/1.1 200 OK", b"X-A: a\rb", b"Content-Length: 0"),
    "cl-differing": resp(b"HTTP/1.1 200 OK", b"Content-Length: 1", b"Content-Length: 2"),
    "cl-list-differing": resp(b"HTTP/1.1 200 OK", b"Content-Length: 1, 2"),
    "cl-sign": resp(b"HTTP/1.1 200 OK", b"Content-Length: +1", body=b"x"),
    "cl-alpha": resp(b"HTTP/1.1 200 OK", b"Content-Length: 1x"),
    "cl-empty": resp(b"HTTP/1.1 200 OK", b"Content-Length:"),
    "cl-underscore": resp(b"HTTP/1.1 200 OK", b"Content-Length: 1_0"),
    "cl-overflow": resp(b"HTTP/1.1 200 OK", b"Content-Length: " + b"9" * 19),
    "chunked-twice": resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked, chunked"),
    "bad-chunk": resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked", body=b"xyz\r\n"),
}


@pytest.mark.parametrize("name", sorted(BAD))
@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_malformed_response_is_502(name, how):
    parser = ResponseParser()
    parser.start(b"GET")
    with pytest.raises(RemoteProtocolError) as info:
        for piece in pieces(BAD[name], how):
            parser.feed(piece)
    assert info.value.status == 502
    assert not parser.idle
    with pytest.raises(RemoteProtocolError):  # a dead parser keeps refusing
        parser.feed(b"HTTP/1.1 200 OK\r\n\r\n")


# -- chunked round trip through the parser -------------------------------------------------

@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(min_size=1, max_size=400),
       sizes=st.lists(st.integers(min_value=1, max_value=150), min_size=1, max_size=6),
       cuts=st.lists(st.integers(min_value=1, max_value=800), max_size=10))
def test_chunked_response_round_trip_any_split(payload, sizes, cuts):
    parts = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]
    pos = i = 0
    while pos < len(payload):
        size = sizes[i % len(sizes)]
        parts += chunk_frames(payload[pos:pos + size])
        pos += size
        i += 1
    parts.append(encode_trailers([(b"X-Sum", b"%d" % len(payload))]))
    wire = b"".join(parts) + LENGTH  # a second response right behind
    bounds = [0, *sorted({c for c in cuts if c < len(wire)}), len(wire)]
    parser = ResponseParser()
    parser.start(b"GET")
    events = []
    for start, stop in itertools.pairwise(bounds):
        events += parser.feed(wire[start:stop])
    events = merge_data(events)
    assert events[1:] == [Data(payload), EndOfMessage([(b"X-Sum", b"%d" % len(payload))])]
    parser.start(b"GET")
    assert parser.feed(b"") == LENGTH_EVENTS


# -- a body moved past the parser (a splice) -------------------------------------------------

def test_body_moved_past_the_parser_ends_the_response_and_keeps_the_connection() -> None:
    parser = ResponseParser()
    parser.start(b"GET")
    events = parser.feed(resp(b"HTTP/1.1 200 OK", b"Content-Length: 100000", body=b"x" * 1000))
    assert [type(e) for e in events] == [ResponseHead, Data]
    assert parser.length_left == 99000
    assert parser.body_moved(50000) is False
    assert parser.length_left == 49000
    assert parser.body_moved(49000) is True
    assert parser.length_left == 0 and parser.idle
    parser.start(b"GET")   # the next response on the same connection parses as usual
    events = parser.feed(resp(b"HTTP/1.1 204 No Content"))
    assert isinstance(events[0], ResponseHead) and events[0].status == 204


def test_body_moved_refuses_what_the_framing_does_not_allow() -> None:
    parser = ResponseParser()
    parser.start(b"GET")
    parser.feed(resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked"))
    assert parser.length_left == 0   # chunked: nothing can be moved past the parser
    with pytest.raises(LocalProtocolError):
        parser.body_moved(1)
    framed = ResponseParser()
    framed.start(b"GET")
    framed.feed(resp(b"HTTP/1.1 200 OK", b"Content-Length: 10"))
    with pytest.raises(LocalProtocolError):
        framed.body_moved(11)   # more than the head announced
    assert framed.length_left == 10
