"""The facts one finished request hands to the access log.

A request fills one ``AccessRecord`` when its response is complete (or aborted) and passes it
to every ``AccessLog`` that applies. The record is plain data: the formatters only read it, so
one record can be formatted by several logs.
"""

from __future__ import annotations

__all__ = ["AccessRecord", "Headers"]

from dataclasses import dataclass, field

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class AccessRecord:
    """What happened in one request, in the terms the LogFormat codes need.

    Byte fields hold the bytes as they came off the wire (they are escaped when logged);
    ``str`` fields are values portico itself produced. Times are ``time.time_ns()`` values.
    """

    remote_ip: str            # %a: the client address (after any remote-ip rewriting)
    remote_port: int          # %{remote}p
    peer_ip: str              # %{c}a, %{c}h: the TCP peer
    local_ip: str             # %A
    local_port: int           # %{local}p
    server_name: str          # %v: the vhost's ServerName
    server_port: int          # %p, %{canonical}p
    host: str                 # %V: the Host header's name, or server_name
    request_line: bytes       # %r, e.g. b"GET /a?b HTTP/1.1"
    method: bytes             # %m
    path: bytes               # %U
    query: bytes              # %q (without the "?")
    protocol: bytes           # %H, e.g. b"HTTP/1.1"
    status: int               # %>s: the final status
    original_status: int      # %s, %<s: before any override
    body_bytes: int           # %B, %b
    bytes_in: int             # %I: the request as received (line, headers, body framed)
    bytes_out: int            # %O (status line and headers included)
    start_ns: int             # when the request line arrived
    end_ns: int               # when the response was finished
    request_headers: Headers
    response_headers: Headers
    request_trailers: Headers = field(default_factory=list)
    response_trailers: Headers = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)     # %{VAR}e
    notes: dict[str, str] = field(default_factory=dict)   # %{VAR}n
    keepalive_count: int = 0       # %k
    conn_status: str = "-"         # %X: "X" aborted, "+" keep-alive, "-" close
    handler: str = "proxy-server"  # %R
    filename: str = ""             # %f, "proxy:URL" for proxied requests
    remote_user: str = ""          # %u
    request_id: str = ""           # %L
