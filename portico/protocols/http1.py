"""HTTP/1.1 codecs: the front side's request parser and the backend side's response parser.

Both are sans-I/O (DESIGN rule 1): ``feed(bytes) -> list[Event]``, where ``[]`` means "need
more data". Both raise ``portico.errors.RemoteProtocolError`` with the status the violation
earns (4xx/505 for a client, 502 for a backend); after an error a parser is dead and raises
the same error again.

Request side
------------
``RequestParser`` drives httptools (llhttp), which already rejects most smuggling shapes:
CL together with TE, duplicate Content-Length (even identical: llhttp refuses every duplicate,
so we answer 400 too), obs-fold, bare CR, NUL and other CTLs in values, whitespace before the
colon, bad Content-Length, bad chunk sizes and a missing CRLF after chunk data. On top of it,
``on_headers_complete`` refuses what llhttp lets through: a Transfer-Encoding other than
exactly ``chunked`` (``gzip, chunked`` included), Transfer-Encoding in HTTP/1.0, a missing or
repeated Host in HTTP/1.1 (repeated in 1.0), HTTP/0.9 and versions other than 1.0/1.1, and an
upgrade or CONNECT request that carries a body (llhttp would hand the body to the tunnel).
Nothing of a refused request is emitted: the head event is built only after every check.
Requests that ended before the error in the same ``feed`` are not lost with it:
``take_completed`` hands out their events, so the caller can serve them before answering
the error.

Limits (DESIGN rule 7): the request line (method, target, version) beyond ``max_line`` is 414;
a field line (``name: value``) beyond ``max_field_size`` or more than ``max_fields`` fields is
431; a declared or accumulated body beyond ``max_body`` is 413. httptools buffers a field
internally until it is complete, so an unfinished head is bounded as a whole: once it
reaches the largest head the limits allow, 431. That total is counted per ``feed`` from the
read holding the start of the request-target (the method before it is at most a few bytes);
when a pipelined request starts inside a chunk the whole chunk is counted, an over-estimate
of at most one read.

Response side
-------------
``ResponseParser`` is pure Python. The head is found with ``bytes.find`` (CRLF or bare LF line
ends), checked for control characters in one ``translate``, then split into lines; bodies
are sliced, never scanned. Framing follows RFC 9112 §6.3; its message states are the table
``_RESPONSE_TRANSITIONS``. Chunked bodies go through ``ChunkedDecoder`` (chunked.py).
"""

from __future__ import annotations

__all__ = [
    "LAST_CHUNK",
    "RequestLimits",
    "RequestParser",
    "ResponseParser",
    "chunk_frames",
    "encode_trailers",
    "head_parsers",
]

import operator
import os
from collections.abc import Callable
from typing import NoReturn

import httptools

from portico.errors import LocalProtocolError, RemoteProtocolError
from portico.protocols.chunked import (
    LAST_CHUNK,
    TOKEN_CHARS,
    ChunkedDecoder,
    chunk_frames,
    encode_trailers,
)
from portico.protocols.events import (
    BodyKind,
    Data,
    EndOfMessage,
    Event,
    Headers,
    InformationalHead,
    RequestHead,
    ResponseHead,
)

_NONE = BodyKind.NONE
_LENGTH = BodyKind.LENGTH
_CHUNKED = BodyKind.CHUNKED
_UNTIL_CLOSE = BodyKind.UNTIL_CLOSE


class RequestLimits:
    """Bounds the front side enforces on a request (httpd's LimitRequest* directives).

    ``max_body`` 0 means unlimited; the other limits are always in force.
    """

    __slots__ = ("max_body", "max_field_size", "max_fields", "max_line")

    def __init__(
        self, max_line: int = 8190, max_field_size: int = 8190, max_fields: int = 100,
        max_body: int = 1 << 30,
    ) -> None:
        self.max_line = max_line
        self.max_field_size = max_field_size
        self.max_fields = max_fields
        self.max_body = max_body


# --------------------------------------------------------------------------- request side

_REQUEST_VERSIONS = {"1.1": b"1.1", "1.0": b"1.0"}

# Fields the request checks need, by lowercase name; the length test in on_header skips
# lowercasing every other name.
_HOST, _CONTENT_LENGTH, _TRANSFER_ENCODING, _EXPECT, _UPGRADE = range(5)
_REQUEST_SPECIAL = {
    b"host": _HOST,
    b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"expect": _EXPECT,
    b"upgrade": _UPGRADE,
}
_REQUEST_SPECIAL_LENGTHS = frozenset(len(name) for name in _REQUEST_SPECIAL)
# Longer than any method llhttp knows: below this margin the request line cannot be too long
# whatever the method, so on_url asks llhttp for the method only near the limit.
_METHOD_MARGIN = 32


