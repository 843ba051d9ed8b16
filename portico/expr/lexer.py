"""Tokens of the ap_expr subset, with 1-based columns.

The language is lexed in context, like httpd's own scanner: after ``=~``/``!~`` comes a
regex (``/re/flags`` or ``m#re#flags`` with any punctuation delimiter); quoted strings and
``%{name:arg}`` are read whole here, with their interpolations (``%{VAR}``, ``$1``) already
turned into word nodes, so the parser only sees whole words and operators.

How it works: ``-x`` with one letter is a unary test and ``-name`` with more letters a
binary operator, as in httpd (``-eq``/``-in`` are binary; ``-n``/``-z``/``-T`` unary); the
bare words ``eq ne lt le gt ge in true false`` are keywords; any other identifier must be a
function name followed by ``(``.
"""

from __future__ import annotations

__all__ = ["Token", "tokenize"]

from dataclasses import dataclass

from portico.expr.errors import ExprError
from portico.expr.nodes import Backref, Call, Concat, Lit, Var, Word

INT_OPS = frozenset({"eq", "ne", "lt", "le", "gt", "ge"})
_KEYWORDS = {"true": "TRUE", "false": "FALSE", "in": "IN"}
# Two-character operators first, so "==" is not read as "=" "=".
_PUNCT = (
    ("&&", "AND"), ("||", "OR"), ("=~", "REOP"), ("!~", "REOP"), ("==", "STROP"),
    ("!=", "STROP"), ("<=", "STROP"), (">=", "STROP"), ("=", "STROP"), ("<", "STROP"),
    (">", "STROP"), ("!", "NOT"), ("(", "LPAREN"), (")", "RPAREN"), ("{", "LBRACE"),
    ("}", "RBRACE"), (",", "COMMA"), (".", "DOT"),
)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "a": "\a",
                   "v": "\v", "e": "\x1b"}


@dataclass(frozen=True, slots=True)
class Token:
    """``kind`` is one of LPAREN RPAREN LBRACE RBRACE COMMA DOT AND OR NOT STROP INTOP REOP
    IN UNARY BINARY TRUE FALSE ID WORD REGEX EOF. ``text`` is the operator, name or regex
    source; ``word`` is set for WORD; ``flags`` for REGEX."""

    kind: str
    text: str
    column: int
    word: Word | None = None
    flags: str = ""


def _is_name_start(char: str) -> bool:
    return char.isascii() and (char.isalpha() or char == "_")


