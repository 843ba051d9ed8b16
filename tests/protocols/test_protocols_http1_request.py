"""RequestParser: framing, keep-alive, pipelining, upgrades, limits and every refusal.

Every valid message is fed whole, one byte at a time and split at every position; every
malformed one must raise with the right status and never yield a RequestHead.
"""

from __future__ import annotations

import pytest

import portico.protocols.http1 as http1
from portico.errors import RemoteProtocolError
from portico.protocols.events import BodyKind, Data, EndOfMessage, RequestHead
from portico.protocols.http1 import RequestLimits, RequestParser
from tests.protocols.helpers import every_split, feed_pieces, pieces


@pytest.fixture(autouse=True, params=["compiled", "llhttp"])
def request_path(request, monkeypatch):
    """Every test here runs with the compiled fast path for common requests (where it is
    built) and with llhttp alone, as on a machine without a C compiler."""
    if request.param == "compiled":
        if http1._fast_request is None:
            pytest.skip("the compiled fast path is not built or is turned off")
    else:
        monkeypatch.setattr(http1, "_fast_request", None)
    return request.param


def parse(data: bytes, how: str | int = "whole", limits: RequestLimits | None = None):
    parser = RequestParser(limits)
    return feed_pieces(parser.feed, data, how)


# -- valid requests, every way of splitting ---------------------------------------------

SIMPLE = b"GET /a?b=1 HTTP/1.1\r\nHost: example.test\r\nX-Pad:  v  \r\n\r\n"
SIMPLE_EVENTS = [
    RequestHead(b"GET", b"/a?b=1", b"1.1", [(b"Host", b"example.test"), (b"X-Pad", b"v")],
                True, BodyKind.NONE, None, False, None),
    EndOfMessage([]),
]

LENGTH = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
LENGTH_EVENTS = [
    RequestHead(b"POST", b"/up", b"1.1", [(b"Host", b"h"), (b"Content-Length", b"5")],
                True, BodyKind.LENGTH, 5),
    Data(b"hello"),
    EndOfMessage([]),
]

CHUNKED = (b"POST /c HTTP/1.1\r\nHost: h\r\ntransfer-encoding: Chunked\r\n\r\n"
           b"5;name=val\r\nhello\r\n1\r\n!\r\n0\r\nX-Trailer: t1\r\n\r\n")
CHUNKED_EVENTS = [
    RequestHead(b"POST", b"/c", b"1.1", [(b"Host", b"h"), (b"transfer-encoding", b"Chunked")],
                True, BodyKind.CHUNKED, None),
    Data(b"hello!"),
    EndOfMessage([(b"X-Trailer", b"t1")]),
]

HTTP10 = b"GET / HTTP/1.0\r\n\r\n"
HTTP10_EVENTS = [RequestHead(b"GET", b"/", b"1.0", [], False), EndOfMessage([])]

PIPELINED = SIMPLE + LENGTH + CHUNKED
PIPELINED_EVENTS = SIMPLE_EVENTS + LENGTH_EVENTS + CHUNKED_EVENTS

CASES = [
    (SIMPLE, SIMPLE_EVENTS),
    (LENGTH, LENGTH_EVENTS),
    (CHUNKED, CHUNKED_EVENTS),
    (HTTP10, HTTP10_EVENTS),
]


@pytest.mark.parametrize(("data", "expected"), CASES, ids=["simple", "length", "chunked",
                                                           "http10"])
def test_valid_request_every_split(data, expected):
    for how in every_split(data):
        assert parse(data, how) == expected, how


def test_pipelined_requests_come_out_in_order_whole_and_bytewise():
    for how in ("whole", "bytes", 10, len(SIMPLE), len(SIMPLE) + 3, len(PIPELINED) - 2):
        assert parse(PIPELINED, how) == PIPELINED_EVENTS, how


def test_need_more_data_is_an_empty_list():
    parser = RequestParser()
    assert parser.feed(b"GET / HTTP/1.1\r\nHo") == []
    assert parser.feed(b"st: a\r\n") == []
    assert parser.feed(b"\r\n") == [RequestHead(b"GET", b"/", b"1.1", [(b"Host", b"a")]),
                                    EndOfMessage([])]


