"""The variables and string functions an expression may name, resolved at parse time.

A name that is not listed here is a parse error (httpd: "Variable 'X' does not exist"), so a
typo fails at config load rather than evaluating to "" forever. Variable and function names
are case-insensitive. Each entry is a plain function of the context, so evaluation is one
call per reference.
"""

from __future__ import annotations

__all__ = ["FUNCTIONS", "VARIABLES", "glob_to_regex", "lookup_function", "lookup_variable"]

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from urllib.parse import quote, unquote

from portico.expr.context import EvalContext

VarGetter = Callable[[EvalContext], str]
Function = Callable[[EvalContext, str], str]

# Variables httpd knows whose value a health check has no source for: read from
# EvalContext.variables (the checker may fill them), "" otherwise.
_PASS_THROUGH = (
    "REMOTE_ADDR", "REMOTE_PORT", "REMOTE_HOST", "SERVER_NAME", "SERVER_PORT", "SERVER_ADDR",
    "SERVER_PROTOCOL", "REQUEST_SCHEME", "HTTPS", "HTTP_HOST", "THE_REQUEST", "IPV6",
    "DOCUMENT_ROOT", "REQUEST_FILENAME", "SCRIPT_FILENAME", "PATH_INFO", "HANDLER",
    "HTTP_ACCEPT", "HTTP_COOKIE", "HTTP_FORWARDED", "HTTP_PROXY_CONNECTION", "HTTP_REFERER",
    "HTTP_USER_AGENT",
)


def _pass_through(name: str) -> VarGetter:
    return lambda ctx: ctx.variables.get(name, "")


VARIABLES: dict[str, VarGetter] = {
    "REQUEST_STATUS": lambda ctx: str(ctx.status),
    "REQUEST_METHOD": lambda ctx: ctx.method,
    "REQUEST_URI": lambda ctx: ctx.uri.partition("?")[0],
    "QUERY_STRING": lambda ctx: ctx.uri.partition("?")[2],
    # mod_proxy_hcheck's own HC_ prefix: only HC_BODY has a value.
    "HC_BODY": EvalContext.body_text,
    **{name: _pass_through(name) for name in _PASS_THROUGH},
}


def _hc(ctx: EvalContext, arg: str) -> str:
    return ctx.body_text() if arg.lower() == "body" else ""


def _base64(ctx: EvalContext, arg: str) -> str:
    return base64.b64encode(arg.encode("utf-8", "surrogateescape")).decode("ascii")


def _unbase64(ctx: EvalContext, arg: str) -> str:
    try:
        raw = base64.b64decode(arg.encode("utf-8", "surrogateescape"))
    except (binascii.Error, ValueError):
        return ""
    return raw.decode("utf-8", "surrogateescape")


def _digest(name: str) -> Function:
    return lambda ctx, arg: hashlib.new(name, arg.encode("utf-8", "surrogateescape"),
                                        usedforsecurity=False).hexdigest()


FUNCTIONS: dict[str, Function] = {
    "hc": _hc,
    # In a health check the headers worth reading are the backend's response headers, so
    # %{HTTP:X} / http('X') read them too (httpd's would read the empty request headers).
    "resp": lambda ctx, arg: ctx.response_header(arg),
    "http": lambda ctx, arg: ctx.header(arg),
    # req()/req_novary() name the request's fields: in a request condition (SetEnvIfExpr)
    # the context's headers are the request's; in a health check they read what http() does.
    "req": lambda ctx, arg: ctx.header(arg),
    "req_novary": lambda ctx, arg: ctx.header(arg),
    "env": lambda ctx, arg: ctx.variables.get(arg, ""),
    "reqenv": lambda ctx, arg: ctx.variables.get(arg, ""),
    "tolower": lambda ctx, arg: arg.lower(),
    "toupper": lambda ctx, arg: arg.upper(),
    "escape": lambda ctx, arg: quote(arg, safe="/:@&=+$,-_.!~*'();"),
    "unescape": lambda ctx, arg: unquote(arg, errors="surrogateescape"),
    "base64": _base64,
    "unbase64": _unbase64,
    "md5": _digest("md5"),
    "sha1": _digest("sha1"),
}


def lookup_variable(name: str) -> VarGetter | None:
    """The getter of ``%{name}`` (any case), or None when no such variable exists."""
    return VARIABLES.get(name.upper())


def lookup_function(name: str) -> Function | None:
    """The string function ``name`` (any case), or None."""
    return FUNCTIONS.get(name.lower())


def glob_to_regex(pattern: str, pathname: bool, ignore_case: bool) -> re.Pattern[str]:
    """A compiled full-match regex for a shell wildcard (``*``, ``?``, ``[...]``, ``\\x``).

    With ``pathname`` (httpd's -fnmatch) ``*`` and ``?`` do not match ``/``.
    """
    any_char = "[^/]" if pathname else "."
    out: list[str] = []
    index, length = 0, len(pattern)
    while index < length:
        char = pattern[index]
        index += 1
        if char == "*":
            out.append(any_char + "*")
        elif char == "?":
            out.append(any_char)
        elif char == "\\" and index < length:
            out.append(re.escape(pattern[index]))
            index += 1
        elif char == "[":
            end = pattern.find("]", index + 1 if pattern[index:index + 1] in ("!", "^") else index)
            if end < 0:
                out.append(re.escape(char))
                continue
            body = pattern[index:end]
            index = end + 1
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            escaped = body.replace("\\", "\\\\").replace("^", "\\^")
            out.append(f"[{'^' if negate else ''}{escaped}]")
        else:
            out.append(re.escape(char))
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(out), flags)
