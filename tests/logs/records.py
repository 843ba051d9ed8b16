"""A filled-in AccessRecord for the log tests, at a known instant."""

from __future__ import annotations

import calendar
import dataclasses

from portico.logs.record import AccessRecord

# 10/Oct/2000:13:55:36 -0700 (the manual's example), plus 123456789 ns.
START_SEC = calendar.timegm((2000, 10, 10, 20, 55, 36))
START_NS = START_SEC * 1_000_000_000 + 123_456_789
DURATION_NS = 2_345_678_901


def make_record(**changes: object) -> AccessRecord:
    record = AccessRecord(
        remote_ip="203.0.113.7", remote_port=51234, peer_ip="10.1.2.3",
        local_ip="192.0.2.1", local_port=8443,
        server_name="www.example.com", server_port=443, host="alias.example.com",
        request_line=b"GET /a/b?x=1&y=2 HTTP/1.1", method=b"GET", path=b"/a/b",
        query=b"x=1&y=2", protocol=b"HTTP/1.1",
        status=502, original_status=200, body_bytes=1234,
        bytes_in=321, bytes_out=1500,
        start_ns=START_NS, end_ns=START_NS + DURATION_NS,
        request_headers=[
            (b"Host", b"alias.example.com"),
            (b"User-Agent", b"curl/8.0"),
            (b"X-Multi", b"one"),
            (b"Referer", b"http://ref.example/"),
            (b"x-multi", b"two"),
            (b"Cookie", b"a=1; sess= abc123 ; empty="),
            (b"Cookie", b"second=2"),
            (b"X-Empty", b""),
        ],
        response_headers=[
            (b"Content-Type", b"text/html; charset=utf-8"),
            (b"Set-Cookie", b"s=1"),
            (b"set-cookie", b"t=2"),
            (b"Server", b"origin"),
        ],
        request_trailers=[(b"X-Checksum", b"abc")],
        response_trailers=[(b"Grpc-Status", b"0")],
        env={"BALANCER_WORKER_NAME": "http://b1:8080", "EMPTY": ""},
        notes={"proxy-status": "ok"},
        keepalive_count=3, conn_status="+", handler="proxy-server",
        filename="proxy:http://b1:8080/a/b", remote_user="alice", request_id="YZ12ab",
    )
    return dataclasses.replace(record, **changes)
