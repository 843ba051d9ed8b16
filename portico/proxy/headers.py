"""Header policy both ways: the request sent to a backend (§4) and the response sent back (§3.4).

Both builders make one pass over the header list and produce the head as one bytes object.
Names are compared lowercased; values pass through as bytes.
"""

from __future__ import annotations

__all__ = [
    "BackendRequest",
    "ResponseFraming",
    "build_request_head",
    "build_response_head",
    "http_date",
    "max_forwards_action",
]

import time
from collections.abc import Sequence
from email.utils import formatdate

from portico import SERVER_SOFTWARE
from portico.config.model import ProxySettings, ProxyVia
from portico.proxy.reverse import REVERSE_MAPPED_HEADERS, ReverseMapper

Headers = list[tuple[bytes, bytes]]

# Never forwarded as received: hop-by-hop (RFC 9110 §7.6.1) and framing we regenerate.
_REQUEST_DROP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"content-length", b"host",
})
_RESPONSE_DROP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"proxy-authenticate",
})

_date_cache: list = [0, b""]


def http_date() -> bytes:
    """The current IMF-fixdate, cached for the second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = formatdate(now, usegmt=True).encode()
    return _date_cache[1]


_CONNECTION_OPTIONS = frozenset({b"close", b"keep-alive", b"upgrade"})


def _listed_names(values: list[bytes]) -> frozenset[bytes]:
    """Header names a Connection header lists, beyond its usual options (rarely any)."""
    names: set[bytes] = set()
    for value in values:
        for token in value.split(b","):
            token = token.strip().lower()
            if token and token not in _CONNECTION_OPTIONS:
                names.add(token)
    return frozenset(names)


def max_forwards_action(headers: Headers, method: bytes, configured: int
                        ) -> tuple[int | None, bytes | None]:
    """(error status or None, Max-Forwards value to send or None) per §4.6.

    A status of 200 means "answer locally" (TRACE/OPTIONS with Max-Forwards: 0).
    """
    value = None
    for name, v in headers:
        # Few names are 12 bytes long: the length test spares the others a lower().
        if len(name) == 12 and name.lower() == b"max-forwards":
            value = v
    if value is None:
        if configured < 0:
            return None, None
        return None, str(configured).encode()
    try:
        n = int(value)
    except ValueError:
        return 400, None
    if n < 0 or not value.strip().isdigit():
        return 400, None
    if n == 0:
        if method in (b"TRACE", b"OPTIONS"):
            return 200, None
        return 400, None
    return None, str(n - 1).encode()


class BackendRequest:
    """The inputs of one backend request head that are not in the client's headers."""

    __slots__ = ("add_expect", "body_length", "chunked", "client_ip", "close", "forward_expect",
                 "host",
                 "max_forwards", "method", "server_name", "target", "via_name",
                 "client_version")

    def __init__(self, method: bytes, target: bytes, host: bytes, client_ip: str,
                 server_name: str, via_name: str, client_version: bytes = b"1.1",
                 body_length: int | None = None, chunked: bool = False, close: bool = False,
                 forward_expect: bool = False, max_forwards: bytes | None = None,
                 add_expect: bool = False) -> None:
        self.method = method
        self.target = target
        self.host = host
        self.client_ip = client_ip
        self.server_name = server_name
        self.via_name = via_name
        self.client_version = client_version
        self.body_length = body_length
        self.chunked = chunked
        self.close = close
        self.forward_expect = forward_expect
        self.add_expect = add_expect   # the worker's ping= asks for a 100 before the body
        self.max_forwards = max_forwards