class RequestParser:
    """Parses the requests of one client connection into events.

    ``feed`` returns every event found, in order, so pipelined requests all come out of one
    call. After a request that does not keep the connection alive, further bytes are ignored;
    after an upgrade or CONNECT request, parsing stops (``upgraded``) and the bytes behind the
    head are available from ``take_unparsed``. The ``on_*`` methods are httptools callbacks,
    called from inside ``feed``; they are not for other callers.
    """

    __slots__ = (
        "_body_bytes", "_chunked", "_closed", "_content_length", "_error", "_events",
        "_expect", "_fresh", "_head_bytes", "_headers", "_host", "_host_count", "_in_head",
        "_keep_alive", "_max_body", "_max_field_size", "_max_fields", "_max_head", "_max_line",
        "_parser", "_long_fields", "_rare", "_started", "_target", "_te_count", "_trailers",
        "_transfer_encoding", "_unparsed", "_upgrade", "_upgraded", "_completed",
    )

    def __init__(self, limits: RequestLimits | None = None) -> None:
        limits = limits if limits is not None else RequestLimits()
        self._max_line = limits.max_line
        self._max_field_size = limits.max_field_size
        self._max_fields = limits.max_fields
        self._max_body = limits.max_body
        # The largest head the other limits allow: line, fields and their CRLFs.
        self._max_head = (limits.max_line + 2) + limits.max_fields * (
            limits.max_field_size + 2) + 2
        self._events: list[Event] = []
        self._completed: list[Event] = []
        self._error: RemoteProtocolError | None = None
        self._closed = False
        self._upgraded = False
        self._unparsed = b""
        self._in_head = False
        self._fresh = True   # llhttp stands between messages, having read nothing of the next
        self._started = False
        self._head_bytes = 0
        self._long_fields = True
        self._target = b""
        self._headers: Headers = []
        self._host_count = 0
        self._host: bytes | None = None
        self._chunked = False
        self._keep_alive = True
        self._body_bytes = 0
        self._reset_rare()
        self._parser = httptools.HttpRequestParser(self)

    def _reset_rare(self) -> None:
        """Forget what only some requests carry; ``_rare`` says whether any of it is set."""
        self._rare = False
        self._trailers: Headers | None = None
        self._content_length: bytes | None = None
        self._transfer_encoding: bytes | None = None
        self._te_count = 0
        self._expect: bytes | None = None
        self._upgrade: bytes | None = None

    # -- public API

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completes, ``[]`` when more is needed.

        Raises ``RemoteProtocolError`` (400, 413, 414, 431, 505) for a bad request; events of
        the same call are then dropped, so a refused request never yields a head.
        """
        if self._closed or self._upgraded:
            return []
        if self._error is not None:
            raise self._error
        events: list[Event] = []
        if self._fresh and _fast_request is not None:
            # Whole common requests are taken without llhttp while it stands between
            # messages (protocols/_speedups.c says which); it gets the rest.
            pos = 0
            while True:
                fast = _fast_request(data, pos, self._max_line, self._max_field_size,
                                     self._max_fields)
                if fast is None:
                    break
                pos, method, target, version, headers, host, keep_alive = fast
                head = RequestHead(method, target, version, headers, keep_alive)
                head.host = host
                events += (head, EndOfMessage())
                if not keep_alive:
                    self._closed = True   # what follows is ignored, as after llhttp's close
                    return events
                if pos == len(data):
                    return events
            if pos:
                data = data[pos:]
        self._events = events
        self._started = False
        # A field completed in this feed spans at most the head bytes seen so far plus this
        # feed: when that is within the field limit, on_header need not measure each field.
        self._long_fields = (len(data) + (self._head_bytes if self._in_head else 0)
                             > self._max_field_size)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded = True
            self._unparsed = data[exc.args[0]:]
            return events
        except httptools.HttpParserCallbackError:
            if self._error is None:
                raise  # our own bug inside a callback, not the client's
            self._keep_completed(events)
            raise self._error from None
        except httptools.HttpParserError as exc:
            if self._closed:
                return events  # bytes after a request that closes the connection: ignored
            message = str(exc)
            status = 505 if "HTTP version" in message else 400
            self._error = RemoteProtocolError(f"bad request: {message}", status)
            self._keep_completed(events)
            raise self._error from None
        if self._in_head:
            if self._started:
                self._head_bytes = len(data)
            else:
                self._head_bytes += len(data)
            if self._head_bytes > self._max_head:
                self._keep_completed(events)
                self._fail("request header section too large", 431)
        return events

    def _keep_completed(self, events: list[Event]) -> None:
        """Keep the events of the messages that ended before an error (see take_completed)."""
        for i in range(len(events) - 1, -1, -1):
            if type(events[i]) is EndOfMessage:
                self._completed = events[:i + 1]
                return

    def take_completed(self) -> list[Event]:
        """After ``feed`` raised: the events of the requests that ended in the same call
        before the error (the message in which it happened gives nothing). Once."""
        completed, self._completed = self._completed, []
        return completed

    @property
    def upgraded(self) -> bool:
        """An upgrade or CONNECT request was completed; nothing more is parsed."""
        return self._upgraded

    def take_unparsed(self) -> bytes:
        """The bytes that followed an upgrade/CONNECT request head (the tunnel's first bytes).

        Returns them once; later calls return ``b""``.
        """
        unparsed, self._unparsed = self._unparsed, b""
        return unparsed

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        # llhttp holds part of a message from here on: the compiled fast path, which parses
        # only from a message's first byte, must wait until the message is complete.
        self._fresh = False

    def on_url(self, piece: bytes) -> None:
        if self._target:
            target = self._target + piece
        else:
            target = piece
            self._in_head = True
            self._started = True
        # method SP target SP HTTP/x.y
        if len(target) + _METHOD_MARGIN > self._max_line and (
                len(target) + len(self._parser.get_method()) + 10 > self._max_line):
            self._fail("request line too long", 414)
        self._target = target

    def on_header(self, name: bytes, value: bytes) -> None:
        value = value.rstrip(b" \t")  # llhttp strips only the leading OWS
        if not self._in_head:
            self._on_trailer(name, value)
            return
        if self._long_fields and len(name) + len(value) + 2 > self._max_field_size:
            self._fail("request header field too long", 431)
        # The field count is checked once, in on_headers_complete (the head's size is
        # bounded per feed meanwhile).
        self._headers.append((name, value))
        if len(name) in _REQUEST_SPECIAL_LENGTHS:
            kind = _REQUEST_SPECIAL.get(name.lower())
            if kind == _HOST:
                self._host_count += 1
                self._host = value
            elif kind is not None:
                self._rare = True
                if kind == _CONTENT_LENGTH:
                    self._content_length = value  # llhttp refuses a second one
                elif kind == _TRANSFER_ENCODING:
                    self._te_count += 1
                    self._transfer_encoding = value
                elif kind == _EXPECT:
                    self._expect = value
                else:
                    self._upgrade = value

    def _on_trailer(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) + 2 > self._max_field_size:
            self._fail("request header field too long", 431)
        trailers = self._trailers
        if trailers is None:
            self._trailers = trailers = []
            self._rare = True
        if len(trailers) >= self._max_fields:
            self._fail("too many trailer fields", 431)
        trailers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if len(self._headers) > self._max_fields:
            self._fail("too many request header fields", 431)
        parser = self._parser
        raw_version = parser.get_http_version()
        version = _REQUEST_VERSIONS.get(raw_version)
        if version is None:
            major = raw_version.partition(".")[0]
            status = 505 if major.isdigit() and int(major) >= 2 else 400
            self._fail(f"unsupported HTTP version {raw_version}", status)
        if self._host_count != 1 and (self._host_count or version == b"1.1"):
            self._fail("HTTP/1.1 request needs exactly one Host header"
                       if self._host_count == 0 else "several Host headers")
        method = parser.get_method()
        if not self._rare and not parser.should_upgrade():
            # No framing, Expect or Upgrade field: the common bodiless request.
            self._chunked = False
            self._keep_alive = keep_alive = parser.should_keep_alive()
            head = RequestHead(method, self._target, version, self._headers, keep_alive)
            head.host = self._host if self._host_count else None
            self._events.append(head)
            return
        content_length: int | None = None
        body_kind = _NONE
        if self._transfer_encoding is not None:
            if version == b"1.0":
                self._fail("Transfer-Encoding in an HTTP/1.0 request")
            if self._te_count != 1 or self._transfer_encoding.lower() != b"chunked":
                self._fail("Transfer-Encoding other than chunked")
            body_kind = _CHUNKED
        elif self._content_length is not None:
            content_length = int(self._content_length)  # llhttp checked it is all digits
            if self._max_body and content_length > self._max_body:
                self._fail("request body larger than the limit", 413)
            if content_length:
                body_kind = _LENGTH
        upgrade = None
        if parser.should_upgrade():
            upgrade = b"CONNECT" if method == b"CONNECT" else self._upgrade
            if body_kind != _NONE:
                self._fail("upgrade or CONNECT request with a body")
        expect = self._expect
        self._chunked = body_kind == _CHUNKED
        self._body_bytes = 0
        self._keep_alive = keep_alive = parser.should_keep_alive()
        head = RequestHead(
            method, self._target, version, self._headers, keep_alive, body_kind,
            content_length,
            expect is not None and version == b"1.1" and expect.lower() == b"100-continue",
            upgrade,
        )
        head.host = self._host if self._host_count else None
        self._events.append(head)

    def on_body(self, body: bytes) -> None:
        if self._chunked and self._max_body:
            self._body_bytes += len(body)
            if self._body_bytes > self._max_body:
                self._fail("request body larger than the limit", 413)
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        self._fresh = True
        self._events.append(EndOfMessage(self._trailers))
        if not self._keep_alive:
            self._closed = True
        # Ready for the next message; _chunked, _keep_alive and _body_bytes are set by
        # on_headers_complete before they are used.
        self._target = b""
        self._headers = []
        self._host_count = 0
        if self._rare:
            self._reset_rare()

    def _fail(self, message: str, status: int = 400) -> NoReturn:
        self._error = RemoteProtocolError(f"bad request: {message}", status)
        raise self._error


# -------------------------------------------------------------------------- response side

# Message states of one backend connection.
_IDLE, _HEAD, _BODY_LENGTH, _BODY_CHUNKED, _BODY_CLOSE, _ENDED, _DONE, _SWITCHED = range(8)
# What can happen to them.
(_START, _INTERIM, _FINAL_EMPTY, _FINAL_LENGTH, _FINAL_CHUNKED, _FINAL_CLOSE, _SWITCH,
 _BODY_END, _KEEP, _CLOSE, _EOF) = range(11)

_RESPONSE_TRANSITIONS: dict[tuple[int, int], int] = {
    (_IDLE, _START): _HEAD,                  # start(): a request was sent
    (_HEAD, _INTERIM): _HEAD,                # 1xx other than 101: the final head follows
    (_HEAD, _FINAL_EMPTY): _ENDED,           # HEAD, 204, 304, Content-Length: 0
    (_HEAD, _FINAL_LENGTH): _BODY_LENGTH,
    (_HEAD, _FINAL_CHUNKED): _BODY_CHUNKED,
    (_HEAD, _FINAL_CLOSE): _BODY_CLOSE,
    (_HEAD, _SWITCH): _SWITCHED,             # 101, or 2xx to CONNECT: a tunnel from here on
    (_BODY_LENGTH, _BODY_END): _ENDED,
    (_BODY_CHUNKED, _BODY_END): _ENDED,
    (_ENDED, _KEEP): _IDLE,                  # reusable for the next request
    (_ENDED, _CLOSE): _DONE,                 # must not be reused
    (_BODY_CLOSE, _EOF): _DONE,              # the close delimits the body
    (_IDLE, _EOF): _DONE,
    (_DONE, _EOF): _DONE,
    (_SWITCHED, _EOF): _SWITCHED,
}
_FRAMING_EVENT = {
    _NONE: _FINAL_EMPTY, _LENGTH: _FINAL_LENGTH, _CHUNKED: _FINAL_CHUNKED,
    _UNTIL_CLOSE: _FINAL_CLOSE,
}
# The transitions the hot path takes from a state it knows, looked up once here so the
# table stays the only place that says where they lead.
_STARTED = _RESPONSE_TRANSITIONS[(_IDLE, _START)]
_AFTER_FRAMING = {kind: _RESPONSE_TRANSITIONS[(_HEAD, event)]
                  for kind, event in _FRAMING_EVENT.items()}
_AFTER_BODY = _RESPONSE_TRANSITIONS[(_BODY_LENGTH, _BODY_END)]
_AFTER_KEEP = _RESPONSE_TRANSITIONS[(_AFTER_BODY, _KEEP)]
_AFTER_CLOSE = _RESPONSE_TRANSITIONS[(_AFTER_BODY, _CLOSE)]

_BAD_HEADER_MODES = ("iserror", "ignore", "startbody")
# Bytes a response head must not hold once CRLFs are folded to LF (HTAB is allowed).
_HEAD_CTLS = bytes(c for c in range(32) if c not in (9, 10)) + b"\x7f"
_HEAD_CONTROLS = bytes(c for c in range(32) if c != 9) + b"\x7f"  # CR and LF included
_RESP_CONTENT_LENGTH, _RESP_TRANSFER_ENCODING, _RESP_CONNECTION = range(3)
_RESPONSE_SPECIAL = {
    b"content-length": _RESP_CONTENT_LENGTH,
    b"transfer-encoding": _RESP_TRANSFER_ENCODING,
    b"connection": _RESP_CONNECTION,
}
_RESPONSE_SPECIAL_LENGTHS = frozenset(len(name) for name in _RESPONSE_SPECIAL)
_RESPONSE_SPECIAL_ITEMS = tuple(_RESPONSE_SPECIAL.items())
_NAME = operator.itemgetter(0)  # of a field tuple or a ``split(b":", 1)`` result
_MAX_LENGTH_DIGITS = 18  # below 2**63: a length anything downstream can hold


# The common response head, checked and split with a fixed number of C-level bytes
# operations whatever the number of fields: an HTTP/1.0 or 1.1 final status line, then
# ``token: value`` lines (exactly one ": " in each) ended by CRLF, no control bytes but those
# CRLFs and HTAB, then the blank line. Because every line holds exactly one ": ", turning the
# CRLFs into ": " and splitting on ": " alternates names and values. Whatever it refuses
# (interim statuses, bare LF, obs-fold, a line without ": " or with two, odd versions) goes to
# the careful line-by-line parser, which decides or words the error; the two are checked
# against each other by tests/protocols/test_protocols_fast_head.
# Every final status line start the fast path takes ("HTTP/1.1 200 " or, without a reason,
# "HTTP/1.1 200"), mapped to (status, version): one dict lookup checks and parses it.
_FAST_STATUS = {
    b"HTTP/%s %d%s" % (version, status, space): (status, version)
    for version in (b"1.0", b"1.1") for status in range(200, 1000) for space in (b" ", b"")
}
_HEAD_END = b"\r\n\r\n"


def _fast_head(
    data: bytes, pos: int, end: int, max_fields: int,
) -> tuple[int, bytes, bytes, Headers, list[tuple[int, bytes]]] | None:
    """The common case of the response head in ``data[pos:end]`` (blank line included).

    Returns (status, reason, version, headers, framing fields as (kind, value)), or None
    when the careful parser must decide.
    """
    if not data.startswith(_HEAD_END, end - 4):
        return None
    head = data[pos:end - 4]
    status_line, _, block = head.partition(b"\r\n")
    status = _FAST_STATUS.get(status_line[:13])
    lines = block.count(b"\r\n") + 1 if block else 0
    # The only control bytes allowed are the CRLFs that end the lines (HTAB is no control).
    if (status is None or lines > max_fields or block.count(b": ") != lines
            or len(head.translate(None, _HEAD_CONTROLS)) != len(head) - 2 * lines
            # One ": " per line, not merely as many as lines: "A: b: c" followed by a line
            # without a colon would otherwise split into "A: b" and "c: <that line>". With
            # no control bytes left, ": " marked as \x01 and the CRLFs reduced to their LF
            # must alternate.
            or (lines and block.replace(b": ", b"\x01").translate(None, _NOT_SEPARATORS)
                != b"\x01\n" * (lines - 1) + b"\x01")):
        return None
    items = block.replace(b"\r\n", b": ").split(b": ") if lines else []
    names = items[::2]
    # A backend sends the same names in the same order response after response: what the
    # names alone decide (all tokens, where the framing fields are) is looked up by them.
    # No name can hold "\n" here (the control count above), and a key with an empty name in
    # it has "\n" at an end or twice in a row, which a remembered (valid) key never has; the
    # one exception, no fields at all against one empty name, is kept out of the table.
    key = b"\n".join(names)
    shape = _HEAD_SHAPES.get(key) if key else None
    if shape is None:
        if b"" in names or key.translate(None, _TOKEN_OR_LF):
            return None  # an empty name or one that is not a token
        shape = tuple(_special_indices(key.lower().split(b"\n"))) if key else ()
        if key:
            if len(_HEAD_SHAPES) >= _MAX_HEAD_SHAPES:
                _HEAD_SHAPES.clear()
            _HEAD_SHAPES[key] = shape
    # bytes.strip() strips exactly SP and HTAB here: no other whitespace byte got this far.
    values = list(map(bytes.strip, items[1::2]))
    framing = [(kind, values[index]) for index, kind in shape]
    headers = list(zip(names, values, strict=True))
    return status[0], status_line[13:], status[1], headers, framing, key


_python_fast_head = _fast_head
_fast_request: Callable[..., tuple | None] | None = None   # no Python twin: llhttp does it
if not os.environ.get("PORTICO_PURE_PYTHON"):
    try:
        # The same contract in C, about six times faster (protocols/_speedups.c).
        from portico.protocols._speedups import request_head as _fast_request
        from portico.protocols._speedups import response_head as _fast_head
    except ImportError:   # not compiled here (setup.py makes it optional)
        pass


def head_parsers() -> str:
    """Which HTTP/1 head parsers this process runs, for ``portico -v`` and the start-up log."""
    if _fast_request is not None and _fast_head is not _python_fast_head:
        return "compiled (portico.protocols._speedups)"
    if os.environ.get("PORTICO_PURE_PYTHON"):
        return "pure Python (PORTICO_PURE_PYTHON is set)"
    return ("pure Python (the optional C accelerator is not built: reinstall with a C "
            "compiler and the Python headers for about 20% more requests per second)")


_NOT_SEPARATORS = bytes(c for c in range(256) if c not in (1, 10))
_HEAD_SHAPES: dict[bytes, tuple[tuple[int, int], ...]] = {}
_MAX_HEAD_SHAPES = 256   # distinct name sequences remembered (backends use few)
_TOKEN_OR_LF = TOKEN_CHARS + b"\n"


def _special_indices(lowered: list[bytes]) -> list[tuple[int, int]]:
    """(index, kind) of every framing field among the lowercased names, in order."""
    special = _RESPONSE_SPECIAL
    return [(index, special[name]) for index, name in enumerate(lowered) if name in special]


def _view(data: bytes, start: int, stop: int) -> bytes:
    """``data[start:stop]``; a large part is a memoryview (no copy; transports and the
    event consumers take any bytes-like object), a small one a bytes copy (cheaper)."""
    if stop - start >= _VIEW_FROM:
        return memoryview(data)[start:stop]  # type: ignore[return-value]
    return data[start:stop]


_VIEW_FROM = 4096


class ResponseParser:
    """Parses the responses of one backend connection into events.

    Call ``start(method)`` before each response, then ``feed`` what the backend sends. A
    response's unused bytes stay buffered for the next one: when ``idle`` is False after
    ``start``, call ``feed(b"")`` to parse what is already buffered. A 101 response, or a 2xx
    response to CONNECT, ends HTTP on this connection; the bytes after its head come from
    ``take_unparsed``.

    ``bad_header`` is ProxyBadHeader (reference §5.2) for a header line without a colon:
    ``iserror`` (502), ``ignore`` (drop the line) or ``startbody`` (the body starts there).
    ``max_field_size`` (responsefieldsize) bounds every head and trailer line, ``max_fields``
    their number. Every error is a ``RemoteProtocolError`` with status 502.
    """

    __slots__ = (
        "_bad_header", "_buf", "_connect", "_decoder", "_error", "_head_lines", "_head_only",
        "_keep_alive", "_line_start", "_max_field_size", "_max_fields", "_pending",
        "_remaining", "_scan", "_state", "_unparsed",
    )

    def __init__(
        self, max_field_size: int = 8192, bad_header: str = "iserror", max_fields: int = 100,
    ) -> None:
        mode = bad_header.lower()
        if mode not in _BAD_HEADER_MODES:
            raise ValueError(f"bad_header must be one of {_BAD_HEADER_MODES}, not {bad_header!r}")
        self._bad_header = mode
        self._max_field_size = max_field_size or 8192  # httpd: 0 means the default
        self._max_fields = max_fields
        # Made with the first chunked response: most backend connections never see one, and
        # a smaller connection keeps more of the others in the CPU's caches.
        self._decoder: ChunkedDecoder | None = None
        self._state = _IDLE
        self._buf = b""  # unparsed bytes: a partial chunk line, or bytes after a response
        self._pending: bytearray | None = None  # an unfinished head being accumulated
        self._scan = 0  # where the search for the end of the head resumes
        self._line_start = 0  # start of the unfinished line in _pending
        self._head_lines = 0  # complete lines in _pending
        self._remaining = 0
        self._keep_alive = False
        self._head_only = False
        self._connect = False
        self._unparsed = b""
        self._error: RemoteProtocolError | None = None

    # -- public API

    def start(self, request_method: bytes, bad_header: str | None = None) -> None:
        """Expect the response to a request with ``request_method``.

        ``bad_header`` changes the ProxyBadHeader mode from this response on (a pooled
        connection serves requests from scopes with different settings).
        Raises ``LocalProtocolError`` unless the previous response is complete and the
        connection may carry another one.
        """
        if self._state != _IDLE:
            raise LocalProtocolError("the previous response is not complete")
        if bad_header is not None and bad_header != self._bad_header:
            if bad_header not in _BAD_HEADER_MODES:
                raise ValueError(f"bad_header must be one of {_BAD_HEADER_MODES}")
            self._bad_header = bad_header
        self._head_only = request_method == b"HEAD"
        self._connect = request_method == b"CONNECT"
        self._state = _STARTED  # from _IDLE, checked above

    @property
    def idle(self) -> bool:
        """Between responses with nothing buffered: safe to send another request."""
        return self._state == _IDLE and not self._buf

    def take_unparsed(self) -> bytes:
        """After a protocol switch: the bytes that followed the head (returned once)."""
        unparsed, self._unparsed = self._unparsed, b""
        return unparsed

    @property
    def length_left(self) -> int:
        """Bytes of a Content-Length body still to come; 0 in any other state."""
        return self._remaining if self._state == _BODY_LENGTH else 0

    def body_moved(self, n: int) -> bool:
        """``n`` bytes of the Content-Length body went from the socket to the client without
        passing through ``feed`` (a splice). True when that completes the response."""
        if self._state != _BODY_LENGTH or not 0 < n <= self._remaining:
            raise LocalProtocolError(f"{n} body bytes moved, {self.length_left} expected")
        self._remaining -= n
        if self._remaining:
            return False
        self._state = _AFTER_KEEP if self._keep_alive else _AFTER_CLOSE  # via _AFTER_BODY
        return True

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completes, ``[]`` when more is needed.

        Raises ``RemoteProtocolError`` (502) for a bad response; events of the same call are
        then dropped, and the parser raises the same error on every later call.
        """
        if self._error is not None:
            raise self._error
        events: list[Event] = []
        if self._pending is not None:
            data = self._accumulate_head(data)
            if not data:
                return events
        elif self._buf:
            data = self._buf + data
            self._buf = b""
        pos = 0
        end = len(data)
        while pos < end:
            state = self._state
            if state == _BODY_LENGTH:
                pos = self._body_length(data, pos, events)
            elif state == _HEAD:
                pos = self._head(data, pos, events)
            elif state == _BODY_CHUNKED:
                pos = self._body_chunked(data, pos, events)
            elif state == _BODY_CLOSE:
                events.append(Data(data if pos == 0 else data[pos:]))
                pos = end
            elif state == _SWITCHED:
                self._unparsed += data[pos:]
                pos = end
            elif state == _IDLE:
                # Bytes before the next start(): kept for the next response, and they make
                # the connection non-idle so it is not handed out again.
                self._buf = data[pos:]
                if len(self._buf) > self._max_fields * (self._max_field_size + 2):
                    self._fail("backend sent too much without a request")
                pos = end
            else:  # _DONE: nothing more is read from this connection
                pos = end
        return events

    def feed_eof(self) -> list[Event]:
        """The backend closed the connection.

        Ends a close-delimited body (``[EndOfMessage]``); between responses returns ``[]``;
        in the middle of a head or a framed body raises ``RemoteProtocolError`` (502).
        """
        if self._error is not None:
            raise self._error
        state = self._state
        if self._pending is not None or (state == _HEAD and self._buf):
            self._fail("backend closed the connection in the middle of a response head")
        if _RESPONSE_TRANSITIONS.get((state, _EOF)) is None:
            if state == _HEAD:
                self._fail("backend closed the connection without sending a response")
            self._fail("backend closed the connection before the body was complete")
        self._buf = b""
        self._step(_EOF)
        return [EndOfMessage()] if state == _BODY_CLOSE else []

    # -- states

    def _step(self, event: int) -> None:
        nxt = _RESPONSE_TRANSITIONS.get((self._state, event))
        if nxt is None:
            raise LocalProtocolError(f"no transition for event {event} in state {self._state}")
        self._state = nxt

    def _end_message(self, events: list[Event], trailers: Headers | None = None) -> None:
        events.append(EndOfMessage(trailers))
        if self._state != _ENDED:
            self._step(_BODY_END)
        self._state = _AFTER_KEEP if self._keep_alive else _AFTER_CLOSE  # from _ENDED

    def _body_length(self, data: bytes, pos: int, events: list[Event]) -> int:
        remaining = self._remaining
        avail = len(data) - pos
        if avail < remaining:
            events.append(Data(data if pos == 0 else _view(data, pos, len(data))))
            self._remaining = remaining - avail
            return len(data)
        events.append(Data(data if pos == 0 and avail == remaining
                           else _view(data, pos, pos + remaining)))
        events.append(EndOfMessage())
        self._remaining = 0
        self._state = _AFTER_KEEP if self._keep_alive else _AFTER_CLOSE  # via _AFTER_BODY
        return pos + remaining

    def _body_chunked(self, data: bytes, pos: int, events: list[Event]) -> int:
        decoder = self._decoder
        assert decoder is not None  # made by _final_head before this state
        try:
            pos = decoder.feed(data, pos, events)
        except RemoteProtocolError as exc:
            self._die(exc)
            raise
        if decoder.done:
            self._end_message(events, decoder.trailers)
            return pos
        if pos < len(data):
            self._buf = data[pos:]  # part of a size or trailer line (bounded by the decoder)
        return len(data)

    # -- the head

    def _head(self, data: bytes, pos: int, events: list[Event]) -> int:
        body_start = data.find(b"\r\n\r\n", pos) + 4
        if 4 <= body_start - pos <= self._max_field_size and not self._connect:
            fast = _fast_head(data, pos, body_start, self._max_fields)
            if fast is not None:
                self._scan = 0
                status, reason, version, headers, framing, key = fast
                return self._final_head(status, reason, version, headers, framing, data,
                                        body_start, events, key)
        end = len(data)
        if data[pos] in b"\r\n":
            # Tolerate blank lines before a status line (a stray CRLF after a body).
            pos = end - len(data[pos:].lstrip(b"\r\n"))
            if pos == end:
                return end
        scan = max(pos, self._scan)
        self._scan = 0
        crlf = data.find(b"\n\r\n", scan)
        lf = data.find(b"\n\n", scan, crlf + 1 if crlf >= 0 else end)
        if lf >= 0:
            head_end, body_start = lf, lf + 2
        elif crlf >= 0:
            head_end, body_start = crlf, crlf + 3
        elif self._bad_header == "startbody" and (last := data.rfind(b"\n", pos)) > pos:
            # No blank line yet, but a line without a colon may already start the body.
            head_end, body_start = last, -1
        else:
            head_end = body_start = -1
        if head_end >= 0:
            nxt = self._parse_head(data, pos, head_end, body_start, events)
            if nxt >= 0:
                return nxt
        # Unfinished: accumulate in a bytearray so a dribbling backend costs linear time.
        self._pending = bytearray()
        self._line_start = 0
        self._head_lines = 0
        self._accumulate_head(data if pos == 0 else data[pos:])
        return end

    def _accumulate_head(self, data: bytes) -> bytes:
        """Add ``data`` to the unfinished head; return the whole buffer once it may be
        complete (and stop accumulating), else ``b""`` after checking the bounds."""
        pending = self._pending
        assert pending is not None
        old = len(pending)
        pending += data
        scan = max(0, old - 2)
        if pending.find(b"\n\r\n", scan) >= 0 or pending.find(b"\n\n", scan) >= 0:
            return self._release_pending(scan)
        last = pending.rfind(b"\n", old)
        if last >= 0:
            if self._bad_header == "startbody" and self._has_colonless_line(
                    pending, self._line_start, last):
                return self._release_pending(scan)
            self._head_lines += pending.count(b"\n", old)
            self._line_start = last + 1
        if len(pending) - self._line_start > self._max_field_size + 1:
            self._fail("response header line too long")
        if self._head_lines > self._max_fields + 1:
            self._fail("too many response header fields")
        return b""

    def _release_pending(self, scan: int) -> bytes:
        assert self._pending is not None
        data = bytes(self._pending)
        self._pending = None
        self._scan = scan
        return data

    def _has_colonless_line(self, buf: bytearray, start: int, stop: int) -> bool:
        """Whether a header line (not the status line) in ``buf[start:stop]`` lacks a colon."""
        lines = bytes(buf[start:stop]).split(b"\n")
        if start == 0:
            lines = lines[1:]
        return any(line.strip(b"\r") and line[0] not in b" \t" and b":" not in line
                   for line in lines)

    def _parse_head(
        self, data: bytes, pos: int, head_end: int, body_start: int, events: list[Event],
    ) -> int:
        """Parse the head in ``data[pos:head_end]`` and emit its event.

        ``body_start`` is where the bytes after the head begin, or -1 when no blank line was
        seen (StartBody only); returns the position to continue from, or -1 when the head is
        not complete after all.
        """
        head = data[pos:head_end]
        lines = head.split(b"\r\n")
        last = lines[-1]
        end_cr = last[-1:] == b"\r"  # the CR of the CRLF that ends the last line
        if end_cr:
            lines[-1] = last[:-1]
        # In a clean CRLF head the only control bytes are the CRLFs between lines (HTAB is
        # no control here); anything else (bare LF ends, a CR or NUL inside) is normalised
        # and checked the slow way.
        if len(head) - len(head.translate(None, _HEAD_CONTROLS)) != 2 * len(lines) - 2 + end_cr:
            if end_cr:
                head = head[:-1]
            head = head.replace(b"\r\n", b"\n")
            if len(head.translate(None, _HEAD_CTLS)) != len(head):
                self._fail("control character or bare CR in the response head")
            lines = head.split(b"\n")
        max_size = self._max_field_size
        status_line = lines[0]
        if (len(status_line) < 12 or not status_line.startswith(b"HTTP/1.")
                or status_line[8] != 32 or not 48 <= status_line[7] <= 57
                or not status_line[9:12].isdigit() or (len(status_line) > 12
                                                        and status_line[12] != 32)):
            self._fail(f"malformed status line {status_line[:40]!r}")
        if len(status_line) > max_size:
            self._fail("status line too long")
        status = int(status_line[9:12])
        if status < 100:
            self._fail(f"status {status} out of range")
        if (b"\n " in head or b"\n\t" in head or len(lines) > self._max_fields + 1
                or (len(head) > max_size and max(map(len, lines)) > max_size)):
            fields = None
        else:
            fields = self._fields_fast(head, lines)
        if fields is None:
            fields = self._fields_slow(lines, data, pos)
        headers, special, body_at = fields
        framing = [(kind, headers[index][1]) for kind, index in special]  # after any folds
        if body_at >= 0:
            body_start = body_at  # StartBody: a line without a colon began the body
        elif body_start < 0:
            return -1  # StartBody without a blank line yet: the head goes on
        reason = status_line[13:]
        version = status_line[5:8]
        if status < 200:
            if status != 101:
                events.append(InformationalHead(status, reason, headers))
                self._step(_INTERIM)
                return body_start
            return self._switch(
                ResponseHead(status, reason, version, headers, False, _NONE, None),
                data, body_start, events)
        return self._final_head(status, reason, version, headers, framing, data, body_start,
                                events)

    def _fields_fast(
        self, head: bytes, lines: list[bytes],
    ) -> tuple[Headers, list[tuple[int, int]], int] | None:
        """The common case in a few C-level passes: every line ``token: value``, no folds.

        Returns None when any line needs the careful path (which also words the error);
        the third item is always -1 (no StartBody here).
        """
        parts = [line.split(b":", 1) for line in lines]
        del parts[0]  # the status line
        names = list(map(_NAME, parts))
        if (min(map(len, parts), default=2) < 2 or b"" in names
                or b"".join(names).translate(None, TOKEN_CHARS)):
            return None  # a line without a colon, an empty or a non-token name
        headers = [(name, value.strip(b" \t")) for name, value in parts]
        special: list[tuple[int, int]] = []
        lowered = b"\n".join(names).lower().split(b"\n")
        for key, kind in _RESPONSE_SPECIAL_ITEMS:
            if key in lowered:
                index = -1
                for _ in range(lowered.count(key)):
                    index = lowered.index(key, index + 1)
                    special.append((kind, index))
        return headers, special, -1

    def _fields_slow(
        self, lines: list[bytes], data: bytes, pos: int,
    ) -> tuple[Headers, list[tuple[int, int]], int]:
        """Line by line: obs-fold, ProxyBadHeader and precise errors.

        The third item is where the body starts when StartBody applied, else -1.
        """
        max_size = self._max_field_size
        headers: Headers = []
        special: list[tuple[int, int]] = []
        for index in range(1, len(lines)):
            line = lines[index]
            if len(line) > max_size:
                self._fail("response header line too long")
            first = line[0]
            colon = line.find(b":")
            if first == 32 or first == 9:  # obs-fold: join with one space
                if not headers:
                    self._fail("folded line before any header field")
                name, value = headers[-1]
                more = line.strip(b" \t")
                headers[-1] = (name, value + b" " + more if value and more else value or more)
            elif colon > 0:
                name = line[:colon]
                if name.translate(None, TOKEN_CHARS):
                    self._fail(f"invalid response header name {name[:40]!r}")
                if len(name) in _RESPONSE_SPECIAL_LENGTHS:
                    kind = _RESPONSE_SPECIAL.get(name.lower())
                    if kind is not None:
                        special.append((kind, len(headers)))
                headers.append((name, line[colon + 1:].strip(b" \t")))
                if len(headers) > self._max_fields:
                    self._fail("too many response header fields")
            elif colon == 0 or self._bad_header == "iserror":
                self._fail(f"bad response header line {line[:40]!r}")
            elif self._bad_header == "startbody":
                body_start = pos
                for _ in range(index):
                    body_start = data.index(b"\n", body_start) + 1
                return headers, special, body_start
            # "ignore": the line is dropped
        return headers, special, -1

    def _final_head(
        self, status: int, reason: bytes, version: bytes, headers: Headers,
        framing: list[tuple[int, bytes]], data: bytes, body_start: int, events: list[Event],
        names_key: bytes | None = None,
    ) -> int:
        lengths: list[bytes] = []
        codings: list[bytes] = []
        tokens: list[bytes] = []
        for kind, value in framing:
            if kind == _RESP_CONTENT_LENGTH:
                lengths.append(value)
            elif kind == _RESP_TRANSFER_ENCODING:
                codings += (c.strip(b" \t").lower() for c in value.split(b","))
            elif b"," in value:
                tokens += (t.strip(b" \t").lower() for t in value.split(b","))
            else:
                tokens.append(value.lower())
        if version == b"1.0":
            keep_alive = b"keep-alive" in tokens and b"close" not in tokens
        else:
            keep_alive = b"close" not in tokens
        content_length: int | None = None
        if self._head_only or status == 204 or status == 304:
            body_kind = _NONE
            content_length = self._content_length(lengths, lenient=True)
        elif self._connect and status < 300:
            return self._switch(
                ResponseHead(status, reason, version, headers, False, _NONE, None),
                data, body_start, events)
        elif codings:
            codings = [c for c in codings if c]
            if codings and codings[-1] == b"chunked":
                if codings.count(b"chunked") > 1:
                    self._fail("chunked applied more than once")
                body_kind = _CHUNKED
                if version == b"1.0":
                    keep_alive = False  # RFC 9112 §6.1: TE in 1.0 is faulty framing
            else:
                body_kind = _UNTIL_CLOSE  # RFC 9112 §6.3 item 4: read until close
                keep_alive = False
            if lengths:
                # TE overrides CL; the message was ambiguous, so the connection is not reused.
                headers[:] = [h for h in headers if h[0].lower() != b"content-length"]
                names_key = None   # the fields no longer are the ones the key names
                keep_alive = False
        elif lengths:
            only = lengths[0]
            if len(lengths) == 1 and only.isdigit() and len(only) <= _MAX_LENGTH_DIGITS:
                content_length = int(only)
            else:
                content_length = self._content_length(lengths, lenient=False)
            body_kind = _LENGTH if content_length else _NONE
        else:
            body_kind = _UNTIL_CLOSE
            keep_alive = False
        self._keep_alive = keep_alive
        head = ResponseHead(status, reason, version, headers, keep_alive, body_kind,
                            content_length)
        head.names_key = names_key
        events.append(head)
        self._state = _AFTER_FRAMING[body_kind]  # from _HEAD
        if body_kind == _NONE:
            self._end_message(events)
        elif body_kind == _LENGTH:
            self._remaining = content_length  # type: ignore[assignment]
        elif body_kind == _CHUNKED:
            if self._decoder is None:
                self._decoder = ChunkedDecoder(self._max_field_size, self._max_field_size,
                                               self._max_fields)
            self._decoder.reset()
        return body_start

    def _switch(self, head: ResponseHead, data: bytes, body_start: int,
                events: list[Event]) -> int:
        events.append(head)
        events.append(EndOfMessage())
        self._step(_SWITCH)
        self._unparsed = data[body_start:]
        return len(data)

    def _content_length(self, values: list[bytes], lenient: bool) -> int | None:
        """The one length the Content-Length fields agree on (identical repeats allowed)."""
        result: int | None = None
        for value in values:
            for part in value.split(b","):
                part = part.strip(b" \t")
                if not part.isdigit() or len(part) > _MAX_LENGTH_DIGITS or (
                        result is not None and int(part) != result):
                    if lenient:
                        return None
                    self._fail(f"invalid Content-Length {value[:40]!r}")
                result = int(part)
        return result

    def _fail(self, message: str) -> NoReturn:
        error = RemoteProtocolError(f"bad response from backend: {message}", 502)
        self._die(error)
        raise error

    def _die(self, error: RemoteProtocolError) -> None:
        self._state = _DONE  # a connection that saw an error is never reused
        self._pending = None
        self._buf = b""
        self._error = error