def test_length_body_streams_as_it_arrives():
    parser = RequestParser()
    head, = parser.feed(b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\n")
    assert head.body_kind == BodyKind.LENGTH and head.content_length == 6
    assert parser.feed(b"abc") == [Data(b"abc")]
    assert parser.feed(b"def") == [Data(b"def"), EndOfMessage([])]


def test_content_length_zero_is_no_body():
    head, end = parse(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
    assert head.body_kind == BodyKind.NONE and head.content_length == 0
    assert end == EndOfMessage([])


def test_header_values_keep_order_names_and_inner_spaces():
    head = parse(b"GET / HTTP/1.1\r\nHost: h\r\nX-A:\t a  b \t\r\nx-a: 2\r\nEmpty:\r\n\r\n")[0]
    assert head.headers == [(b"Host", b"h"), (b"X-A", b"a  b"), (b"x-a", b"2"), (b"Empty", b"")]


# -- keep-alive --------------------------------------------------------------------------

@pytest.mark.parametrize(("version", "connection", "keep"), [
    (b"1.1", None, True),
    (b"1.1", b"close", False),
    (b"1.1", b"Keep-Alive, CLOSE", False),
    (b"1.0", None, False),
    (b"1.0", b"keep-alive", True),
    (b"1.0", b"foo, Keep-Alive", True),
])
def test_keep_alive_follows_version_and_connection_tokens(version, connection, keep):
    raw = b"GET / HTTP/" + version + b"\r\nHost: h\r\n"
    if connection is not None:
        raw += b"Connection: " + connection + b"\r\n"
    head = parse(raw + b"\r\n")[0]
    assert head.keep_alive is keep


def test_nothing_is_parsed_after_a_request_that_closes():
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    extra = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
    for how in ("whole", "bytes", len(raw), len(raw) + 5):
        parser = RequestParser()
        events = feed_pieces(parser.feed, raw + extra, how)
        assert [type(e) for e in events] == [RequestHead, EndOfMessage], how
        assert events[0].target == b"/"
        assert parser.feed(b"garbage\r\n\r\n") == []


def test_http10_request_without_keep_alive_stops_parsing():
    parser = RequestParser()
    events = parser.feed(HTTP10 + b"GET /two HTTP/1.0\r\n\r\n")
    assert events == HTTP10_EVENTS


# -- Expect and upgrades -----------------------------------------------------------------

@pytest.mark.parametrize(("version", "value", "expected"), [
    (b"1.1", b"100-continue", True),
    (b"1.1", b"100-Continue", True),
    (b"1.1", b"something-else", False),
    (b"1.0", b"100-continue", False),  # RFC 9110 §10.1.1: ignored in HTTP/1.0
])
def test_expect_continue(version, value, expected):
    raw = (b"POST / HTTP/" + version + b"\r\nHost: h\r\nExpect: " + value
           + b"\r\nContent-Length: 2\r\n\r\n")
    head = parse(raw)[0]
    assert head.expect_continue is expected


def test_websocket_upgrade_stops_parsing_and_keeps_the_tunnel_bytes():
    raw = (b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
           b"Upgrade: websocket\r\n\r\n")
    for how in ("whole", "bytes", len(raw) - 1):
        parser = RequestParser()
        events = feed_pieces(parser.feed, raw + b"\x81\x00FRAME", how)
        assert parser.upgraded, how
        head, end = events[:2]
        assert head.upgrade == b"websocket" and end == EndOfMessage([])
        tunnel = parser.take_unparsed()
        # Byte-wise feeding stops at the head: the rest was never given to the parser.
        assert (b"\x81\x00FRAME" if how != "bytes" else b"").startswith(tunnel)
        assert parser.take_unparsed() == b""
        assert parser.feed(b"more") == []


def test_connect_is_an_upgrade():
    parser = RequestParser()
    events = parser.feed(b"CONNECT backend:443 HTTP/1.1\r\nHost: backend:443\r\n\r\n\x16\x03")
    assert events[0].upgrade == b"CONNECT" and events[0].target == b"backend:443"
    assert parser.upgraded and parser.take_unparsed() == b"\x16\x03"


def test_upgrade_header_without_connection_token_is_not_an_upgrade():
    parser = RequestParser()
    head = parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n")[0]
    assert head.upgrade is None and not parser.upgraded


# -- refusals: nothing of the bad request comes out --------------------------------------

def rejected(raw: bytes, status: int, how: str | int = "whole",
             limits: RequestLimits | None = None, head_may_pass: bool = False) -> None:
    parser = RequestParser(limits)
    seen = []
    with pytest.raises(RemoteProtocolError) as info:
        for piece in pieces(raw, how):
            seen += parser.feed(piece)
    assert info.value.status == status, (how, str(info.value))
    if not head_may_pass:
        assert not any(isinstance(e, RequestHead) for e in seen), how
    # A dead parser keeps refusing.
    with pytest.raises(RemoteProtocolError):
        parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")


def req(*lines: bytes, body: bytes = b"") -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


BAD_400 = {
    "cl-and-te": req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 3",
                     b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
    "te-and-cl": req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: chunked",
                     b"Content-Length: 3", body=b"0\r\n\r\n"),
    "cl-differing": req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 3",
                        b"Content-Length: 4", body=b"abcd"),
    # llhttp refuses every repeated Content-Length, identical ones too; so do we.
    "cl-identical": req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 3",
                        b"Content-Length: 3", body=b"abc"),
    "cl-list": req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 3, 3", body=b"abc"),
    "cl-sign": req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: +3", body=b"abc"),
    "cl-negative": req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: -1"),
    "cl-alpha": req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 3a", body=b"abc"),
    "cl-empty": req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: "),
    "cl-overflow": req(b"POST / HTTP/1.1", b"Host: h",
                       b"Content-Length: 99999999999999999999999999"),
    "chunk-size-bad": req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: chunked",
                          body=b"zz\r\nhello\r\n0\r\n\r\n"),
    "chunk-size-overflow": req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: chunked",
                               body=b"fffffffffffffffffff\r\n"),
    "chunk-missing-crlf": req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: chunked",
                              body=b"3\r\nabcX\r\n0\r\n\r\n"),
    "chunk-bare-lf": req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: chunked",
                         body=b"3\nabc\n0\n\n"),
    "obs-fold": req(b"GET / HTTP/1.1", b"Host: h", b"X-A: a", b" b"),
    "bare-cr-in-value": req(b"GET / HTTP/1.1", b"Host: h", b"X-A: a\rb"),
    "bare-cr-line-end": b"GET / HTTP/1.1\r\nHost: h\rX-A: b\r\n\r\n",
    "bare-lf-line-end": b"GET / HTTP/1.1\nHost: h\n\n",
    "nul-in-value": req(b"GET / HTTP/1.1", b"Host: h", b"X-A: a\x00b"),
    "ctl-in-value": req(b"GET / HTTP/1.1", b"Host: h", b"X-A: a\x01b"),
    "del-in-value": req(b"GET / HTTP/1.1", b"Host: h", b"X-A: a\x7fb"),
    "lf-in-value": req(b"GET / HTTP/1.1", b"Host: h", b"X-A: a\nb"),
    "space-before-colon": req(b"GET / HTTP/1.1", b"Host: h", b"X-A : b"),
    "tab-before-colon": req(b"GET / HTTP/1.1", b"Host: h", b"X-A\t: b"),
    "empty-name": req(b"GET / HTTP/1.1", b"Host: h", b": b"),
    "bad-name-char": req(b"GET / HTTP/1.1", b"Host: h", b"X(A): b"),
    "te-gzip": req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: gzip", body=b"abc"),
    "te-gzip-chunked": req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: gzip, chunked",
                           body=b"0\r\n\r\n"),
    "te-chunked-gzip": req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: chunked, gzip",
                           body=b"0\r\n\r\n"),
    "te-identity": req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: identity"),
    "te-twice": req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: chunked",
                    b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
    "te-split-over-fields": req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: gzip",
                                b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
    "te-http10": req(b"POST / HTTP/1.0", b"Host: h", b"Transfer-Encoding: chunked",
                     body=b"0\r\n\r\n"),
    "no-host-11": req(b"GET / HTTP/1.1", b"X-A: b"),
    "two-hosts-11": req(b"GET / HTTP/1.1", b"Host: a", b"Host: b"),
    "two-hosts-10": req(b"GET / HTTP/1.0", b"Host: a", b"host: a"),
    "http09": b"GET /\r\n\r\n",
    "http09-explicit": b"GET / HTTP/0.9\r\n\r\n",
    "version-garbage": b"GET / HTTP/x.1\r\nHost: h\r\n\r\n",
    "version-long": b"GET / HTTP/10.1\r\nHost: h\r\n\r\n",
    "not-http": b"GET / FOO/1.1\r\nHost: h\r\n\r\n",
    "space-after-version": b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
    "bad-method": b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
    "ctl-in-target": b"GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n",
    "upgrade-with-body": req(b"POST / HTTP/1.1", b"Host: h", b"Connection: upgrade",
                             b"Upgrade: h2c", b"Content-Length: 3", body=b"abc"),
    "connect-with-chunked-body": req(b"CONNECT h:443 HTTP/1.1", b"Host: h:443",
                                     b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
}


