"""Compile a parsed condition into nested closures: parse once, evaluate many.

Every name (variable, function), regex, wildcard pattern, ``-ipmatch`` network and constant
``-in`` list is resolved when the expression is compiled, so evaluating is a walk of plain
Python calls with no lookups by name. Constant sub-words (``tolower('A')``, quoted strings
without interpolation) are folded.

Evaluation is read-only: the only state is a per-call record of the last regex match
(for ``$0``..``$9``).
"""

from __future__ import annotations

__all__ = ["Expr", "compile_expr"]

import ipaddress
import operator
import re
from collections.abc import Callable

from portico.expr.context import EvalContext
from portico.expr.errors import ExprError
from portico.expr.functions import glob_to_regex, lookup_function, lookup_variable
from portico.expr.nodes import (
    And,
    Backref,
    BinaryTest,
    Call,
    Compare,
    Concat,
    Condition,
    Const,
    InList,
    Lit,
    Match,
    Not,
    Or,
    UnaryTest,
    Var,
    Word,
)
from portico.expr.parser import parse


class _Run:
    """One evaluation: the context and the last successful regex match."""

    __slots__ = ("ctx", "match")

    def __init__(self, ctx: EvalContext) -> None:
        self.ctx = ctx
        self.match: re.Match[str] | None = None


