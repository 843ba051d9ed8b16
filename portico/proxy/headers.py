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


def _connection_tokens(headers: Headers) -> frozenset[bytes] | None:
    """Header names listed in Connection (lowercased), or None when there is no Connection."""
    tokens: set[bytes] | None = None
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection":
            if tokens is None:
                tokens = set()
            for token in value.split(b","):
                token = token.strip().lower()
                if token:
                    tokens.add(token)
    return frozenset(tokens) if tokens is not None else None


def max_forwards_action(headers: Headers, method: bytes, configured: int
                        ) -> tuple[int | None, bytes | None]:
    """(error status or None, Max-Forwards value to send or None) per §4.6.

    A status of 200 means "answer locally" (TRACE/OPTIONS with Max-Forwards: 0).
    """
    value = None
    for name, v in headers:
        if name.lower() == b"max-forwards":
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

    __slots__ = ("body_length", "chunked", "client_ip", "close", "forward_expect", "host",
                 "max_forwards", "method", "server_name", "target", "via_name",
                 "client_version")

    def __init__(self, method: bytes, target: bytes, host: bytes, client_ip: str,
                 server_name: str, via_name: str, client_version: bytes = b"1.1",
                 body_length: int | None = None, chunked: bool = False, close: bool = False,
                 forward_expect: bool = False, max_forwards: bytes | None = None) -> None:
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
        self.max_forwards = max_forwards


def build_request_head(req: BackendRequest, headers: Headers,
                       settings: ProxySettings) -> bytes:
    """The HTTP/1.1 request head for the backend (§4.1-§4.6): Host first, hop-by-hop removed,
    X-Forwarded-* and Via appended, framing regenerated."""
    out = [req.method, b" ", req.target, b" HTTP/1.1\r\nHost: ", req.host, b"\r\n"]
    tokens = _connection_tokens(headers)
    client_host: bytes | None = None
    xff: list[bytes] = []
    xfh: list[bytes] = []
    xfs: list[bytes] = []
    via: list[bytes] = []
    add = settings.add_headers
    via_mode = settings.via
    for name, value in headers:
        low = name.lower()
        if low in _REQUEST_DROP or (tokens and low in tokens):
            if low == b"host":
                client_host = value
            continue
        if add and low[:12] == b"x-forwarded-":
            if low == b"x-forwarded-for":
                xff.append(value)
                continue
            if low == b"x-forwarded-host":
                xfh.append(value)
                continue
            if low == b"x-forwarded-server":
                xfs.append(value)
                continue
        if low == b"via":
            if via_mode is ProxyVia.BLOCK:
                continue
            if via_mode is not ProxyVia.OFF:
                via.append(value)
                continue
        elif low == b"expect":
            if not req.forward_expect:
                continue
        elif low == b"max-forwards":
            continue
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
    if req.chunked:
        out.append(b"Transfer-Encoding: chunked\r\n")
    elif req.body_length is not None:
        out += (b"Content-Length: ", str(req.body_length).encode(), b"\r\n")
    if req.close:
        out.append(b"Connection: close\r\n")
    out.append(b"\r\n")
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


def build_response_head(
    status: int, reason: bytes, headers: Headers, *, framing: int,
    content_length: int | None, keep_alive: bool, client_version: bytes,
    settings: ProxySettings, via_name: str, mapper: ReverseMapper | None, base_url: str,
    keepalive_header: bytes | None = None, extra: Sequence[tuple[bytes, bytes]] = (),
) -> tuple[bytes, Headers]:
    """The client response head and the header list as sent (for the access log)."""
    out = [b"HTTP/1.1 ", str(status).encode(), b" ", reason, b"\r\n"]
    sent: Headers = []
    tokens = _connection_tokens(headers)
    has_date = False
    via: list[bytes] = []
    via_mode = settings.via
    map_urls = mapper is not None and mapper.maps_urls
    map_cookies = mapper is not None and mapper.maps_cookies
    keep_length = framing == ResponseFraming.NONE
    for name, value in headers:
        low = name.lower()
        if low in _RESPONSE_DROP:
            continue
        if low == b"content-length":
            if not keep_length:
                continue
        elif low == b"date":
            has_date = True
        elif map_urls and low in REVERSE_MAPPED_HEADERS:
            value = mapper.location(value.decode("latin-1"), base_url).encode("latin-1")  # type: ignore[union-attr]
        elif map_cookies and low == b"set-cookie":
            value = mapper.cookie(value.decode("latin-1")).encode("latin-1")  # type: ignore[union-attr]
        elif low == b"via" and via_mode is not ProxyVia.OFF:
            if via_mode is not ProxyVia.BLOCK:
                via.append(value)
            continue
        if tokens and low in tokens:
            continue
        sent.append((name, value))
    sent.extend(extra)
    if not has_date:
        sent.append((b"Date", http_date()))
    if via_mode is ProxyVia.ON or via_mode is ProxyVia.FULL:
        via.append(_via_value(client_version, via_name, via_mode))
        sent.append((b"Via", b", ".join(via)))
    if framing == ResponseFraming.LENGTH:
        sent.append((b"Content-Length", str(content_length).encode()))
    elif framing == ResponseFraming.CHUNKED:
        sent.append((b"Transfer-Encoding", b"chunked"))
    if not keep_alive:
        sent.append((b"Connection", b"close"))
    elif client_version == b"1.0":
        sent.append((b"Connection", b"Keep-Alive"))
        if keepalive_header:
            sent.append((b"Keep-Alive", keepalive_header))
    for name, value in sent:
        out += (name, b": ", value, b"\r\n")
    out.append(b"\r\n")
    return b"".join(out), sent