# Body-level faults: fed in pieces, the (valid) head has already gone out before them.
BODY_LEVEL = {"chunk-size-bad", "chunk-size-overflow", "chunk-missing-crlf", "chunk-bare-lf"}


@pytest.mark.parametrize("name", sorted(BAD_400))
@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_malformed_request_is_400(name, how):
    rejected(BAD_400[name], 400, how, head_may_pass=how != "whole" and name in BODY_LEVEL)


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    b"GET / HTTP/3.0\r\nHost: h\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: h\r\n\r\n",
], ids=["2.0", "3.0", "9.9"])
def test_unsupported_major_version_is_505(raw):
    rejected(raw, 505)
    rejected(raw, 505, "bytes")


def test_malformed_request_after_a_good_one_refuses_the_batch():
    # The smuggling-shaped second request must not be emitted; the whole feed is refused.
    parser = RequestParser()
    with pytest.raises(RemoteProtocolError):
        parser.feed(SIMPLE + BAD_400["te-gzip-chunked"])


def test_bad_chunk_after_head_was_emitted_raises_on_the_body():
    parser = RequestParser()
    head, = parser.feed(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert head.body_kind == BodyKind.CHUNKED
    assert parser.feed(b"3\r\nab") == [Data(b"ab")]
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(b"cX\r\n")
    assert info.value.status == 400


# -- limits ------------------------------------------------------------------------------

SMALL = RequestLimits(max_line=64, max_field_size=40, max_fields=4, max_body=10)


@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_request_line_limit_is_414(how):
    ok = b"GET /" + b"a" * (64 - 14) + b" HTTP/1.1\r\nHost: h\r\n\r\n"  # line of exactly 64
    assert len(ok.split(b"\r\n")[0]) == 64
    assert isinstance(parse(ok, how, SMALL)[0], RequestHead)
    rejected(b"GET /" + b"a" * (64 - 13) + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414, how, SMALL)


def test_endless_request_target_is_414_before_the_line_ends():
    parser = RequestParser(SMALL)
    parser.feed(b"GET /" + b"a" * 30)
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(b"a" * 40)
    assert info.value.status == 414


@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_field_size_limit_is_431(how):
    field = b"X-Field: " + b"v" * (40 - 9)  # "name: value" of exactly 40
    assert isinstance(parse(req(b"GET / HTTP/1.1", b"Host: h", field), how, SMALL)[0],
                      RequestHead)
    rejected(req(b"GET / HTTP/1.1", b"Host: h", field + b"v"), 431, how, SMALL)


@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_field_count_limit_is_431(how):
    fields = [b"X-%d: v" % i for i in range(3)]
    assert isinstance(parse(req(b"GET / HTTP/1.1", b"Host: h", *fields), how, SMALL)[0],
                      RequestHead)
    rejected(req(b"GET / HTTP/1.1", b"Host: h", *fields, b"X-9: v"), 431, how, SMALL)


def test_endless_header_value_is_431_without_waiting_for_its_end():
    parser = RequestParser(SMALL)
    parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\nX-Endless: ")
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(1000):  # bounded: the head limit is a few hundred bytes
            parser.feed(b"v" * 16)
    assert info.value.status == 431


def test_trailer_limits_apply():
    raw = req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: chunked")
    too_many = b"0\r\n" + b"".join(b"T-%d: v\r\n" % i for i in range(5)) + b"\r\n"
    rejected(raw + too_many, 431, "whole", SMALL)
    too_long = b"0\r\nT: " + b"v" * 40 + b"\r\n\r\n"
    rejected(raw + too_long, 431, "whole", SMALL)


def test_declared_body_over_limit_is_413_before_any_body():
    rejected(req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 11"), 413, "whole", SMALL)
    assert parse(req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 10",
                     body=b"0123456789"), "whole", SMALL)[1] == Data(b"0123456789")


@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_chunked_body_over_limit_is_413_while_it_accumulates(how):
    head = req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: chunked")
    ok = head + b"5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n"
    assert parse(ok, how, SMALL)[1] == Data(b"0123456789")
    parser = RequestParser(SMALL)
    with pytest.raises(RemoteProtocolError) as info:
        for piece in pieces(head + b"5\r\n01234\r\n6\r\n56789a\r\n0\r\n\r\n", how):
            parser.feed(piece)
    assert info.value.status == 413


def test_max_body_zero_is_unlimited():
    limits = RequestLimits(max_body=0)
    body = b"x" * 5000
    events = parse(req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 5000", body=body),
                   "whole", limits)
    assert events[1] == Data(body)


# -- what an error leaves behind --------------------------------------------------------

def test_requests_ended_before_an_error_are_kept():
    parser = RequestParser()
    bad = b"GET /b HTTP/1.1\r\nHost: h\r\nX-Space : v\r\n\r\n"
    with pytest.raises(RemoteProtocolError):
        parser.feed(SIMPLE + LENGTH + bad)
    assert parser.take_completed() == SIMPLE_EVENTS + LENGTH_EVENTS
    assert parser.take_completed() == []   # handed out once


def test_nothing_of_the_message_with_the_error_is_kept():
    parser = RequestParser()
    with pytest.raises(RemoteProtocolError):
        parser.feed(SIMPLE + b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                    b"\r\n\r\n5\r\nhello\r\nzz\r\n")
    assert parser.take_completed() == SIMPLE_EVENTS


def test_a_bad_chunk_in_a_later_read_keeps_nothing():
    parser = RequestParser()
    parser.feed(b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n")
    with pytest.raises(RemoteProtocolError) as caught:
        parser.feed(b"zz\r\n")
    assert caught.value.status == 400
    assert parser.take_completed() == []
