"""mod_proxy_hcheck directives: ProxyHCExpr, ProxyHCTemplate, ProxyHCTPsize (§10.2), and the
load-time checks that tie workers' ``hcexpr=`` / ``hctemplate=`` to them.

How it works: definitions are collected while the config is walked (``hc_table``); once the
whole config is read, ``hcheck_fields`` applies templates to the workers that name them,
checks every ``hcexpr=`` names a defined expression and returns the ServerConfig fields.
Unlike httpd, a ProxyHCExpr may come after the worker that uses it (docs/compat.md).

The expression of ProxyHCExpr is read from the directive's raw argument text, because the
word splitter drops the quotes inside ``{... 'a b' ...}``: ``{...}`` is one argument running
to the matching brace, as httpd's ap_getword_conf2 reads it.
"""

from __future__ import annotations

__all__ = ["TABLE", "HCTable", "hc_table", "hcheck_fields"]

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from types import MappingProxyType

from portico.config.build import BuildContext, BuildState
from portico.config.directives.common import integer, key_value_pairs
from portico.config.lexer import read_logical_lines
from portico.config.model import HC_TEMPLATE_KEYS, HCExpr, HCTemplate, Source, WorkerSpec
from portico.config.params import parse_worker_params
from portico.config.registry import Context, DirectiveTable
from portico.config.tree import Node
from portico.errors import ConfigError
from portico.expr import ExprError, compile_expr

TABLE = DirectiveTable("hcheck")

SV = Context.SERVER | Context.VHOST

_log = logging.getLogger("portico.config")

#: httpd keeps expression names in a 16-byte field (PROXY_WORKER_MAX_SCHEME_SIZE).
EXPR_NAME_LIMIT = 15
#: Keys a template may carry (hctemplate= copies another, earlier, template).
_TEMPLATE_KEYS = frozenset({*HC_TEMPLATE_KEYS, "hctemplate"})
_TEMPLATE_DEFAULTS = {"hcmethod": "TCP", "hcinterval": "30", "hcpasses": "1", "hcfails": "1",
                      "hcuri": "", "hcexpr": ""}
_VAR = re.compile(r"\$\{([^}]+)\}")


@dataclasses.dataclass
class HCTable:
    """Health-check definitions collected during the walk, keyed by lowercased name."""

    exprs: dict[str, HCExpr] = dataclasses.field(default_factory=dict)
    templates: dict[str, HCTemplate] = dataclasses.field(default_factory=dict)
    tpsize: int = 16


def hc_table(state: BuildState) -> HCTable:
    """The HCTable of this config walk, created on first use.

    Kept as an attribute of the BuildState (until BuildState has a field for it), so two
    loads never share definitions.
    """
    table = getattr(state, "hcheck", None)
    if table is None:
        table = HCTable()
        state.hcheck = table  # type: ignore[attr-defined]
    return table


# -- ProxyHCExpr ------------------------------------------------------------------------------


@TABLE.directive("ProxyHCExpr", SV, args=(1, None))
def _proxy_hc_expr(ctx: BuildContext, node: Node) -> None:
    name, text, rest = _split_expr_arguments(ctx, _raw_arguments(ctx, node))
    if not name:
        raise ctx.error("missing expression name")
    if len(name) > EXPR_NAME_LIMIT:
        raise ctx.error(f"expression name {name!r} is longer than {EXPR_NAME_LIMIT} "
                        "characters")
    if not text.strip():
        raise ctx.error(f"missing expression for {name!r} (write ProxyHCExpr {name} "
                        "{expression})")
    if rest.strip():
        raise ctx.error(f"extra parameter(s) after the expression: {rest.strip()!r}")
    table = hc_table(ctx.state)
    previous = table.exprs.get(name.lower())
    if previous is not None:
        raise ctx.error(f"expression {name!r} is already defined at {previous.source}")
    try:
        expr = compile_expr(text, node.file, node.line)
    except ExprError as exc:
        where = f" at column {exc.column}" if exc.column is not None else ""
        raise ctx.error(f"could not parse expression \"{text}\"{where}: {exc.message}") \
            from None
    table.exprs[name.lower()] = HCExpr(name, text, expr, ctx.source)


def _raw_arguments(ctx: BuildContext, node: Node) -> str:
    """The directive's argument text as written (after ${VAR} substitution)."""
    raw = getattr(node, "raw", None)
    if isinstance(raw, str):
        return raw
    reread = _reread_arguments(ctx.state, node)
    if reread is not None:
        return reread
    # Lossy (quotes inside the expression are gone) but only reached if the file changed
    # under us between reading and building.
    _log.warning("%s:%d: could not re-read %s; using its split words", node.file, node.line,
                 node.name)
    return " ".join(node.args)


def _reread_arguments(state: BuildState, node: Node) -> str | None:
    try:
        lines = read_logical_lines(node.file)
    except ConfigError:
        return None
    for entry in lines:
        if entry.line != node.line:
            continue
        parts = entry.text.split(None, 1)
        if parts[0].lower() != node.name.lower():
            return None
        return _substitute(state, parts[1] if len(parts) > 1 else "")
    return None


def _substitute(state: BuildState, text: str) -> str:
    """${VAR} as the preprocessor resolves it: Define'd values, then the environment."""
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        value = state.defines.get(name)
        if value is not None:
            return value
        return os.environ.get(name, match.group(0))
    return _VAR.sub(replace, text)