_R_DROP, _R_HOST, _R_CONNECTION, _R_XFF, _R_XFH, _R_XFS, _R_VIA, _R_EXPECT = range(8)
_REQUEST_ACTIONS = {name: _R_DROP for name in _REQUEST_DROP}
_REQUEST_ACTIONS.update({
    b"host": _R_HOST, b"connection": _R_CONNECTION, b"x-forwarded-for": _R_XFF,
    b"x-forwarded-host": _R_XFH, b"x-forwarded-server": _R_XFS, b"via": _R_VIA,
    b"expect": _R_EXPECT, b"max-forwards": _R_DROP,
})
# What the fast path of build_request_head does with a name (anything not plain, Host,
# dropped, Connection or Expect goes to the general path).
_F_PASS, _F_HOST, _F_DROP, _F_CONNECTION, _F_EXPECT, _F_GENERAL = range(6)
_FAST_REQUEST = {name: _F_DROP for name in _REQUEST_DROP}
_FAST_REQUEST.update({
    b"host": _F_HOST, b"connection": _F_CONNECTION, b"expect": _F_EXPECT,
    b"max-forwards": _F_DROP, b"x-forwarded-for": _F_GENERAL, b"x-forwarded-host": _F_GENERAL,
    b"x-forwarded-server": _F_GENERAL, b"via": _F_GENERAL,
})
# The spellings clients send most of names that pass unchanged, and of Host: a header
# among them costs one set lookup and no lower(). Other spellings take the lowercased
# lookup, with the same outcome.
_COMMON_PASSING = (
    b"user-agent", b"accept", b"accept-encoding", b"accept-language", b"cookie", b"referer",
    b"authorization", b"content-type", b"cache-control", b"pragma", b"origin",
    b"if-none-match", b"if-modified-since", b"upgrade-insecure-requests", b"dnt", b"range",
    b"x-requested-with",
)


def _spellings(names: tuple[bytes, ...]) -> frozenset[bytes]:
    return frozenset(spelling for low in names for spelling in (
        low, low.upper(), b"-".join(w.capitalize() for w in low.split(b"-"))))


_PASSING_SPELLINGS = _spellings(_COMMON_PASSING)
_HOST_SPELLINGS = _spellings((b"host",))
# Enum members are slow to fetch from their class; the hot paths compare with these.
_VIA_OFF, _VIA_ON, _VIA_FULL, _VIA_BLOCK = ProxyVia.OFF, ProxyVia.ON, ProxyVia.FULL, ProxyVia.BLOCK


def build_request_head(req: BackendRequest, headers: Headers,
                       settings: ProxySettings) -> bytes:
    """The HTTP/1.1 request head for the backend (§4.1-§4.6): Host first, hop-by-hop removed,
    X-Forwarded-* and Via appended, framing regenerated."""
    # The common case in one pass: plain headers, Host, names to drop and a Connection
    # header that lists no names of its own. A client's X-Forwarded-* or Via, or a
    # Connection-listed name, takes the general path (it needs a second pass).
    out = [req.method, b" ", req.target, b" HTTP/1.1\r\nHost: ", req.host, b"\r\n"]
    client_host: bytes | None = None
    passing = _PASSING_SPELLINGS
    for name, value in headers:
        if name in passing:
            out += (name, b": ", value, b"\r\n")
            continue
        if name in _HOST_SPELLINGS:
            client_host = value
            continue
        step = _FAST_REQUEST.get(name.lower(), _F_PASS)
        if step == _F_PASS:
            out += (name, b": ", value, b"\r\n")
        elif step == _F_HOST:
            client_host = value
        elif step == _F_EXPECT:
            if req.forward_expect:
                out += (name, b": ", value, b"\r\n")
        elif step == _F_GENERAL or (step == _F_CONNECTION and _lists_names(value)):
            return _request_head_general(req, headers, settings)
    if settings.add_headers:
        if client_host is None:
            out += (b"X-Forwarded-For: ", req.client_ip.encode())
        else:
            out += (b"X-Forwarded-For: ", req.client_ip.encode(), b"\r\nX-Forwarded-Host: ",
                    client_host)
        out.append(_xfs_lines.get(req.server_name) or _forwarded_server_line(req.server_name))
    via_mode = settings.via
    if via_mode is _VIA_ON or via_mode is _VIA_FULL:
        out += (b"Via: ", _via_value(req.client_version, req.via_name, via_mode), b"\r\n")
    return _finish_request_head(out, req)


_xfs_lines: dict[str, bytes] = {}


def _forwarded_server_line(server_name: str) -> bytes:
    """The end of the X-Forwarded-For line and the X-Forwarded-Server line, per server name."""
    line = b"\r\nX-Forwarded-Server: " + server_name.encode() + b"\r\n"
    if len(_xfs_lines) < 256:  # names come from the config; bound it all the same
        _xfs_lines[server_name] = line
    return line


