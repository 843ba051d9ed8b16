"""Evaluation against many health-check responses."""

from __future__ import annotations

import pytest

from portico.expr import EvalContext, compile_expr


def check(text: str, ctx: EvalContext) -> bool:
    return compile_expr(text).evaluate(ctx)


OK = EvalContext(200, {"Content-Type": "text/plain", "X-Health": "green"}, b"all good\n",
                 method="GET", uri="/status?full=1")


@pytest.mark.parametrize(("text", "statuses_true"), [
    ("%{REQUEST_STATUS} =~ /^[234]/", {200, 204, 302, 404}),
    ("%{REQUEST_STATUS} =~ /^[5]/", {500, 503}),
    ("%{REQUEST_STATUS} -ge 200 && %{REQUEST_STATUS} -lt 400", {200, 204, 302}),
    ("%{REQUEST_STATUS} -in {'200', '204'}", {200, 204}),
    ("!(%{REQUEST_STATUS} -gt 399)", {200, 204, 302}),
    ("%{REQUEST_STATUS} == 200 || %{REQUEST_STATUS} eq 302", {200, 302}),
    ("%{REQUEST_STATUS} != '200'", {204, 302, 404, 500, 503}),
    # string order, not numeric: "500" < "60"
    ("%{REQUEST_STATUS} < '60'", {200, 204, 302, 404, 500, 503}),
    ("%{REQUEST_STATUS} -lt 60", set()),
])
def test_status_ranges(text: str, statuses_true: set[int]) -> None:
    expr = compile_expr(text)
    for status in (200, 204, 302, 404, 500, 503):
        assert expr.evaluate(EvalContext(status, {}, b"")) is (status in statuses_true), status


@pytest.mark.parametrize(("text", "body", "expected"), [
    ("hc('body') !~ /Under maintenance/", b"<h1>Under maintenance</h1>", False),
    ("hc('body') !~ /Under maintenance/", b"fine", True),
    ("hc('BODY') =~ /ok/i", b"status: OK", True),
    ("%{HC_BODY} =~ /^ok$/", b"ok", True),
    ("%{hc_body} == 'ok'", "ok", True),
    ("-z hc('body')", b"", True),
    ("-n hc('body')", b"", False),
    ("hc('body') =~ /caf\u00e9/", "caf\u00e9".encode(), True),
    ("hc('body') =~ /\\x00x/", b"\x00x", True),
    ("hc('body') =~ /^a.b$/", b"a\xffb", True),              # invalid UTF-8 survives
    ("hc('body') =~ /\"status\":\\s*\"up\"/", b'{"status": "up"}', True),
    ("hc('body') =~ m#<b>(\\w+)</b># && $1 == 'up'", b"x <b>up</b> y", True),
    ("hc('body') =~ m#<b>(\\w+)</b># && $1 == 'up'", b"x <b>down</b> y", False),
    ("hc('body') =~ /(a)/ && '$0-$1-$2' == 'a-a-'", b"a", True),
    ("$1 == ''", b"", True),                                   # no match yet
])
def test_body(text: str, body: bytes | str, expected: bool) -> None:
    assert check(text, EvalContext(200, {}, body)) is expected


def test_headers_are_case_insensitive() -> None:
    assert check("resp('x-health') == 'green'", OK)
    assert check("%{resp:X-HEALTH} == 'green'", OK)
    assert check("%{HTTP:content-type} =~ m#^text/#", OK)
    assert check("http('Content-Type') == 'text/plain'", OK)
    assert check("-z resp('Missing')", OK)
    assert not check("-n %{resp:Missing}", OK)


def test_request_variables() -> None:
    assert check("%{REQUEST_METHOD} == 'GET' && %{request_uri} == '/status'", OK)
    assert check("%{QUERY_STRING} == 'full=1'", OK)
    ctx = EvalContext(200, variables={"REMOTE_ADDR": "10.1.2.3", "ZONE": "b"})
    assert check("%{REMOTE_ADDR} -ipmatch '10.0.0.0/8'", ctx)
    assert not check("%{REMOTE_ADDR} -ipmatch '192.168.0.0/16'", ctx)
    assert check("%{env:ZONE} == 'b' && env('ZONE') == reqenv('ZONE')", ctx)
    assert check("-z %{SERVER_NAME}", ctx)