def _split_expr_arguments(ctx: BuildContext, raw: str) -> tuple[str, str, str]:
    """(name, expression, what follows) from ``name {expr}`` / ``name "expr"`` / ``name expr``."""
    name, pos = _conf_word(ctx, raw, 0)
    while pos < len(raw) and raw[pos].isspace():
        pos += 1
    if pos < len(raw) and raw[pos] == "{":
        depth, start = 0, pos
        while pos < len(raw):
            if raw[pos] == "{":
                depth += 1
            elif raw[pos] == "}":
                depth -= 1
                if depth == 0:
                    return name, raw[start + 1:pos], raw[pos + 1:]
            pos += 1
        raise ctx.error("the expression's '{' is never closed by a matching '}'")
    text, pos = _conf_word(ctx, raw, pos)
    return name, text, raw[pos:]


def _conf_word(ctx: BuildContext, raw: str, pos: int) -> tuple[str, int]:
    """One config word at ``pos`` (quotes as the config lexer reads them); (word, next pos)."""
    while pos < len(raw) and raw[pos].isspace():
        pos += 1
    if pos < len(raw) and raw[pos] in "\"'":
        quote, chunk = raw[pos], []
        pos += 1
        while pos < len(raw) and raw[pos] != quote:
            if raw[pos] == "\\" and pos + 1 < len(raw) and raw[pos + 1] == quote:
                pos += 1
            chunk.append(raw[pos])
            pos += 1
        if pos >= len(raw):
            raise ctx.error(f"unterminated {quote} quote")
        return "".join(chunk), pos + 1
    start = pos
    while pos < len(raw) and not raw[pos].isspace():
        pos += 1
    return raw[start:pos], pos


# -- ProxyHCTemplate and ProxyHCTPsize ------------------------------------------------------------


@TABLE.directive("ProxyHCTemplate", SV, args=(1, None))
def _proxy_hc_template(ctx: BuildContext, node: Node) -> None:
    name = node.args[0]
    pairs = key_value_pairs(ctx, node.args[1:])
    table = hc_table(ctx.state)
    previous = table.templates.get(name.lower())
    if previous is not None:
        raise ctx.error(f"template {name!r} is already defined at {previous.source}")
    values = dict(_TEMPLATE_DEFAULTS)
    for key, value in pairs:
        lowered = key.lower()
        if lowered not in _TEMPLATE_KEYS:
            raise ctx.error(f"unknown Worker hcheck parameter {key!r} (a template takes "
                            f"{', '.join(sorted(_TEMPLATE_KEYS))})")
        if lowered == "hctemplate":
            base = table.templates.get(value.lower())
            if base is None:
                raise ctx.error(f"unknown ProxyHCTemplate name {value!r} (define it before "
                                "the template that copies it)")
            values.update(base.pairs)
            continue
        parse_worker_params([(key, value)], ctx.source)   # validates, located here
        values[lowered] = value
    resolved = tuple((key, values[key]) for key in HC_TEMPLATE_KEYS)
    table.templates[name.lower()] = HCTemplate(name, resolved, ctx.source)


@TABLE.directive("ProxyHCTPsize", Context.SERVER)
def _proxy_hc_tpsize(ctx: BuildContext, node: Node) -> None:
    hc_table(ctx.state).tpsize = integer(ctx, node.args[0], 0)


# -- after the walk -----------------------------------------------------------------------------


def hcheck_fields(state: BuildState, workers: Mapping[str, WorkerSpec]) -> dict[str, object]:
    """ServerConfig fields ``workers`` (templates applied), ``hc_exprs``, ``hc_templates`` and
    ``hc_tpsize``, after checking every ``hcexpr=`` and ``hctemplate=`` names a definition.

    A template's values go under the worker's own: a key the worker gives itself wins,
    whatever the order on the line (docs/compat.md). Raises ConfigError at the worker's or
    template's file:line.
    """
    table = hc_table(state)
    for template in table.templates.values():
        _check_expr_name(table, template.value("hcexpr"), template.source, "ProxyHCTemplate")
    updated: dict[str, WorkerSpec] = {}
    for key, worker in workers.items():
        worker = _apply_template(table, worker)
        _check_expr_name(table, worker.params.hcexpr, worker.source, None)
        updated[key] = worker
    return {
        "workers": MappingProxyType(updated),
        "hc_exprs": MappingProxyType(dict(table.exprs)),
        "hc_templates": MappingProxyType(dict(table.templates)),
        "hc_tpsize": table.tpsize,
    }


def _apply_template(table: HCTable, worker: WorkerSpec) -> WorkerSpec:
    params = worker.params
    if not params.hctemplate:
        return worker
    template = table.templates.get(params.hctemplate.lower())
    if template is None:
        raise ConfigError(f"worker {worker.name}: unknown ProxyHCTemplate name "
                          f"{params.hctemplate!r}", worker.source.file, worker.source.line)
    pairs = [(key, value) for key, value in template.pairs if key not in params.explicit]
    applied = parse_worker_params(pairs, worker.source, base=params)
    # The template's keys are not the config's own words for this worker.
    applied = dataclasses.replace(applied, explicit=params.explicit)
    return dataclasses.replace(worker, params=applied)


def _check_expr_name(table: HCTable, name: str, source: Source, directive: str | None) -> None:
    if name and name.lower() not in table.exprs:
        defined = ", ".join(sorted(expr.name for expr in table.exprs.values())) or "none"
        raise ConfigError(f"unknown health check condition hcexpr={name} (defined with "
                          f"ProxyHCExpr: {defined})", source.file, source.line, directive)