def _lists_names(value: bytes) -> bool:
    """Whether one Connection value names headers beyond close/keep-alive/upgrade."""
    if value.lower() in _CONNECTION_OPTIONS:
        return False
    return bool(_listed_names([value]))


def _request_head_general(req: BackendRequest, headers: Headers,
                          settings: ProxySettings) -> bytes:
    """build_request_head for any header list (X-Forwarded-*, Via or Connection-listed
    names among the client's headers)."""
    kept: Headers = []
    keep = kept.append
    connection: list[bytes] | None = None
    client_host: bytes | None = None
    xff: list[bytes] = []
    xfh: list[bytes] = []
    xfs: list[bytes] = []
    via: list[bytes] = []
    add = settings.add_headers
    via_mode = settings.via
    actions = _REQUEST_ACTIONS
    for item in headers:
        action = actions.get(item[0].lower())
        if action is None:
            keep(item)
        elif action == _R_HOST:
            client_host = item[1]
        elif action == _R_CONNECTION:
            connection = [*(connection or ()), item[1]]
        elif not add and action in (_R_XFF, _R_XFH, _R_XFS):
            keep(item)  # ProxyAddHeaders Off: forwarded untouched
        elif action == _R_XFF:
            xff.append(item[1])
        elif action == _R_XFH:
            xfh.append(item[1])
        elif action == _R_XFS:
            xfs.append(item[1])
        elif action == _R_VIA:
            if via_mode is _VIA_OFF:
                keep(item)
            elif via_mode is not _VIA_BLOCK:
                via.append(item[1])
        elif action == _R_EXPECT and req.forward_expect:
            keep(item)
    if connection is not None:
        listed = _listed_names(connection)
        if listed:
            kept = [h for h in kept if h[0].lower() not in listed]
    out = [req.method, b" ", req.target, b" HTTP/1.1\r\nHost: ", req.host, b"\r\n"]
    for name, value in kept:
        out += (name, b": ", value, b"\r\n")
    if add:
        xff.append(req.client_ip.encode())
        out += (b"X-Forwarded-For: ", b", ".join(xff), b"\r\n")
        if client_host is not None:
            xfh.append(client_host)
        if xfh:
            out += (b"X-Forwarded-Host: ", b", ".join(xfh), b"\r\n")
        xfs.append(req.server_name.encode())
        out += (b"X-Forwarded-Server: ", b", ".join(xfs), b"\r\n")
    if via_mode is _VIA_ON or via_mode is _VIA_FULL:
        via.append(_via_value(req.client_version, req.via_name, via_mode))
        out += (b"Via: ", b", ".join(via), b"\r\n")
    return _finish_request_head(out, req)


def _finish_request_head(out: list[bytes], req: BackendRequest) -> bytes:
    """Max-Forwards, Expect, the framing and Connection, then the head as one bytes."""
    if req.max_forwards is not None:
        out += (b"Max-Forwards: ", req.max_forwards, b"\r\n")
    if req.add_expect:
        out.append(b"Expect: 100-continue\r\n")
    if req.chunked:
        out.append(b"Transfer-Encoding: chunked\r\n")
    elif req.body_length is not None:
        out += (b"Content-Length: ", b"%d" % req.body_length, b"\r\n")
    # httpd always states the connection's fate; bytraffic counts these bytes, so saying
    # the same keeps its schedules identical to httpd's.
    out.append(b"Connection: close\r\n\r\n" if req.close else b"Connection: Keep-Alive\r\n\r\n")
    return b"".join(out)


def _via_value(version: bytes, name: str, mode: ProxyVia) -> bytes:
    value = version + b" " + name.encode()
    if mode is _VIA_FULL:
        value += f" ({SERVER_SOFTWARE})".encode()
    return value


class ResponseFraming:
    """How the body goes to the client: Content-Length, chunked, or until close."""

    LENGTH = 1
    CHUNKED = 2
    CLOSE = 3
    NONE = 0


