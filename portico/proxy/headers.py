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
        if name[:1] in b"mM" and name.lower() == b"max-forwards":
            value = v
    if value is None:
        return None, (str(configured).encode() if configured >= 0 else None)
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


def build_request_head(req: BackendRequest, headers: Headers,
                       settings: ProxySettings) -> bytes:
    """The HTTP/1.1 request head for the backend (§4.1-§4.6): Host first, hop-by-hop removed,
    X-Forwarded-* and Via appended, framing regenerated."""
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
            if via_mode is ProxyVia.OFF:
                keep(item)
            elif via_mode is not ProxyVia.BLOCK:
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
    if via_mode is ProxyVia.ON or via_mode is ProxyVia.FULL:
        via.append(_via_value(req.client_version, req.via_name, via_mode))
        out += (b"Via: ", b", ".join(via), b"\r\n")
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
    if mode is ProxyVia.FULL:
        value += f" ({SERVER_SOFTWARE})".encode()
    return value


class ResponseFraming:
    """How the body goes to the client: Content-Length, chunked, or until close."""

    LENGTH = 1
    CHUNKED = 2
    CLOSE = 3
    NONE = 0


# What build_response_head does with a response header, by lowercased name; names not in the
# table pass through untouched (the common case costs one dict lookup).
_DROP, _LENGTH, _DATE, _REVERSE, _COOKIE, _VIA = range(6)
_RESPONSE_ACTIONS = {name: _DROP for name in _RESPONSE_DROP}
_RESPONSE_ACTIONS.update({b"content-length": _LENGTH, b"date": _DATE, b"set-cookie": _COOKIE,
                          b"via": _VIA})
_RESPONSE_ACTIONS.update({name: _REVERSE for name in REVERSE_MAPPED_HEADERS})
_status_lines: dict[tuple[int, bytes], bytes] = {}


def _status_line(status: int, reason: bytes) -> bytes:
    key = (status, reason)
    line = _status_lines.get(key)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % key
        if len(_status_lines) < 1024:  # reasons come from backends: bound the cache
            _status_lines[key] = line
    return line


def build_response_head(
    status: int, reason: bytes, headers: Headers, *, framing: int,
    content_length: int | None, keep_alive: bool, client_version: bytes,
    settings: ProxySettings, via_name: str, mapper: ReverseMapper | None, base_url: str,
    keepalive_header: bytes | None = None, extra: Sequence[tuple[bytes, bytes]] = (),
) -> tuple[bytes, Headers]:
    """The client response head and the header list as sent (for the access log)."""
    sent: Headers = []
    append = sent.append
    connection: list[bytes] | None = None
    has_date = False
    via: list[bytes] = []
    via_mode = settings.via
    actions = _RESPONSE_ACTIONS
    for item in headers:
        low = item[0].lower()
        action = actions.get(low)
        if action is None:
            append(item)
            continue
        if action == _DROP:
            if low == b"connection":
                connection = [*(connection or ()), item[1]]
            continue
        if action == _LENGTH:
            if framing != ResponseFraming.NONE:
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
        elif via_mode is not ProxyVia.OFF:  # _VIA
            if via_mode is not ProxyVia.BLOCK:
                via.append(item[1])
            continue
        append(item)
    if connection is not None:
        listed = _listed_names(connection)
        if listed:
            sent = [h for h in sent if h[0].lower() not in listed]
            append = sent.append
    if extra:
        sent.extend(extra)
    if not has_date:
        append((b"Date", http_date()))
    if via_mode is ProxyVia.ON or via_mode is ProxyVia.FULL:
        via.append(_via_value(client_version, via_name, via_mode))
        append((b"Via", b", ".join(via)))
    if framing == ResponseFraming.LENGTH:
        append((b"Content-Length", b"%d" % content_length))
    elif framing == ResponseFraming.CHUNKED:
        append((b"Transfer-Encoding", b"chunked"))
    if not keep_alive:
        append((b"Connection", b"close"))
    elif client_version == b"1.0":
        append((b"Connection", b"Keep-Alive"))
        if keepalive_header:
            append((b"Keep-Alive", keepalive_header))
    out = [_status_line(status, reason)]
    for name, value in sent:
        out += (name, b": ", value, b"\r\n")
    out.append(b"\r\n")
    return b"".join(out), sent
