"""The request environment: mod_setenvif's SetEnvIf family and mod_env's SetEnv/UnsetEnv/PassEnv.

Server-level SetEnvIf* rules run before routing, as httpd runs them in post_read_request, so
they can set ``no-proxy`` or the variables an ``interpolate`` rule uses; a Location's run
after the Locations are merged (httpd's header_parser). SetEnv, UnsetEnv and PassEnv run last
(httpd's fixups). portico/proxy/environment.py evaluates them; the proxy reads the variables
httpd's mod_proxy reads (reference §4.8).
"""

from __future__ import annotations

__all__ = ["TABLE"]

import logging
import os
import re

from portico.config.build import BuildContext
from portico.config.model import SETENVIF_ATTRIBUTES, EnvCondition, EnvSet
from portico.config.registry import Context, DirectiveTable
from portico.config.tree import Node
from portico.expr import ExprError, compile_expr

_log = logging.getLogger("portico.config")

TABLE = DirectiveTable("env")
SVL = Context.SERVER | Context.VHOST | Context.LOCATION

# mod_setenvif's request facts, by lowercased name → the spelling stored in the rule
_ATTRIBUTES = {name.lower(): name for name in SETENVIF_ATTRIBUTES}

# An attribute with one of these is a regular expression over header names (httpd tests
# the same way: a plain token is a header or variable name).
_REGEX_CHARS = re.compile(r"[\^$.*+?()\[\]{}|\\]")


def _sets(ctx: BuildContext, words: tuple[str, ...]) -> tuple[EnvSet, ...]:
    """``name``, ``name=value`` and ``!name`` words."""
    found = []
    for word in words:
        if word.startswith("!"):
            name, value = word[1:], None
        else:
            name, sep, value_text = word.partition("=")
            value = value_text if sep else "1"
        if not name:
            raise ctx.error(f"{word!r} names no environment variable")
        found.append(EnvSet(name, value))
    return tuple(found)


def _regex(ctx: BuildContext, text: str, flags: int) -> re.Pattern[str]:
    try:
        return re.compile(text, flags)
    except re.error as exc:
        raise ctx.error(f"bad regular expression {text!r}: {exc}") from None


def _add_condition(ctx: BuildContext, rule: EnvCondition) -> None:
    location = ctx.location
    if location is not None:
        late = location.overrides.setdefault("env_late", [])
        late.append(rule)  # type: ignore[attr-defined]
    else:
        early = ctx.server.settings.setdefault("env_early", [])
        early.append(rule)  # type: ignore[attr-defined]


def _add_sets(ctx: BuildContext, sets: tuple[EnvSet, ...]) -> None:
    location = ctx.location
    target = (location.overrides if location is not None else ctx.server.settings)
    fixed = target.setdefault("env_fixed", [])
    fixed.extend(sets)  # type: ignore[attr-defined]


def _set_env_if(ctx: BuildContext, attribute: str, regex: str, words: tuple[str, ...],
                nocase: bool) -> None:
    flags = re.IGNORECASE if nocase else 0
    special = _ATTRIBUTES.get(attribute.lower())
    attribute_pattern = None
    if special is not None:
        attribute = special
    elif _REGEX_CHARS.search(attribute):
        attribute_pattern = _regex(ctx, attribute, re.IGNORECASE)
    _add_condition(ctx, EnvCondition(attribute, _regex(ctx, regex, flags), _sets(ctx, words),
                                     ctx.source, attribute_pattern))


@TABLE.directive("SetEnvIf", SVL, args=(3, None))
def _setenvif(ctx: BuildContext, node: Node) -> None:
    _set_env_if(ctx, node.args[0], node.args[1], node.args[2:], nocase=False)


@TABLE.directive("SetEnvIfNoCase", SVL, args=(3, None))
def _setenvif_nocase(ctx: BuildContext, node: Node) -> None:
    _set_env_if(ctx, node.args[0], node.args[1], node.args[2:], nocase=True)


@TABLE.directive("BrowserMatch", SVL, args=(2, None))
def _browser_match(ctx: BuildContext, node: Node) -> None:
    _set_env_if(ctx, "User-Agent", node.args[0], node.args[1:], nocase=False)


@TABLE.directive("BrowserMatchNoCase", SVL, args=(2, None))
def _browser_match_nocase(ctx: BuildContext, node: Node) -> None:
    _set_env_if(ctx, "User-Agent", node.args[0], node.args[1:], nocase=True)


@TABLE.directive("SetEnvIfExpr", SVL, args=(2, None))
def _setenvif_expr(ctx: BuildContext, node: Node) -> None:
    try:
        expr = compile_expr(node.args[0], ctx.node.file, ctx.node.line)
    except ExprError as exc:
        raise ctx.error(f"bad expression {node.args[0]!r}: {exc.message}") from None
    _add_condition(ctx, EnvCondition("", None, _sets(ctx, node.args[1:]), ctx.source,
                                     expr=expr))


@TABLE.directive("SetEnv", SVL, args=(1, 2))
def _setenv(ctx: BuildContext, node: Node) -> None:
    value = node.args[1] if len(node.args) > 1 else ""
    _add_sets(ctx, (EnvSet(node.args[0], value),))


@TABLE.directive("UnsetEnv", SVL, args=(1, None))
def _unsetenv(ctx: BuildContext, node: Node) -> None:
    _add_sets(ctx, tuple(EnvSet(name, None) for name in node.args))


@TABLE.directive("PassEnv", SVL, args=(1, None))
def _passenv(ctx: BuildContext, node: Node) -> None:
    sets = []
    for name in node.args:
        value = os.environ.get(name)
        if value is None:
            # httpd warns the same way and passes nothing
            _log.warning("%s: PassEnv variable %s was undefined", ctx.source, name)
            continue
        sets.append(EnvSet(name, value))
    _add_sets(ctx, tuple(sets))
