"""LogFormat compilation: every code, escaping, status conditions, times and bad formats."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from portico.logs.format import compile_format, escape_bytes, escape_str
from tests.logs.records import DURATION_NS, START_NS, START_SEC, make_record


@pytest.fixture
def mst() -> Iterator[None]:
    """Run in a fixed time zone (UTC-7, no DST) so %t output is predictable."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "MST+7"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


def fmt(format_string: str, **changes: object) -> str:
    return compile_format(format_string)(make_record(**changes))


# ---------------------------------------------------------------------------- each code

@pytest.mark.parametrize(("code", "expected"), [
    ("%%", "%"),
    ("%a", "203.0.113.7"),
    ("%{c}a", "10.1.2.3"),
    ("%A", "192.0.2.1"),
    ("%B", "1234"),
    ("%b", "1234"),
    ("%{sess}C", "abc123"),
    ("%{a}C", "1"),
    ("%{second}C", "2"),
    ("%{empty}C", ""),
    ("%{nope}C", "-"),
    ("%D", str(DURATION_NS // 1000)),
    ("%{BALANCER_WORKER_NAME}e", "http://b1:8080"),
    ("%{EMPTY}e", ""),
    ("%{MISSING}e", "-"),
    ("%f", "proxy:http://b1:8080/a/b"),
    ("%h", "203.0.113.7"),
    ("%{c}h", "10.1.2.3"),
    ("%H", "HTTP/1.1"),
    ("%{User-Agent}i", "curl/8.0"),
    ("%{user-agent}i", "curl/8.0"),
    ("%{X-MULTI}i", "one, two"),
    ("%{X-Empty}i", ""),
    ("%{X-Absent}i", "-"),
    ("%k", "3"),
    ("%l", "-"),
    ("%L", "YZ12ab"),
    ("%m", "GET"),
    ("%{proxy-status}n", "ok"),
    ("%{other}n", "-"),
    ("%{Server}o", "origin"),
    ("%{Set-Cookie}o", "s=1, t=2"),
    ("%{Content-Type}o", "text/html"),
    ("%{X-Absent}o", "-"),
    ("%p", "443"),
    ("%{canonical}p", "443"),
    ("%{local}p", "8443"),
    ("%{remote}p", "51234"),
    ("%q", "?x=1&y=2"),
    ("%r", "GET /a/b?x=1&y=2 HTTP/1.1"),
    ("%R", "proxy-server"),
    ("%s", "200"),
    ("%<s", "200"),
    ("%>s", "502"),
    ("%T", "2"),
    ("%{s}T", "2"),
    ("%{ms}T", "2345"),
    ("%{us}T", "2345678"),
    ("%u", "alice"),
    ("%U", "/a/b"),
    ("%v", "www.example.com"),
    ("%V", "alias.example.com"),
    ("%X", "+"),
    ("%I", "321"),
    ("%O", "1500"),
    ("%S", "1821"),
    ("%{x-checksum}^ti", "abc"),
    ("%{X-Absent}^ti", "-"),
    ("%{grpc-status}^to", "0"),
    ("%{sec}t", str(START_SEC)),
    ("%{msec}t", str(START_NS // 1_000_000)),
    ("%{usec}t", str(START_NS // 1_000)),
    ("%{msec_frac}t", "123"),
    ("%{usec_frac}t", "123456"),
    ("%{begin:sec}t", str(START_SEC)),
    ("%{end:sec}t", str(START_SEC + 2)),
    ("%{end:msec_frac}t", "469"),
    ("%{end:usec_frac}t", "469135"),
])
def test_each_code(code: str, expected: str) -> None:
    assert fmt(code) == expected


def test_pid_and_thread_codes() -> None:
    assert fmt("%P") == fmt("%{pid}P") == str(os.getpid())
    assert fmt("%{tid}P") == str(threading.get_ident())
    assert fmt("%{hextid}P") == f"{threading.get_ident():x}"


def test_pid_is_read_when_formatting_not_when_compiling() -> None:
    # Compiled in the master, used in forked workers: the pid must be the worker's.
    formatter = compile_format("%P")
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report what the formatter says, then leave without cleanup
        os.write(writer, formatter(make_record()).encode())
        os._exit(0)
    os.close(writer)
    try:
        got = os.read(reader, 100).decode()
    finally:
        os.close(reader)
        os.waitpid(pid, 0)
    assert got == str(pid)


@pytest.mark.parametrize(("code", "changes", "expected"), [
    ("%b", {"body_bytes": 0}, "-"),
    ("%B", {"body_bytes": 0}, "0"),
    ("%q", {"query": b""}, ""),
    ("%u", {"remote_user": ""}, "-"),
    ("%L", {"request_id": ""}, "-"),
    ("%f", {"filename": ""}, "-"),
    ("%R", {"handler": ""}, "-"),
    ("%s", {"original_status": 0}, "-"),
    ("%a", {"remote_ip": ""}, "-"),
    ("%X", {"conn_status": "X"}, "X"),
    ("%{Content-Type}o", {"response_headers": [(b"content-type", b"image/png")]}, "image/png"),
    ("%{Content-Type}o", {"response_headers": []}, "-"),
])
def test_absent_and_edge_values(code: str, changes: dict[str, object], expected: str) -> None:
    assert fmt(code, **changes) == expected


def test_common_and_combined(mst: None) -> None:
    common = '%h %l %u %t \\"%r\\" %>s %b'
    assert fmt(common) == (
        '203.0.113.7 - alice [10/Oct/2000:13:55:36 -0700] "GET /a/b?x=1&y=2 HTTP/1.1" 502 1234')
    combined = common + ' \\"%{Referer}i\\" \\"%{User-agent}i\\"'
    assert fmt(combined).endswith(' 502 1234 "http://ref.example/" "curl/8.0"')


# ---------------------------------------------------------------------------------- times

def test_default_time_in_local_zone(mst: None) -> None:
    assert fmt("%t") == "[10/Oct/2000:13:55:36 -0700]"
    assert fmt("%{begin:}t") == "[10/Oct/2000:13:55:36 -0700]"
    assert fmt("%{end:}t") == "[10/Oct/2000:13:55:38 -0700]"


def test_default_time_with_half_hour_east_offset() -> None:
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "IST-5:30"
    time.tzset()
    try:
        assert fmt("%t") == "[11/Oct/2000:02:25:36 +0530]"
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def test_strftime_time_and_manual_millisecond_example(mst: None) -> None:
    assert fmt("%{%Y-%m-%d %H:%M:%S}t") == "2000-10-10 13:55:36"
    assert fmt("%{end:%H:%M:%S}t") == "13:55:38"
    assert fmt("%{%d/%b/%Y %T}t.%{msec_frac}t %{%z}t") == "10/Oct/2000 13:55:36.123 -0700"


def test_time_cache_follows_the_second(mst: None) -> None:
    # One compiled formatter, records in different seconds: the cache must not go stale.
    formatter = compile_format("%t|%{%S}t")
    first = formatter(make_record())
    later = formatter(make_record(start_ns=START_NS + 61 * 1_000_000_000))
    again = formatter(make_record(start_ns=START_NS + 999_000))
    assert first == "[10/Oct/2000:13:55:36 -0700]|36"
    assert later == "[10/Oct/2000:13:56:37 -0700]|37"
    assert again == first


# ------------------------------------------------------------------------------- escaping

@pytest.mark.parametrize(("raw", "escaped"), [
    (b"plain text", "plain text"),
    (b'say "hi"', 'say \\"hi\\"'),
    (b"back\\slash", "back\\\\slash"),
    (b"a\tb\nc\rd\x0be\x08f", "a\\tb\\nc\\rd\\ve\\bf"),
    (b"\x00\x01\x1b\x7f", "\\x00\\x01\\x1b\\x7f"),
    (b"caf\xc3\xa9 \xff", "caf\\xc3\\xa9 \\xff"),
    (b"\x0c", "\\x0c"),   # form feed has no C escape in httpd's table
    (b"", ""),
])
def test_escape_bytes(raw: bytes, escaped: str) -> None:
    assert escape_bytes(raw) == escaped


def test_escape_str_uses_utf8_bytes() -> None:
    assert escape_str("café") == "caf\\xc3\\xa9"
    assert escape_str('x"y') == 'x\\"y'


@pytest.mark.parametrize("code", ["%r", "%{X-Evil}i", "%{X-Evil}o", "%U", "%q", "%m", "%H",
                                  "%{EVIL}e", "%{evil}n", "%{evil}C", "%{X-Evil}^ti",
                                  "%{X-Evil}^to"])
def test_untrusted_values_are_escaped(code: str) -> None:
    evil = b'"\\\n\xff'
    record_changes: dict[str, object] = {
        "request_line": evil, "path": evil, "query": evil, "method": evil, "protocol": evil,
        "request_headers": [(b"X-Evil", evil), (b"Cookie", b"evil=" + evil)],
        "response_headers": [(b"X-Evil", evil)],
        "request_trailers": [(b"X-Evil", evil)],
        "response_trailers": [(b"X-Evil", evil)],
        "env": {"EVIL": evil.decode("latin-1")}, "notes": {"evil": '"\\\n'},
    }
    out = fmt(code, **record_changes)
    assert "\n" not in out and "\xff" not in out
    assert out.lstrip("?").startswith('\\"\\\\\\n')


@pytest.mark.parametrize(("code", "field", "value", "expected"), [
    ("%u", "remote_user", 'bob "x"', 'bob \\"x\\"'),
    ("%f", "filename", "proxy:http://b/\x01", "proxy:http://b/\\x01"),
    ("%v", "server_name", "a\tb", "a\\tb"),
    ("%V", "host", "h\\", "h\\\\"),
    ("%h", "remote_ip", "x\ny", "x\\ny"),
])
def test_trusted_looking_strings_are_escaped_too(
    code: str, field: str, value: str, expected: str,
) -> None:
    assert fmt(code, **{field: value}) == expected


# ------------------------------------------------------------------- literal text escapes

def test_literal_escapes_in_format() -> None:
    assert fmt('a\\tb\\nc\\"d\\\\e\\rf') == 'a\tb\nc"d\\e\rf'
    assert fmt("keep \\z and \\") == "keep \\z and \\"  # unknown escapes stay as written


def test_braces_and_quotes_in_literals_are_inert() -> None:
    assert fmt("{%m} {{x}} '\"' {r} %>s") == "{GET} {{x}} '\"' {r} 502"
    # Both quote kinds tripled, a backslash before N{...} and a NUL: all stay plain text.
    tricky = "\\N{DASH} ''' \"\"\" \x00"
    assert fmt(tricky + "%m") == tricky + "GET"
    assert fmt("") == ""
    assert fmt("no codes at all") == "no codes at all"


# --------------------------------------------------------------------- status conditions

@pytest.mark.parametrize(("format_string", "status", "expected"), [
    ("%400,501{User-agent}i", 400, "curl/8.0"),
    ("%400,501{User-agent}i", 501, "curl/8.0"),
    ("%400,501{User-agent}i", 200, "-"),
    ("%!200,304,302{Referer}i", 200, "-"),
    ("%!200,304,302{Referer}i", 404, "http://ref.example/"),
    ("%404U", 404, "/a/b"),
    ("%404U", 403, "-"),
    ("%!404>s", 500, "500"),
    ("%!404>s", 404, "-"),
    ("%{User-agent}404i", 404, "curl/8.0"),   # modifiers may follow the argument
    ("%<200s", 200, "200"),                     # the condition reads the final status
])
def test_status_conditions(format_string: str, status: int, expected: str) -> None:
    assert fmt(format_string, status=status, original_status=200) == expected


def test_original_and_final_markers_are_accepted_everywhere() -> None:
    assert fmt("%<U %>U %<{User-agent}i %>{User-agent}i") == "/a/b /a/b curl/8.0 curl/8.0"


# ---------------------------------------------------------------------------- bad formats

@pytest.mark.parametrize(("format_string", "message"), [
    ("%Z", "unrecognized"),
    ("%h %j", "%j"),
    ("%{User-agent", "unclosed"),
    ("abc %", "ends inside"),
    ("%{x}", "ends inside"),
    ("%400,", "ends inside"),
    ("%^tx", "unrecognized"),
    ("%{hours}T", "unit"),
    ("%{foo}p", "canonical, local or remote"),
    ("%{foo}P", "pid, tid or hextid"),
])
def test_bad_formats_raise(format_string: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compile_format(format_string)


def test_arguments_are_ignored_where_httpd_ignores_them() -> None:
    assert fmt("%{whatever}m %{x}b") == "GET 1234"
