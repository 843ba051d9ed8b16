"""The fast path for response heads must give exactly what the careful parser gives."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import portico.protocols.http1 as http1
from portico.errors import RemoteProtocolError
from portico.protocols.events import EndOfMessage
from portico.protocols.http1 import ResponseParser

try:
    from portico.protocols._speedups import response_head as compiled_fast_head
except ImportError:
    compiled_fast_head = None

# Each test runs with each fast path in place: the compiled one and the pure-Python one.


@pytest.fixture(autouse=True, params=["compiled", "python"])
def fast_path(request, monkeypatch):
    if request.param == "compiled":
        if compiled_fast_head is None:
            if os.environ.get("CI"):
                pytest.fail("portico.protocols._speedups was not built (needs a C compiler "
                            "and the Python headers: apt-get install python3-dev)")
            pytest.skip("portico.protocols._speedups is not built here")
        monkeypatch.setattr(http1, "_fast_head", compiled_fast_head)
    else:
        monkeypatch.setattr(http1, "_fast_head", http1._python_fast_head)
    return request.param


TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~",
                min_size=1, max_size=20)
VALUE = st.text("abcdefghijklmnopqrstuvwxyz0123456789 ,;=/\"()\t", max_size=40).map(
    lambda v: v.strip(" \t"))


def parse(data: bytes, method: bytes = b"GET"):
    parser = ResponseParser()
    parser.start(method)
    try:
        return parser.feed(data)
    except RemoteProtocolError as exc:
        return ("error", exc.status)


def both(data: bytes, method: bytes = b"GET"):
    fast = parse(data, method)
    saved = http1._fast_head
    http1._fast_head = lambda *_: None  # the careful path alone
    try:
        slow = parse(data, method)
    finally:
        http1._fast_head = saved
    return fast, slow


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    status=st.sampled_from([200, 201, 204, 301, 304, 404, 500, 503]),
    version=st.sampled_from([b"1.0", b"1.1"]),
    fields=st.lists(st.tuples(TOKEN, VALUE), max_size=12),
    framing=st.sampled_from(["length", "chunked", "close", "length-dup", "te-cl"]),
    connection=st.sampled_from([None, "close", "keep-alive", "Keep-Alive, foo"]),
    method=st.sampled_from([b"GET", b"HEAD"]),
)
def test_fast_and_careful_paths_agree(status, version, fields, framing, connection, method):
    lines = [b"HTTP/" + version + b" %d Whatever Reason" % status]
    lines += [f"{n}: {v}".encode() for n, v in fields
              if n.lower() not in ("content-length", "transfer-encoding", "connection")]
    body = b""
    if framing == "length":
        lines.append(b"Content-Length: 5")
        body = b"hello"
    elif framing == "length-dup":
        lines += [b"Content-Length: 5", b"content-length: 5"]
        body = b"hello"
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        body = b"5\r\nhello\r\n0\r\n\r\n"
    elif framing == "te-cl":
        lines += [b"Transfer-Encoding: chunked", b"Content-Length: 99"]
        body = b"5\r\nhello\r\n0\r\n\r\n"
    if connection:
        lines.append(b"Connection: " + connection.encode())
    data = b"\r\n".join(lines) + b"\r\n\r\n" + body
    fast, slow = both(data, method)
    assert fast == slow


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 200 OK\r\nX: a  \r\nContent-Length: 0\r\n\r\n",          # trailing OWS
    b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",                       # empty reason
    b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",       # obs-fold
    b"HTTP/1.1 200 OK\nX: a\nContent-Length: 0\n\n",                     # bare LF
    b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n",   # ProxyBadHeader
    b"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx",                 # CL list
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
    b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\x01b\r\nContent-Length: 0\r\n\r\n",
    # as many ": " as lines, but two in one line and none in the next
    b"HTTP/1.1 200 OK\r\nA: b: c\r\nDd\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nDd\r\nA: b: c\r\nContent-Length: 0\r\n\r\n",
])
def test_edge_cases_agree(data):
    fast, slow = both(data)
    assert fast == slow


SEPARATOR = st.sampled_from([": ", ":", ":  ", ": \t", "\t: ", " : ", " ", ""])
ODD_VALUE = st.text("ab: \t,;=\x80", max_size=12)
ODD_NAME = st.sampled_from(["X", "Content-Length", "content-length", "X-Content-Length",
                            "Connection", "CONNECTION", "Transfer-Encoding", "Host", ""])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    status=st.sampled_from([b"200", b"204", b"099", b"199", b"999", b"2000", b"20"]),
    reason=st.sampled_from([b" OK", b"", b" ", b"\tOK", b" a: b"]),
    fields=st.lists(st.tuples(ODD_NAME, SEPARATOR, ODD_VALUE), max_size=6),
)
def test_odd_separators_and_values_agree(status, reason, fields):
    """Colons and blanks where the split on ": " could go wrong, and odd status lines."""
    lines = [b"HTTP/1.1 " + status + reason]
    lines += [(n + sep + v).encode("latin-1") for n, sep, v in fields]
    data = b"\r\n".join(lines) + b"\r\n\r\n0123456789"
    fast, slow = both(data)
    assert fast == slow


def test_a_read_that_is_all_body_is_passed_through_uncopied():
    parser = ResponseParser()
    parser.start(b"GET")
    head = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 65536\r\n\r\n")[0]
    assert head.content_length == 65536
    for _ in range(4):
        chunk = b"y" * 16384
        events = parser.feed(chunk)
        assert events[0].data is chunk
    assert events[1:] == [EndOfMessage()] and parser.idle


def test_head_shapes_are_remembered_within_a_bound(fast_path):
    """The per-name-sequence table (of the Python path) stays bounded, and a remembered
    shape still gives each response its own framing values."""
    for n in range(http1._MAX_HEAD_SHAPES + 50):
        events = parse(b"HTTP/1.1 200 OK\r\nX-N%d: v\r\nContent-Length: %d\r\n\r\n%s"
                       % (n, n % 7, b"x" * (n % 7)))
        assert events[0].content_length == n % 7
        if fast_path == "python":
            assert 0 < len(http1._HEAD_SHAPES) <= http1._MAX_HEAD_SHAPES
    # the same names again, other values: the shape is reused, the values are this response's
    again = parse(b"HTTP/1.1 200 OK\r\nX-N3: w\r\nContent-Length: 2\r\n\r\nab")
    assert again[0].headers == [(b"X-N3", b"w"), (b"Content-Length", b"2")]
    assert again[1].data == b"ab"


def test_an_empty_field_name_is_refused_after_a_head_without_fields():
    """No fields and one field with an empty name join to the same (empty) key."""
    assert parse(b"HTTP/1.1 200 OK\r\n\r\n")[0].status == 200
    assert parse(b"HTTP/1.1 200 OK\r\n: \r\n\r\n") == ("error", 502)


def test_a_value_with_a_colon_keeps_it_beside_a_line_without_one():
    """The fast path once split "A: b: c" + "Dd" into "A: b" and "c: Dd"; the careful parser
    refuses the line without a colon (ProxyBadHeader IsError)."""
    data = b"HTTP/1.1 200 OK\r\nA: b: c\r\nDd\r\nContent-Length: 0\r\n\r\n"
    assert parse(data) == ("error", 502)
    ok = parse(b"HTTP/1.1 200 OK\r\nA: b: c\r\nContent-Length: 0\r\n\r\n")
    assert ok[0].headers == [(b"A", b"b: c"), (b"Content-Length", b"0")]


HEAD_BYTES = st.lists(st.sampled_from(
    [b"\r\n", b"\r", b"\n", b":", b": ", b" ", b"\t", b"\x00", b"\x7f", b"\x80", b"a", b"Z",
     b"-", b"_", b"Content-Length", b"connection", b"TRANSFER-ENCODING", b"chunked", b"0",
     b"5", b"close", b"(", b"@"]), max_size=30).map(b"".join)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.0 304", b"HTTP/1.1 299 ",
                              b"HTTP/1.1 200\tOK", b"HTTP/1.1 1000 OK"]),
       middle=HEAD_BYTES, before=st.binary(max_size=3))
def test_any_bytes_in_a_head_agree(start, middle, before):
    """Arbitrary field bytes, and a head that does not start at the buffer's start."""
    data = start + b"\r\n" + middle + b"\r\n\r\nhello"
    fast, slow = both(data)
    assert fast == slow
    # where the head starts inside a larger buffer (bytes left from the last response)
    end = data.index(b"\r\n\r\n") + 4
    assert (http1._fast_head(before + data, len(before), len(before) + end, 100)
            == http1._fast_head(data, 0, end, 100))


def test_bounds_and_bytes_like_objects(fast_path):
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    expected = http1._fast_head(head, 0, len(head), 100)
    assert expected is not None and expected[4] == [(0, b"2")]
    if fast_path == "compiled":   # the Python path is only ever given bytes
        for kind in (bytearray, memoryview):
            assert http1._fast_head(kind(head), 0, len(head), 100) == expected
    # an end past the buffer or a head too short is refused, never read
    assert http1._fast_head(head, 0, len(head) + 10, 100) is None
    assert http1._fast_head(head, len(head) - 4, len(head), 100) is None