def test_functions_and_concatenation() -> None:
    assert check("tolower(resp('X-Health')) == 'green'", OK)
    assert check("toupper('ab') == 'AB' && tolower(\"CD\") == 'cd'", OK)
    assert check("'a'.'b'.%{REQUEST_METHOD} == 'abGET'", OK)
    assert check("\"%{REQUEST_METHOD} %{REQUEST_URI}\" == 'GET /status'", OK)
    assert check("base64('hi') == 'aGk=' && unbase64('aGk=') == 'hi'", OK)
    assert check("md5('') == 'd41d8cd98f00b204e9800998ecf8427e'", OK)
    assert check("sha1('abc') == 'a9993e364706816aba3e25717850c26c9cd0d89d'", OK)
    assert check("escape('a b') == 'a%20b' && unescape('a%20b') == 'a b'", OK)


def test_unary_and_wildcards() -> None:
    for value, truthy in (("", False), ("0", False), ("off", False), ("False", False),
                          ("no", False), ("1", True), ("yes", True)):
        ctx = EvalContext(200, {"X": value})
        assert check("-T resp('X')", ctx) is truthy, value
    assert check("'/a/b.txt' -strmatch '/a/*.txt'", OK)
    assert check("'/a/b/c.txt' -strmatch '/a/*.txt'", OK)
    assert not check("'/a/b/c.txt' -fnmatch '/a/*.txt'", OK)
    assert check("'/a/b.txt' -fnmatch '/a/?.txt'", OK)
    assert check("'ABC' -strcmatch 'a[b]?'", OK)
    assert not check("'ABC' -strmatch 'a[b]?'", OK)
    assert check("'x1' -strmatch 'x[!a-c]'", OK)


def test_ipmatch() -> None:
    assert check("'10.1.2.3' -ipmatch '10.1.2.0/24'", OK)
    assert check("'10.1.2.3' -ipmatch '10.1.2.3'", OK)
    assert not check("'10.1.3.3' -ipmatch '10.1.2.0/24'", OK)
    assert check("'::1' -ipmatch '::/64'", OK)
    assert not check("'::1' -ipmatch '10.0.0.0/8'", OK)


def test_dynamic_operands() -> None:
    ctx = EvalContext(503, {"Want": "503", "Net": "10.0.0.0/8", "Pat": "up*"}, b"upstream")
    assert check("%{REQUEST_STATUS} -eq resp('Want')", ctx)
    assert check("%{REQUEST_STATUS} -in {resp('Want'), '200'}", ctx)
    assert check("'10.9.9.9' -ipmatch resp('Net')", ctx)
    assert check("hc('body') -strmatch resp('Pat')", ctx)
    assert check("hc(tolower('BODY')) == 'upstream'", ctx)


def test_evaluation_errors_are_false_and_explained() -> None:
    expr = compile_expr("resp('X') -eq 1")
    ctx = EvalContext(200, {"X": "one"})
    assert expr.evaluate(ctx) is False
    assert expr.explain(ctx) == (False, "'one' is not an integer (column 11)")
    assert expr.explain(EvalContext(200, {"X": " 1 "})) == (True, None)
    # ! of an error is still an error, not True
    assert compile_expr("!(resp('X') -eq 1)").evaluate(ctx) is False
    bad_ip = compile_expr("resp('X') -ipmatch '10.0.0.0/8'")
    assert bad_ip.explain(ctx) == (False, "'one' is not an IP address (column 11)")


def test_short_circuit_and_reuse() -> None:
    # The right side is not evaluated when the left decides (no error from it).
    assert check("true || resp('X') -eq 1", EvalContext(200, {"X": "nope"}))
    assert not check("false && resp('X') -eq 1", EvalContext(200, {"X": "nope"}))
    expr = compile_expr("hc('body') =~ /(\\d+)/ && $1 -ge 5")
    # One compiled expression, many contexts; the backreference does not leak between runs.
    results = [expr.evaluate(EvalContext(200, {}, body)) for body in (b"7", b"x", b"3", b"9")]
    assert results == [True, False, False, True]
    assert not compile_expr("$1 == '7'").evaluate(EvalContext(200, {}, b"7"))


def test_context_is_not_changed() -> None:
    headers = {"X-A": "1"}
    ctx = EvalContext(200, headers, b"body")
    compile_expr("resp('x-a') == '1' && hc('body') == 'body'").evaluate(ctx)
    assert headers == {"X-A": "1"} and ctx.body == b"body" and ctx.status == 200
