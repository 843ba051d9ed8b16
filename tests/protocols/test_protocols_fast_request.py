"""The compiled fast path for request heads must give exactly what llhttp's path gives:
the same events (Host included), the same errors, whatever the chunks the bytes come in."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import portico.protocols.http1 as http1
from portico.errors import RemoteProtocolError
from portico.protocols.events import EndOfMessage, RequestHead
from portico.protocols.http1 import RequestLimits, RequestParser

if http1._fast_request is None:
    if os.environ.get("CI") and not os.environ.get("PORTICO_PURE_PYTHON"):
        pytest.fail("portico.protocols._speedups was not built (needs a C compiler and the "
                    "Python headers: apt-get install python3-dev)", pytrace=False)
    pytest.skip("the compiled fast path is not built or is turned off",
                allow_module_level=True)

COMPILED = http1._fast_request


def run(chunks: list[bytes], limits: RequestLimits | None = None) -> list:
    """Every event of feeding ``chunks`` in turn, then the error that ended it, if any.
    A head is shown with its Host, which RequestHead equality leaves out."""
    parser = RequestParser(limits)
    out: list = []
    for chunk in chunks:
        try:
            events = parser.feed(chunk)
        except RemoteProtocolError as exc:
            out += [_shown(e) for e in parser.take_completed()]
            out.append(("error", exc.status, str(exc)))
            return out
        out += [_shown(e) for e in events]
    out.append(("closed", parser._closed, "upgraded", parser.upgraded, parser.take_unparsed()))
    return out


def _shown(event):
    if type(event) is RequestHead:
        return (event, event.host)
    return event


def both(chunks: list[bytes], limits: RequestLimits | None = None, *, monkeypatch):
    fast = run(chunks, limits)
    monkeypatch.setattr(http1, "_fast_request", None)
    try:
        slow = run(chunks, limits)
    finally:
        monkeypatch.setattr(http1, "_fast_request", COMPILED)
    return fast, slow


def test_the_common_request_is_taken_by_the_compiled_path(monkeypatch):
    calls = []

    def counting(*args):
        result = COMPILED(*args)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(http1, "_fast_request", counting)
    parser = RequestParser()
    data = b"GET /a?b=c HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\n\r\n"
    events = parser.feed(data * 3)
    assert calls == [True, True, True]
    assert [type(e) for e in events] == [RequestHead, EndOfMessage] * 3
    head = events[0]
    assert (head.method, head.target, head.version, head.host, head.keep_alive) == (
        b"GET", b"/a?b=c", b"1.1", b"example.org", True)
    assert head.headers == [(b"Host", b"example.org"), (b"Accept", b"*/*")]
    # a request with a body goes to llhttp with what follows it in the same read; the
    # next read starts on the fast path again
    calls.clear()
    post = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    events = parser.feed(post + data)
    assert calls == [False]
    assert [type(e).__name__ for e in events] == [
        "RequestHead", "Data", "EndOfMessage", "RequestHead", "EndOfMessage"]
    events = parser.feed(data)
    assert calls == [False, True] and len(events) == 2


def test_a_message_llhttp_has_begun_is_finished_by_llhttp(monkeypatch):
    """"G" then "GET / ..." is "GGET / ...", a bad method: the fast path must not take the
    second piece for a request of its own."""
    fast, slow = both([b"G", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"], monkeypatch=monkeypatch)
    assert fast == slow
    assert fast[-1][:2] == ("error", 400)
    fast, slow = both([b"GE", b"T / HTTP/1.1\r\nHost: h\r\n\r\n",
                       b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"], monkeypatch=monkeypatch)
    assert fast == slow and len(fast) == 5


METHOD = st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH",
                          b"TRACE", b"CONNECT", b"get", b"FOO", b"GETX"])
TARGET = st.sampled_from([b"/", b"/a/b?c=d&e", b"/%2F#frag", b"*", b"http://h/x", b"/a b",
                          b"/\x80", b"/~!$&'()*+,;=:@", b"", b"/" + b"x" * 60])
VERSION = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2", b"http/1.1"])
NAME = st.sampled_from([b"Host", b"host", b"HOST", b"Accept", b"X-A", b"Connection",
                        b"connection", b"Proxy-Connection", b"Content-Length",
                        b"Transfer-Encoding", b"Expect", b"Upgrade", b"X y", b"", b"X@",
                        b"Keep-Alive", b"User-Agent", b"x" * 40])
VALUE = st.sampled_from([b"h", b"example.org:8080", b"close", b"Close", b"keep-alive",
                         b"Keep-Alive", b"upgrade", b"close, te", b"3", b"chunked",
                         b"100-continue", b"websocket", b"", b" a \t", b"\x80\xff", b"a\x00b",
                         b"a\rb", b"a\nb", b"y" * 60])
SEPARATOR = st.sampled_from([b": ", b":", b" : ", b":\t", b":  "])
LINE_END = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"])


@st.composite
def requests(draw):
    line = draw(METHOD) + b" " + draw(TARGET) + b" " + draw(VERSION)
    fields = draw(st.lists(st.tuples(NAME, SEPARATOR, VALUE, LINE_END), max_size=6))
    head = line + draw(LINE_END) + b"".join(n + s + v + e for n, s, v, e in fields)
    body = b""
    if any(n.lower() == b"content-length" for n, _, _, _ in fields):
        body = b"abc"
    return head + draw(LINE_END) + body


@st.composite
def common_requests(draw):
    """Mostly what the fast path takes, with one thing at a time that it must not."""
    method = draw(st.sampled_from([b"GET", b"HEAD", b"DELETE", b"OPTIONS", b"POST"]))
    target = draw(st.sampled_from([b"/", b"/a/b?c=d", b"/x%20y", b"/" + b"z" * 30]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]))
    fields = [(b"Host", b": ", draw(st.sampled_from([b"h", b"example.org:8080", b""])))]
    fields += draw(st.lists(st.tuples(
        st.sampled_from([b"Accept", b"User-Agent", b"X-Y", b"Connection", b"Cookie"]),
        st.sampled_from([b": ", b": ", b":", b":  "]),
        st.sampled_from([b"*/*", b"close", b"keep-alive", b"a=b; c=d", b" v ", b"x" * 25])),
        max_size=4))
    odd = draw(st.sampled_from([None, None, None, "no-host", "two-hosts", "length", "lf"]))
    if odd == "no-host":
        fields = fields[1:]
    elif odd == "two-hosts":
        fields.append((b"host", b": ", b"other"))
    elif odd == "length":
        fields.append((b"Content-Length", b": ", b"3"))
    fields = draw(st.permutations(fields))
    end = b"\n" if odd == "lf" else b"\r\n"
    head = method + b" " + target + b" " + version + b"\r\n"
    head += b"".join(n + sep + v + end for n, sep, v in fields)
    return head + b"\r\n" + (b"abc" if odd == "length" else b"")


@settings(max_examples=600, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(st.one_of(requests(), common_requests()), min_size=1, max_size=3),
       cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=3),
       tight=st.booleans(), lead=st.sampled_from([b"", b"\r\n"]))
def test_fast_and_llhttp_paths_agree(messages, cuts, tight, lead, monkeypatch):
    data = lead + b"".join(messages)
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    chunks = [c for c in chunks if c] or [data]
    # tight limits put line, field size and field count right at the edges drawn above
    limits = RequestLimits(max_line=40, max_field_size=30, max_fields=3) if tight else None
    fast, slow = both(chunks, limits, monkeypatch=monkeypatch)
    assert fast == slow


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\n\r\n",                                            # no Host
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                     # two
    b"GET / HTTP/1.0\r\n\r\n",                                            # 1.0, none: fine
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nxyz",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: \x80\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n y\r\n\r\n",                          # obs-fold
    b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
])
def test_edge_cases_agree(data, monkeypatch):
    fast, slow = both([data], monkeypatch=monkeypatch)
    assert fast == slow


@pytest.mark.parametrize(("limits", "status"), [
    (RequestLimits(max_line=20), 414),
    (RequestLimits(max_field_size=10), 431),
    (RequestLimits(max_fields=1), 431),
])
def test_limits_are_answered_as_before(limits, status, monkeypatch):
    data = b"GET /abcdefghijklmn HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\n\r\n"
    fast, slow = both([data], limits, monkeypatch=monkeypatch)
    assert fast == slow
    assert fast[-1][:2] == ("error", status)