class _EvalFailure(Exception):
    """An operand that cannot be used (not an integer, not an IP address)."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


WordFn = Callable[[_Run], str]
CondFn = Callable[[_Run], bool]

_STRING_OPS: dict[str, Callable[[str, str], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}
_INT_OPS: dict[str, Callable[[int, int], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
    "gt": operator.gt, "ge": operator.ge,
}
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
# Functions of their argument only: folded when the argument is constant.
_PURE = frozenset({"tolower", "toupper", "escape", "unescape", "base64", "unbase64", "md5",
                   "sha1"})
_FALSY = frozenset({"", "0", "off", "false", "no"})
_UNSUPPORTED_UNARY = "defsLhxFUAR"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Expr:
    """A compiled condition. ``text`` is its source; ``file``/``line`` where it was written.

    ``evaluate`` never raises: an operand that cannot be used (``'x' -eq 1``) makes it
    return False, which is what a health check needs (an evaluation error is a failed
    check, §10.3). ``explain`` says why.
    """

    __slots__ = ("_test", "file", "line", "text")

    def __init__(self, text: str, test: CondFn, file: str, line: int) -> None:
        self.text = text
        self.file = file
        self.line = line
        self._test = test

    def evaluate(self, ctx: EvalContext) -> bool:
        """True when the condition holds for ``ctx``; False when it does not or cannot be
        evaluated."""
        try:
            return self._test(_Run(ctx))
        except _EvalFailure:
            return False

    def explain(self, ctx: EvalContext) -> tuple[bool, str | None]:
        """(result, None), or (False, reason) when the expression could not be evaluated."""
        try:
            return self._test(_Run(ctx)), None
        except _EvalFailure as exc:
            return False, f"{exc.message} (column {exc.column})"

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"


def compile_expr(text: str, file: str = "<expr>", line: int = 0) -> Expr:
    """Parse and compile ``text``. Raises ExprError(message, file, line, column)."""
    try:
        return Expr(text, _condition(parse(text)), file, line)
    except ExprError as exc:
        raise ExprError(exc.message, file, line, exc.column) from None


# -- words --------------------------------------------------------------------------------------


def _constant(value: str) -> WordFn:
    return lambda run: value


def _word(node: Word) -> tuple[WordFn, str | None]:
    """(function, constant value or None when it depends on the context)."""
    if isinstance(node, Lit):
        return _constant(node.text), node.text
    if isinstance(node, Var):
        getter = lookup_variable(node.name)
        if getter is None:
            raise ExprError(f"unknown variable %{{{node.name}}}", column=node.column)
        return (lambda run: getter(run.ctx)), None
    if isinstance(node, Call):
        return _call(node)
    if isinstance(node, Backref):
        return _backref(node.index), None
    return _concat(node)


def _call(node: Call) -> tuple[WordFn, str | None]:
    name = node.name.lower()
    function = lookup_function(name)
    if function is None:
        raise ExprError(f"unknown function {node.name!r}", column=node.column)
    arg, constant = _word(node.arg)
    if constant is not None:
        if name == "hc" and constant.lower() != "body":
            raise ExprError(f"hc({constant!r}): the only health-check value is 'body'",
                            column=node.column)
        if name in _PURE:
            value = function(EvalContext(0), constant)
            return _constant(value), value
        return (lambda run: function(run.ctx, constant)), None
    return (lambda run: function(run.ctx, arg(run))), None


def _backref(index: int) -> WordFn:
    def value(run: _Run) -> str:
        match = run.match
        if match is None or index > (match.re.groups or 0):
            return ""
        return match.group(index) or ""
    return value


def _concat(node: Concat) -> tuple[WordFn, str | None]:
    compiled = [_word(part) for part in node.parts]
    if all(constant is not None for _, constant in compiled):
        value = "".join(constant for _, constant in compiled if constant is not None)
        return _constant(value), value
    functions = tuple(function for function, _ in compiled)
    return (lambda run: "".join([function(run) for function in functions])), None


# -- conditions ---------------------------------------------------------------------------------


def _condition(node: Condition) -> CondFn:
    if isinstance(node, Const):
        value = node.value
        return lambda run: value
    if isinstance(node, Not):
        operand = _condition(node.operand)
        return lambda run: not operand(run)
    if isinstance(node, And):
        left, right = _condition(node.left), _condition(node.right)
        return lambda run: left(run) and right(run)
    if isinstance(node, Or):
        left, right = _condition(node.left), _condition(node.right)
        return lambda run: left(run) or right(run)
    if isinstance(node, Compare):
        return _compare(node)
    if isinstance(node, Match):
        return _match(node)
    if isinstance(node, InList):
        return _in_list(node)
    if isinstance(node, UnaryTest):
        return _unary(node)
    return _binary(node)


def _integer(text: str, column: int) -> int:
    if _INTEGER.fullmatch(text) is None:
        raise _EvalFailure(f"{text[:40]!r} is not an integer", column)
    return int(text)


def _compare(node: Compare) -> CondFn:
    left, left_const = _word(node.left)
    right, right_const = _word(node.right)
    column = node.column
    if node.op in _STRING_OPS:
        test = _STRING_OPS[node.op]
        return lambda run: test(left(run), right(run))
    int_test = _INT_OPS[node.op]
    for constant in (left_const, right_const):
        if constant is not None and _INTEGER.fullmatch(constant) is None:
            raise ExprError(f"{constant!r} is not an integer (-{node.op} compares integers)",
                            column=column)
    if right_const is not None:
        number = int(right_const)
        return lambda run: int_test(_integer(left(run), column), number)
    return lambda run: int_test(_integer(left(run), column), _integer(right(run), column))


def _match(node: Match) -> CondFn:
    left, _ = _word(node.left)
    search = node.pattern.search
    negate = node.negate

    def test(run: _Run) -> bool:
        found = search(left(run))
        if found is not None:
            run.match = found
        return (found is None) if negate else (found is not None)
    return test


def _in_list(node: InList) -> CondFn:
    left, _ = _word(node.left)
    items = [_word(item) for item in node.items]
    if all(constant is not None for _, constant in items):
        choices = frozenset(constant for _, constant in items)
        return lambda run: left(run) in choices
    functions = tuple(function for function, _ in items)
    return lambda run: left(run) in {function(run) for function in functions}


def _unary(node: UnaryTest) -> CondFn:
    operand, _ = _word(node.operand)
    if node.op == "n":
        return lambda run: operand(run) != ""
    if node.op == "z":
        return lambda run: operand(run) == ""
    if node.op == "T":
        return lambda run: operand(run).lower() not in _FALSY
    if node.op == "R":   # the client's address is in this network: -ipmatch on REMOTE_ADDR
        _, constant = _word(node.operand)
        return _ipmatch(lambda run: run.ctx.variables.get("REMOTE_ADDR", ""), operand, constant,
                        node.column)
    if node.op in _UNSUPPORTED_UNARY:
        reason = "file and user tests have nothing to test in portico"
    else:
        reason = "unknown unary operator"
    raise ExprError(f"-{node.op}: {reason} (supported: -n, -z, -T, -R)", column=node.column)


def _binary(node: BinaryTest) -> CondFn:
    left, _ = _word(node.left)
    right, right_const = _word(node.right)
    column = node.column
    if node.op == "ipmatch":
        return _ipmatch(left, right, right_const, column)
    if node.op in ("strmatch", "strcmatch", "fnmatch"):
        pathname = node.op == "fnmatch"
        nocase = node.op == "strcmatch"
        if right_const is not None:
            full = glob_to_regex(right_const, pathname, nocase).fullmatch
            return lambda run: full(left(run)) is not None
        return lambda run: glob_to_regex(right(run), pathname, nocase).fullmatch(
            left(run)) is not None
    raise ExprError(f"unknown operator -{node.op} (supported: -eq -ne -lt -le -gt -ge -in "
                    "-ipmatch -strmatch -strcmatch -fnmatch)", column=column)


def _network(text: str) -> Network:
    return ipaddress.ip_network(text.strip(), strict=False)


def _ipmatch(left: WordFn, right: WordFn, right_const: str | None, column: int) -> CondFn:
    if right_const is not None:
        try:
            network = _network(right_const)
        except ValueError:
            raise ExprError(f"-ipmatch: {right_const!r} is not an address or network",
                            column=column) from None

        def fixed(run: _Run) -> bool:
            return _address(left(run), column) in network
        return fixed

    def dynamic(run: _Run) -> bool:
        text = right(run)
        try:
            net = _network(text)
        except ValueError:
            raise _EvalFailure(f"{text[:40]!r} is not an address or network", column) from None
        return _address(left(run), column) in net
    return dynamic


def _address(text: str, column: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise _EvalFailure(f"{text[:40]!r} is not an IP address", column) from None