def _is_name_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str, pos: int | None = None) -> ExprError:
        return ExprError(message, column=(self.pos if pos is None else pos) + 1)

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def name(self) -> str:
        start = self.pos
        while _is_name_char(self.peek()):
            self.pos += 1
        return self.text[start:self.pos]

    # -- interpolating pieces -------------------------------------------------------------

    def variable(self) -> Word:
        """At ``%{``: ``%{NAME}`` or ``%{func:arg}``."""
        start = self.pos
        self.pos += 2
        if not _is_name_start(self.peek()):
            raise self.error("expected a variable name after '%{'")
        name = self.name()
        if self.peek() == "}":
            self.pos += 1
            return Var(name, start + 1)
        if self.peek() == ":":
            self.pos += 1
            arg = self.interpolated(stop="}", what=f"'%{{{name}:'", start=start)
            return Call(name, arg, start + 1)
        raise self.error(f"expected '}}' or ':' after '%{{{name}'")

    def interpolated(self, stop: str, what: str, start: int) -> Word:
        """Text up to ``stop`` with %{...}, $N and backslash escapes; consumes ``stop``."""
        parts: list[Word] = []
        chunk: list[str] = []
        chunk_start = self.pos

        def flush() -> None:
            if chunk:
                parts.append(Lit("".join(chunk), chunk_start + 1))
                chunk.clear()

        while True:
            char = self.peek()
            if not char:
                raise self.error(f"{what} is not closed (missing {stop})", start)
            if char == stop:
                self.pos += 1
                break
            if char == "%" and self.peek(1) == "{":
                flush()
                parts.append(self.variable())
                chunk_start = self.pos
            elif char == "$" and self.peek(1).isdigit():
                flush()
                parts.append(Backref(int(self.peek(1)), self.pos + 1))
                self.pos += 2
                chunk_start = self.pos
            elif char == "\\":
                chunk.append(self.escape())
            else:
                chunk.append(char)
                self.pos += 1
        flush()
        if not parts:
            return Lit("", start + 1)
        if len(parts) == 1:
            return parts[0]
        return Concat(tuple(parts), start + 1)

    def escape(self) -> str:
        """At a backslash inside a string: the character it stands for."""
        start = self.pos
        self.pos += 1
        char = self.peek()
        if not char:
            raise self.error("backslash at the end of the expression", start)
        if char in "01234567":
            end = self.pos
            while end < len(self.text) and end - self.pos < 3 and self.text[end] in "01234567":
                end += 1
            value = int(self.text[self.pos:end], 8)
            if value > 255:
                raise self.error("octal escape out of range", start)
            self.pos = end
            return chr(value)
        if char == "x":
            end = self.pos + 1
            while (end < len(self.text) and end - self.pos <= 2
                   and self.text[end] in "0123456789abcdefABCDEF"):
                end += 1
            if end == self.pos + 1:
                raise self.error("\\x needs one or two hex digits", start)
            value = int(self.text[self.pos + 1:end], 16)
            self.pos = end
            return chr(value)
        if char in "89":
            raise self.error(f"bad escape sequence '\\{char}'", start)
        self.pos += 1
        return _SIMPLE_ESCAPES.get(char, char)

    def regex(self) -> Token:
        """After ``=~``/``!~``: ``/re/`` or ``m<d>re<d>``, then flags."""
        while self.peek().isspace():
            self.pos += 1
        start = self.pos
        char = self.peek()
        if char == "/":
            delimiter = "/"
            self.pos += 1
        elif char == "m" and self.peek(1) and not self.peek(1).isalnum() \
                and not self.peek(1).isspace():
            delimiter = self.peek(1)
            self.pos += 2
        else:
            raise self.error("expected a regular expression (/regex/ or m#regex#)")
        chunk: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise self.error("regular expression is not closed", start)
            if char == "\\" and self.peek(1) == delimiter:
                chunk.append(delimiter)
                self.pos += 2
                continue
            if char == delimiter:
                self.pos += 1
                break
            chunk.append(char)
            self.pos += 1
        flags_start = self.pos
        flags = self.name()
        if any(flag != "i" for flag in flags) or len(flags) > 1:
            raise self.error(f"unknown regex flags {flags!r} (only 'i' is supported)",
                             flags_start)
        return Token("REGEX", "".join(chunk), start + 1, flags=flags)

    # -- the token loop -------------------------------------------------------------------

    def next(self, previous: Token | None) -> Token:
        while self.peek().isspace():
            self.pos += 1
        if previous is not None and previous.kind == "REOP":
            return self.regex()
        start = self.pos
        char = self.peek()
        if not char:
            return Token("EOF", "", start + 1)
        if char in "'\"":
            self.pos += 1
            word = self.interpolated(stop=char, what="string", start=start)
            return Token("WORD", char, start + 1, word=word)
        if char == "%" and self.peek(1) == "{":
            return Token("WORD", "%{", start + 1, word=self.variable())
        if char == "$" and self.peek(1).isdigit():
            self.pos += 2
            return Token("WORD", self.text[start:self.pos], start + 1,
                         word=Backref(int(self.text[start + 1]), start + 1))
        if char.isdigit():
            while self.peek().isdigit():
                self.pos += 1
            digits = self.text[start:self.pos]
            return Token("WORD", digits, start + 1, word=Lit(digits, start + 1))
        if char == "-" and _is_name_start(self.peek(1)):
            self.pos += 1
            name = self.name()
            lowered = name.lower()
            if len(name) == 1:
                return Token("UNARY", name, start + 1)
            if lowered in INT_OPS:
                return Token("INTOP", lowered, start + 1)
            if lowered == "in":
                return Token("IN", "in", start + 1)
            return Token("BINARY", lowered, start + 1)
        if _is_name_start(char):
            name = self.name()
            if name in _KEYWORDS:
                return Token(_KEYWORDS[name], name, start + 1)
            if name in INT_OPS:
                return Token("INTOP", name, start + 1)
            return Token("ID", name, start + 1)
        for text, kind in _PUNCT:
            if self.text.startswith(text, self.pos):
                self.pos += len(text)
                return Token(kind, text, start + 1)
        raise self.error(f"unexpected character {char!r}")


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text``, ending with EOF. Raises ExprError (with ``column``)."""
    scanner = _Scanner(text)
    tokens: list[Token] = []
    previous: Token | None = None
    while True:
        token = scanner.next(previous)
        tokens.append(token)
        if token.kind == "EOF":
            return tokens
        previous = token
