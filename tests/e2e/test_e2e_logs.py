"""Logging (§20): CustomLog with the combined format and a custom LogFormat; ErrorLog lines
for a failed backend."""

from __future__ import annotations

import re

import pytest

from tests.e2e.rawhttp import RawConn, request_bytes
from tests.support.origin import Origin
from tests.support.proxy import Portico, free_port

CONF = r"""
LogFormat "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"" combined
LogFormat "%>s %D %{X-Foo}i %{BALANCER_WORKER_NAME}e %m %U %q %H" custom
CustomLog {{access_log}} combined
CustomLog {{tmp}}/custom.log custom
LogFormat "%I %O %S %U" io
CustomLog {{tmp}}/io.log io
ProxyPass /o {{o}}
ProxyPass /refused http://127.0.0.1:{{dead_port}}
"""

DEAD_PORT = free_port()


@pytest.fixture(scope="module")
def proxy(module_origin: Origin, module_proxy_factory) -> Portico:
    return module_proxy_factory(CONF, o=module_origin.url, dead_port=DEAD_PORT)


def get(proxy: Portico, target: str, headers: list[tuple[str, str]]) -> int:
    with RawConn(proxy.port) as conn:
        return conn.request("GET", target, headers=headers).status


def log_line(proxy: Portico, which: str, needle: str) -> str:
    text = proxy.wait_for_log(which, needle)
    return next(ln for ln in text.splitlines() if needle in ln)


def test_combined_format_line(proxy, morigin):
    status = get(proxy, "/o/echo?combined=1", [("Referer", "http://ref.example/"),
                                                ("User-Agent", "e2e-agent/1.0")])
    assert status == 200
    line = log_line(proxy, "access_log", "combined=1")
    assert re.fullmatch(
        r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
        r'"GET /o/echo\?combined=1 HTTP/1\.1" 200 \d+ "http://ref\.example/" "e2e-agent/1\.0"',
        line), line


def test_custom_format_line(proxy, morigin):
    assert get(proxy, "/o/echo/custom?q=2", [("X-Foo", "foo-value")]) == 200
    line = log_line(proxy, "custom.log", "/o/echo/custom")
    # %D is microseconds; an environment variable that is not set (no balancer) logs "-".
    assert re.fullmatch(r"200 \d+ foo-value - GET /o/echo/custom \?q=2 HTTP/1\.1", line), line


def test_missing_request_header_logs_dash(proxy, morigin):
    assert get(proxy, "/o/echo/nofoo", []) == 200
    line = log_line(proxy, "custom.log", "/o/echo/nofoo")
    assert line.split(" ")[2] == "-"


def test_failed_backend_is_logged_in_error_log_and_access_log(proxy, morigin):
    before = len(proxy.error_log)
    assert get(proxy, "/refused/x", []) == 503
    proxy.wait_for_log("access_log", '"GET /refused/x HTTP/1.1" 503')
    # The wording is ours to choose; the line must at least name the backend that failed.
    proxy.wait_for_log("error_log", str(DEAD_PORT), since=before)


def io_counts(proxy: Portico, path: str) -> tuple[int, int, int]:
    fields = log_line(proxy, "io.log", f" {path}").split(" ")
    assert fields[3] == path, fields
    return int(fields[0]), int(fields[1]), int(fields[2])


def test_bytes_in_count_the_request_line_and_headers(proxy, morigin):
    raw = request_bytes("GET", "/o/echo/io-get", headers=[("User-Agent", "io/1"),
                                                          ("X-Pad", "p" * 50)])
    with RawConn(proxy.port) as conn:
        conn.send(raw)
        assert conn.read_final().status == 200
    received, sent, both = io_counts(proxy, "/o/echo/io-get")
    assert received == len(raw)   # %I: every byte of the request as it came off the wire
    assert both == received + sent


def test_bytes_in_count_a_body_sent_in_pieces(proxy, morigin):
    # Head, then each chunk in a write of its own: %I is still every byte sent,
    # chunk framing included (mod_logio counts below the dechunking filter).
    head = request_bytes("POST", "/o/echo/io-chunked",
                         headers=[("Transfer-Encoding", "chunked")])
    pieces = [head, b"5\r\nhello\r\n", b"6\r\n world\r\n", b"0\r\n\r\n"]
    with RawConn(proxy.port) as conn:
        for piece in pieces:
            conn.send(piece)
        assert conn.read_final("POST").status == 200
    received, sent, both = io_counts(proxy, "/o/echo/io-chunked")
    assert received == sum(map(len, pieces))
    assert both == received + sent
