"""mod_log_config and core logging directives: LogFormat, CustomLog, TransferLog, ErrorLog,
LogLevel. Format nicknames are resolved after the walk (load.py), as httpd resolves them
when it opens the logs, so a LogFormat written after its CustomLog still counts.
"""

from __future__ import annotations

__all__ = ["DEFAULT_FORMAT", "LOG_LEVELS", "PREDEFINED_FORMATS", "TABLE"]

import re

from portico.config.build import BuildContext, PendingLog
from portico.config.registry import Context, DirectiveTable, canonical_module_name
from portico.config.tree import Node
from portico.expr import ExprError, compile_expr

TABLE = DirectiveTable("log")

S = Context.SERVER
SV = Context.SERVER | Context.VHOST

#: mod_log_config's format when no LogFormat says otherwise (Common Log Format).
DEFAULT_FORMAT = '%h %l %u %t "%r" %>s %b'

#: Nicknames every config can use, as Debian's apache2.conf defines them.
PREDEFINED_FORMATS = {
    "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
    "combined": '%h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
    "common": '%h %l %u %t "%r" %>s %O',
    "referer": "%{Referer}i -> %U",
    "agent": "%{User-agent}i",
}

LOG_LEVELS = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug",
              *(f"trace{n}" for n in range(1, 9)))

_SPECIAL_TARGET = re.compile(r"^(\||syslog(:|$)|stderr$)")


def _target(ctx: BuildContext, word: str) -> str:
    """Pipes, syslog and ``stderr`` are kept as written; file names are made absolute via
    ServerRoot."""
    if _SPECIAL_TARGET.match(word):
        return word
    return ctx.state.resolve(word)


@TABLE.directive("LogFormat", SV, args=(1, 2))
def _log_format(ctx: BuildContext, node: Node) -> None:
    server = ctx.server
    if len(node.args) == 2:
        server.log_formats[node.args[1]] = node.args[0]
        return
    # A lone argument that names a known format makes that format the default.
    known = {**PREDEFINED_FORMATS, **ctx.state.main.log_formats, **server.log_formats}
    server.default_format = known.get(node.args[0], node.args[0])


@TABLE.directive("CustomLog", SV, args=(2, 3))
def _custom_log(ctx: BuildContext, node: Node) -> None:
    env = expr = None
    if len(node.args) == 3:
        condition = node.args[2]
        if condition.lower().startswith("env="):
            env = condition[4:]
            if not env or env == "!":
                raise ctx.error("env= needs a variable name")
        elif condition.lower().startswith("expr="):
            expr = condition[5:]
            if not expr:
                raise ctx.error("expr= needs an expression")
            try:   # checked here for the file:line; the access log compiles its own copy
                compile_expr(expr, node.file, node.line)
            except ExprError as exc:
                raise ctx.error(f"bad expression {expr!r}: {exc.message}") from None
        else:
            raise ctx.error(f"third argument must be env=[!]VAR or expr=..., got {condition!r}")
    ctx.server.logs.append(PendingLog(_target(ctx, node.args[0]), node.args[1], ctx.source,
                                      env, expr))


@TABLE.directive("TransferLog", SV)
def _transfer_log(ctx: BuildContext, node: Node) -> None:
    ctx.server.logs.append(PendingLog(_target(ctx, node.args[0]), None, ctx.source))


@TABLE.directive("ErrorLog", SV)
def _error_log(ctx: BuildContext, node: Node) -> None:
    if node.args[0].lower().startswith("syslog"):
        raise ctx.error("ErrorLog syslog is not supported yet: use a file, a |pipe or stderr")
    target = _target(ctx, node.args[0])
    # Whether the file can be opened is checked by -t and before serving
    # (portico.logs.errorlog.check_error_log), not while loading: tools load configs whose
    # log directories exist only on the serving machine.
    ctx.server.error_log = target
    ctx.server.error_log_source = ctx.source


@TABLE.directive("LogLevel", SV, args=(1, None))
def _log_level(ctx: BuildContext, node: Node) -> None:
    level: str | None = None
    modules: dict[str, str] = {}
    for word in node.args:
        module, sep, value = word.rpartition(":")
        value = value.lower()
        if value not in LOG_LEVELS:
            raise ctx.error(f"{value!r} is not a log level (one of {', '.join(LOG_LEVELS)})")
        if not sep:
            level = value
            continue
        name = canonical_module_name(module) or module
        if not name:
            raise ctx.error(f"{word!r} has an empty module name")
        modules[name] = value
    if not ctx.server.is_main:
        # The host's messages (those about its requests) follow it; see logs/errorlog.py.
        if level is not None:
            ctx.server.log_level = level
        ctx.server.module_log_levels.update(modules)
        return
    if level is not None:
        ctx.state.log_level = level
    ctx.state.module_log_levels.update(modules)
