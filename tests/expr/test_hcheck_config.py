"""ProxyHCExpr, ProxyHCTemplate, ProxyHCTPsize and the hcexpr=/hctemplate= checks."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from portico.config import ConfigError, load_config
from portico.config.build import BuildState, ServerScope, walk
from portico.config.directives.hcheck import hcheck_fields
from portico.config.model import Source
from portico.config.preprocess import preprocess
from portico.config.registry import default_registry, module_is_implemented
from portico.expr import EvalContext


def build(path: Path) -> dict[str, object]:
    """Walk a config the way load_config does and return the health-check fields."""
    registry = default_registry()
    tree = preprocess(str(path), (), None, module_known=module_is_implemented,
                      directive_known=registry.knows)
    state = BuildState(source_file=str(path), server_root=str(path.parent),
                       defines=tree.defines, main=ServerScope(Source(str(path), 1), True))
    walk(registry, state, tree.nodes, state.main)
    return hcheck_fields(state, state.workers.freeze())


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "main.conf"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


GOOD = r"""
Define WANT 204
ProxyHCExpr ok234 {%{REQUEST_STATUS} =~ /^[234]/}
ProxyHCExpr in_maint {hc('body') !~ /Under maintenance/}
ProxyHCExpr quoted "%{REQUEST_STATUS} -in {'200', '${WANT}'}"
ProxyHCExpr spaced { resp('X-Msg')  ==  'a  b' && hc('body') =~ /it's "up"/ }
ProxyHCTemplate tcp5 hcmethod=tcp hcinterval=5
ProxyHCTemplate web hctemplate=tcp5 hcmethod=GET hcuri=/health hcexpr=ok234
ProxyHCTPsize 4
<Proxy balancer://app>
    BalancerMember http://127.0.0.1:8001/ hcmethod=GET hcexpr=in_maint hcuri=/status.php
    BalancerMember http://127.0.0.1:8002/ hctemplate=tcp5
    BalancerMember http://127.0.0.1:8003/ hctemplate=WEB hcpasses=3 hcinterval=2
    BalancerMember http://127.0.0.1:8004/ hcexpr=spaced
</Proxy>
"""


def test_good_config(tmp_path: Path) -> None:
    fields = build(write(tmp_path, GOOD))
    exprs = fields["hc_exprs"]
    assert set(exprs) == {"ok234", "in_maint", "quoted", "spaced"}  # type: ignore[arg-type]
    ok = exprs["ok234"]  # type: ignore[index]
    assert ok.text == "%{REQUEST_STATUS} =~ /^[234]/"
    assert ok.source.line == 2 and ok.expr.evaluate(EvalContext(404, {}, b""))
    assert not ok.expr.evaluate(EvalContext(503, {}, b""))
    quoted = exprs["quoted"].expr  # type: ignore[index]
    assert quoted.evaluate(EvalContext(204)) and not quoted.evaluate(EvalContext(201))
    spaced = exprs["spaced"]  # type: ignore[index]
    assert spaced.text == " resp('X-Msg')  ==  'a  b' && hc('body') =~ /it's \"up\"/ "
    assert spaced.expr.evaluate(EvalContext(200, {"x-msg": "a  b"}, b'it\'s "up"'))
    assert fields["hc_tpsize"] == 4
    templates = fields["hc_templates"]
    assert templates["tcp5"].pairs == (  # type: ignore[index]
        ("hcmethod", "tcp"), ("hcinterval", "5"), ("hcpasses", "1"), ("hcfails", "1"),
        ("hcuri", ""), ("hcexpr", ""))
    web = templates["web"]  # type: ignore[index]
    assert web.value("hcmethod") == "GET" and web.value("hcinterval") == "5"
    assert web.value("hcexpr") == "ok234" and web.value("hcuri") == "/health"
    workers = {spec.name: spec.params for spec in fields["workers"].values()}  # type: ignore
    first = workers["http://127.0.0.1:8001/"]
    assert (first.hcmethod, first.hcexpr, first.hcuri) == ("GET", "in_maint", "/status.php")
    second = workers["http://127.0.0.1:8002/"]
    assert (second.hcmethod, second.hcinterval, second.hcpasses) == ("TCP", 5.0, 1)
    assert "hcmethod" not in second.explicit
    third = workers["http://127.0.0.1:8003/"]
    # the worker's own keys win over its template's, whatever their order
    assert (third.hcmethod, third.hcinterval, third.hcpasses, third.hcexpr, third.hcuri) == (
        "GET", 2.0, 3, "ok234", "/health")
    assert workers["http://127.0.0.1:8004/"].hcmethod == "NONE"


def test_defaults(tmp_path: Path) -> None:
    fields = build(write(tmp_path, "Listen 8080\n"))
    assert fields["hc_tpsize"] == 16 and not fields["hc_exprs"] and not fields["hc_templates"]


def test_expr_may_follow_its_worker(tmp_path: Path) -> None:
    fields = build(write(tmp_path, """
        BalancerMember balancer://b http://127.0.0.1:8001/ hcexpr=later
        ProxyHCExpr later {true}
    """))
    assert "later" in fields["hc_exprs"]  # type: ignore[operator]


def test_load_config_carries_the_fields(tmp_path: Path) -> None:
    config = load_config(str(write(tmp_path, "ProxyHCExpr ok {true}\nProxyHCTPsize 2\n")))
    assert "ok" in config.hc_exprs and config.hc_tpsize == 2


# (config, line of the error, directive or None, words the message must contain)
BAD = [
    ("ProxyHCExpr ok {%{REQUEST_STATUS} =~ /^[234]/\n", 1, "ProxyHCExpr", "never closed"),
    ("ProxyHCExpr ok\n", 1, "ProxyHCExpr", "missing expression"),
    ("ProxyHCExpr ok {}\n", 1, "ProxyHCExpr", "missing expression"),
    ("ProxyHCExpr ok {true} extra\n", 1, "ProxyHCExpr", "extra parameter(s)"),
    ("ProxyHCExpr sixteen_chars_xx {true}\n", 1, "ProxyHCExpr", "longer than 15"),
    ("# c\nProxyHCExpr bad {%{REQUEST_STATUS} =~ /(/}\n", 2, "ProxyHCExpr",
     "at column 22: bad regular expression"),
    ("ProxyHCExpr bad {%{STATUS} == 200}\n", 1, "ProxyHCExpr",
     "at column 1: unknown variable %{STATUS}"),
    ("ProxyHCExpr a {true}\nProxyHCExpr A {false}\n", 2, "ProxyHCExpr", "already defined at"),
    ("<Location />\nProxyHCExpr a {true}\n</Location>\n", 2, "ProxyHCExpr",
     "not allowed in <Location>"),
    ("ProxyHCTemplate t hcmethod=GET lbset=1\n", 1, "ProxyHCTemplate",
     "unknown Worker hcheck parameter 'lbset'"),
    ("ProxyHCTemplate t hcmethod=FETCH\n", 1, "ProxyHCTemplate", "hcmethod=FETCH"),
    ("ProxyHCTemplate t hcinterval=10ms\n", 1, "ProxyHCTemplate", "at least 100 ms"),
    ("ProxyHCTemplate t hcuri\n", 1, "ProxyHCTemplate", "key=value"),
    ("ProxyHCTemplate t hctemplate=u\n", 1, "ProxyHCTemplate", "unknown ProxyHCTemplate"),
    ("ProxyHCTemplate t\nProxyHCTemplate T\n", 2, "ProxyHCTemplate", "already defined"),
    ("ProxyHCTPsize -1\n", 1, "ProxyHCTPsize", ""),
    ("ProxyHCTPsize many\n", 1, "ProxyHCTPsize", ""),
    ("<VirtualHost *:80>\nProxyHCTPsize 2\n</VirtualHost>\n", 2, "ProxyHCTPsize",
     "not allowed in <VirtualHost>"),
]


@pytest.mark.parametrize(("text", "line", "directive", "words"), BAD)
def test_bad_configs(tmp_path: Path, text: str, line: int, directive: str,
                     words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    error = info.value
    assert (error.file, error.line, error.directive) == (str(path), line, directive)
    assert words in error.message, str(error)
    assert f"main.conf:{line}: {directive}: " in str(error)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("ProxyPass /a http://127.0.0.1:8001/ hcexpr=nope\n", 1,
     "unknown health check condition hcexpr=nope"),
    ("ProxyHCExpr ok {true}\n\nBalancerMember balancer://b http://127.0.0.1:1/ hcexpr=OK2\n",
     3, "(defined with ProxyHCExpr: ok)"),
    ("BalancerMember balancer://b http://127.0.0.1:1/ hctemplate=missing\n", 1,
     "unknown ProxyHCTemplate name 'missing'"),
])
def test_bad_worker_references(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        build(path)
    error = info.value
    assert (error.file, error.line) == (str(path), line)
    assert words in error.message, str(error)


def test_template_expr_must_exist(tmp_path: Path) -> None:
    path = write(tmp_path, "ProxyHCTemplate t hcexpr=ghost\n")
    with pytest.raises(ConfigError) as info:
        build(path)
    assert (info.value.line, info.value.directive) == (1, "ProxyHCTemplate")
    assert "hcexpr=ghost" in info.value.message


def test_included_file_and_continuation(tmp_path: Path) -> None:
    (tmp_path / "hc.conf").write_text(
        "# checks\nProxyHCExpr body_ok {hc('body') =~ /ok/ \\\n  && %{REQUEST_STATUS} -eq 200}\n")
    fields = build(write(tmp_path, f"Include {os.path.join(tmp_path, 'hc.conf')}\n"))
    expr = fields["hc_exprs"]["body_ok"]  # type: ignore[index]
    assert expr.source.file.endswith("hc.conf") and expr.source.line == 2
    assert expr.expr.evaluate(EvalContext(200, {}, b"ok"))
    assert not expr.expr.evaluate(EvalContext(500, {}, b"ok"))
