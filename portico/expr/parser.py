"""Recursive-descent parser for the ap_expr subset (reference §11).

Grammar, loosest binding first (httpd's precedence: ``||`` < ``&&`` < ``!``)::

    condition := disjunct
    disjunct  := conjunct ("||" conjunct)*
    conjunct  := negation ("&&" negation)*
    negation  := "!" negation | primary
    primary   := "true" | "false" | "(" condition ")" | UNARY word | comparison
    comparison:= word ( STROP word | INTOP word | REOP REGEX | IN "{" word ("," word)* "}"
                      | BINARY word )
    word      := part ("." part)*
    part      := DIGITS | 'string' | "string" | %{VAR} | %{func:arg} | $N | func "(" word ")"

``&&`` and ``||`` are left-associative; ``!`` applies to the tightest following condition, so
``!a && b`` is ``(!a) && b``. Regexes are compiled here, once.
"""

from __future__ import annotations

__all__ = ["parse"]

import re

from portico.expr.errors import ExprError
from portico.expr.lexer import Token, tokenize
from portico.expr.nodes import (
    And,
    BinaryTest,
    Call,
    Compare,
    Concat,
    Condition,
    Const,
    InList,
    Match,
    Not,
    Or,
    UnaryTest,
    Word,
)

_STR_OPS = {"=": "==", "==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
# PCRE's named group spelling; Python (before 3.12's tolerance) wants (?P<name>...).
_PCRE_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")
_MAX_DEPTH = 200


def parse(text: str) -> Condition:
    """The condition tree of ``text``. Raises ExprError with the 1-based column."""
    return _Parser(tokenize(text)).parse()


def compile_regex(source: str, flags: str, column: int) -> re.Pattern[str]:
    """Compile a regex of the expression language (PCRE-like) as Python ``re``."""
    try:
        return re.compile(_PCRE_NAMED_GROUP.sub("(?P<", source),
                          re.IGNORECASE if "i" in flags else 0)
    except re.error as exc:
        raise ExprError(f"bad regular expression /{source}/: {exc.msg}", column=column) \
            from None


def _describe(token: Token) -> str:
    if token.kind == "EOF":
        return "the end of the expression"
    if token.kind == "WORD":
        return "a value"
    return repr(token.text)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "EOF":
            self.index += 1
        return token

    def expect(self, kind: str, what: str) -> Token:
        token = self.current
        if token.kind != kind:
            raise self.unexpected(what)
        return self.advance()

    def unexpected(self, wanted: str) -> ExprError:
        token = self.current
        return ExprError(f"expected {wanted}, found {_describe(token)}", column=token.column)

    def parse(self) -> Condition:
        if self.current.kind == "EOF":
            raise ExprError("empty expression", column=1)
        condition = self.disjunct()
        if self.current.kind != "EOF":
            raise self.unexpected("'&&', '||' or the end of the expression")
        return condition

    def disjunct(self) -> Condition:
        left = self.conjunct()
        while self.current.kind == "OR":
            self.advance()
            left = Or(left, self.conjunct())
        return left

    def conjunct(self) -> Condition:
        left = self.negation()
        while self.current.kind == "AND":
            self.advance()
            left = And(left, self.negation())
        return left

    def negation(self) -> Condition:
        if self.current.kind == "NOT":
            token = self.advance()
            self.enter(token)
            operand = self.negation()
            self.depth -= 1
            return Not(operand)
        return self.primary()

    def enter(self, token: Token) -> None:
        # Bound the recursion so a hostile "((((..." is an error, not a RecursionError.
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ExprError(f"expression nested deeper than {_MAX_DEPTH}",
                            column=token.column)

    def primary(self) -> Condition:
        token = self.current
        if token.kind in ("TRUE", "FALSE"):
            self.advance()
            return Const(token.kind == "TRUE")
        if token.kind == "LPAREN":
            self.advance()
            self.enter(token)
            inner = self.disjunct()
            self.depth -= 1
            self.expect("RPAREN", "')'")
            return inner
        if token.kind == "UNARY":
            self.advance()
            return UnaryTest(token.text, self.word(), token.column)
        if token.kind in ("WORD", "ID"):
            return self.comparison()
        raise self.unexpected("a condition")

    def comparison(self) -> Condition:
        left = self.word()
        token = self.current
        kind = token.kind
        if kind == "STROP":
            self.advance()
            return Compare(_STR_OPS[token.text], left, self.word(), token.column)
        if kind == "INTOP":
            self.advance()
            return Compare(token.text, left, self.word(), token.column)
        if kind == "REOP":
            self.advance()
            regex = self.expect("REGEX", "a regular expression")
            pattern = compile_regex(regex.text, regex.flags, regex.column)
            return Match(left, pattern, token.text == "!~", token.column)
        if kind == "IN":
            self.advance()
            return InList(left, self.word_list(), token.column)
        if kind == "BINARY":
            self.advance()
            return BinaryTest(token.text, left, self.word(), token.column)
        raise self.unexpected("a comparison operator after the value")

    def word_list(self) -> tuple[Word, ...]:
        self.expect("LBRACE", "'{' starting the list")
        items = [self.word()]
        while self.current.kind == "COMMA":
            self.advance()
            items.append(self.word())
        self.expect("RBRACE", "',' or '}' ending the list")
        return tuple(items)

    def word(self) -> Word:
        first = self.part()
        if self.current.kind != "DOT":
            return first
        parts = [first]
        while self.current.kind == "DOT":
            self.advance()
            parts.append(self.part())
        return Concat(tuple(parts), first.column)

    def part(self) -> Word:
        token = self.current
        if token.kind == "WORD":
            self.advance()
            assert token.word is not None
            return token.word
        if token.kind == "ID":
            self.advance()
            if self.current.kind != "LPAREN":
                raise ExprError(f"bare word {token.text!r}: quote a string ('{token.text}') "
                                "or call a function (name(...))", column=token.column)
            self.advance()
            self.enter(token)
            arg = self.word()
            self.depth -= 1
            self.expect("RPAREN", f"')' closing {token.text}(")
            return Call(token.text, arg, token.column)
        raise self.unexpected("a value (number, 'string', %{VAR} or function call)")