_FRAMING_NONE, _FRAMING_LENGTH, _FRAMING_CHUNKED = (
    ResponseFraming.NONE, ResponseFraming.LENGTH, ResponseFraming.CHUNKED)

# What build_response_head does with a response header, by lowercased name; names not in the
# table pass through untouched.
_DROP, _LENGTH, _DATE, _REVERSE, _COOKIE, _VIA, _CONNECTION = range(7)
_RESPONSE_ACTIONS = {name: _DROP for name in _RESPONSE_DROP}
_RESPONSE_ACTIONS.update({b"content-length": _LENGTH, b"date": _DATE, b"set-cookie": _COOKIE,
                          b"via": _VIA, b"connection": _CONNECTION})
_RESPONSE_ACTIONS.update({name: _REVERSE for name in REVERSE_MAPPED_HEADERS})
# Common spellings: of names that pass untouched (one set lookup, no lower()), and of the
# two names nearly every response carries.
_RESPONSE_PASSING = _spellings((
    b"server", b"content-type", b"cache-control", b"etag", b"last-modified", b"expires",
    b"vary", b"accept-ranges", b"content-encoding", b"content-language", b"age", b"pragma",
    b"x-powered-by", b"access-control-allow-origin", b"strict-transport-security",
    b"x-content-type-options", b"x-frame-options", b"link", b"content-range",
    b"content-disposition", b"x-request-id",
))
_DATE_SPELLINGS = _spellings((b"date",))
_LENGTH_SPELLINGS = _spellings((b"content-length",))
# status → (reason, status line without CRLF) for the reason last seen with it; statuses
# are three digits, which bounds the table.
_status_lines: dict[int, tuple[bytes, bytes]] = {}


_FIELD_JOIN = b": ".join  # (name, value) → b"name: value"


def _status_line(status: int, reason: bytes) -> bytes:
    """The status line without its CRLF."""
    line = b"HTTP/1.1 %d %s" % (status, reason)
    if len(_status_lines) < 1024:
        _status_lines[status] = (reason, line)
    return line


class _ResponseShape:
    """What build_response_head does with the fields of one sequence of names, whatever
    their values: which indices it drops (with and without the Content-Length it
    regenerates), where the Connection fields are, whether there is a Date, and whether a
    field's fate depends on the request's settings (reverse mapping, Via)."""

    __slots__ = ("connection", "drop", "drop_with_length", "has_date", "mapped", "via")

    def __init__(self, headers: Headers) -> None:
        drop: list[int] = []
        lengths: list[int] = []
        self.connection: tuple[int, ...] = ()
        self.has_date = self.mapped = self.via = False
        for index, (name, _) in enumerate(headers):
            action = _RESPONSE_ACTIONS.get(name.lower())
            if action == _DROP:
                drop.append(index)
            elif action == _CONNECTION:
                drop.append(index)
                self.connection += (index,)
            elif action == _LENGTH:
                lengths.append(index)
            elif action == _DATE:
                self.has_date = True
            elif action in (_REVERSE, _COOKIE):
                self.mapped = True
            elif action == _VIA:
                self.via = True
        # deleted from the highest index down, so earlier indices stay valid
        self.drop = tuple(sorted(drop, reverse=True))
        self.drop_with_length = tuple(sorted(drop + lengths, reverse=True))


# Backends send few distinct sequences of names; bounded all the same.
_RESPONSE_SHAPES: dict[bytes, _ResponseShape] = {}
_MAX_RESPONSE_SHAPES = 256


def build_response_head(
    status: int, reason: bytes, headers: Headers, *, framing: int,
    content_length: int | None, keep_alive: bool, client_version: bytes,
    settings: ProxySettings, via_name: str, mapper: ReverseMapper | None, base_url: str,
    keepalive_header: bytes | None = None, extra: Sequence[tuple[bytes, bytes]] = (),
    names_key: bytes | None = None,
) -> tuple[bytes, Headers]:
    """The client response head and the header list as sent (for the access log).

    ``names_key`` (from the response parser: the field names joined with "\n") lets the
    per-field decisions be looked up once per sequence of names instead of made per field.
    """
    via_mode = settings.via
    via: list[bytes] | None = None
    sent: Headers | None = None
    if names_key is not None:
        shape = _RESPONSE_SHAPES.get(names_key)
        if shape is None:
            if len(_RESPONSE_SHAPES) >= _MAX_RESPONSE_SHAPES:
                _RESPONSE_SHAPES.clear()
            shape = _RESPONSE_SHAPES[names_key] = _ResponseShape(headers)
        connection = shape.connection
        if ((mapper is None or not shape.mapped) and (via_mode is _VIA_OFF or not shape.via)
                # one Connection field (the usual case) without a generator's cost
                and (headers[connection[0]][1].lower() in _CONNECTION_OPTIONS
                     if len(connection) == 1 else
                     all(headers[i][1].lower() in _CONNECTION_OPTIONS for i in connection))):
            sent = headers.copy()
            for index in (shape.drop_with_length if framing != _FRAMING_NONE
                          else shape.drop):
                del sent[index]
            has_date = shape.has_date
    if sent is None:
        sent, has_date, via = _response_fields(headers, framing, mapper, base_url, via_mode)
    append = sent.append
    if extra:
        sent.extend(extra)
    if not has_date:
        append((b"Date", http_date()))
    if via_mode is _VIA_ON or via_mode is _VIA_FULL:
        append((b"Via", b", ".join([*(via or ()),
                                     _via_value(client_version, via_name, via_mode)])))
    if framing == _FRAMING_LENGTH:
        append((b"Content-Length", b"%d" % content_length))
    elif framing == _FRAMING_CHUNKED:
        append((b"Transfer-Encoding", b"chunked"))
    if not keep_alive:
        append((b"Connection", b"close"))
    elif client_version == b"1.0":
        append((b"Connection", b"Keep-Alive"))
        if keepalive_header:
            append((b"Keep-Alive", keepalive_header))
    cached = _status_lines.get(status)
    line = (cached[1] if cached is not None and cached[0] == reason
            else _status_line(status, reason))
    return b"\r\n".join([line, *map(_FIELD_JOIN, sent), b"", b""]), sent


def _response_fields(headers: Headers, framing: int, mapper: ReverseMapper | None,
                     base_url: str, via_mode: ProxyVia,
                     ) -> tuple[Headers, bool, list[bytes] | None]:
    """Field by field: the fields sent on, whether one is a Date, and the Via values to
    extend (when Via is On or Full)."""
    sent: Headers = []
    append = sent.append
    connection: list[bytes] | None = None
    has_date = False
    via: list[bytes] | None = None
    passing = _RESPONSE_PASSING
    for item in headers:
        name = item[0]
        if name in passing:
            append(item)
            continue
        if name in _DATE_SPELLINGS:
            has_date = True
            append(item)
            continue
        if name in _LENGTH_SPELLINGS:
            if framing == _FRAMING_NONE:  # a HEAD, 204 or 304 keeps the backend's
                append(item)
            continue
        action = _RESPONSE_ACTIONS.get(name.lower())
        if action is None:
            append(item)
            continue
        if action == _DROP:
            continue
        if action == _CONNECTION:
            connection = [*(connection or ()), item[1]]
            continue
        if action == _LENGTH:
            if framing != _FRAMING_NONE:
                continue
        elif action == _DATE:
            has_date = True
        elif action == _REVERSE:
            if mapper is not None and mapper.maps_urls:
                item = (item[0], mapper.location(item[1].decode("latin-1"), base_url)
                        .encode("latin-1"))
        elif action == _COOKIE:
            if mapper is not None and mapper.maps_cookies:
                item = (item[0], mapper.cookie(item[1].decode("latin-1")).encode("latin-1"))
        elif via_mode is not _VIA_OFF:  # _VIA
            if via_mode is _VIA_BLOCK:
                append(item)   # Block keeps the backend's own Via and adds none (§4.3)
            else:
                via = [*(via or ()), item[1]]
            continue
        append(item)
    # A lone "keep-alive" or "close" (what backends send) lists no header names.
    if connection is not None and (len(connection) > 1
                                   or connection[0].lower() not in _CONNECTION_OPTIONS):
        listed = _listed_names(connection)
        if listed:
            sent = [h for h in sent if h[0].lower() not in listed]
    return sent, has_date, via
