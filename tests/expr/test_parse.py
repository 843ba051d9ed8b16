"""Tokenizer and parser: the whole grammar, precedence, and errors with columns."""

from __future__ import annotations

import pytest

from portico.expr import ExprError, compile_expr
from portico.expr.lexer import tokenize
from portico.expr.nodes import (
    And,
    Backref,
    BinaryTest,
    Call,
    Compare,
    Concat,
    Const,
    InList,
    Lit,
    Match,
    Not,
    Or,
    UnaryTest,
    Var,
)
from portico.expr.parser import parse


def kinds(text: str) -> list[str]:
    return [token.kind for token in tokenize(text)]


def test_tokens_and_columns() -> None:
    text = "%{REQUEST_STATUS} -eq 200 && !(hc('body') =~ m#a/b#i)"
    tokens = tokenize(text)
    assert [t.kind for t in tokens] == ["WORD", "INTOP", "WORD", "AND", "NOT", "LPAREN", "ID",
                                        "LPAREN", "WORD", "RPAREN", "REOP", "REGEX", "RPAREN",
                                        "EOF"]
    assert [t.column for t in tokens[:4]] == [1, 19, 23, 27]
    regex = tokens[11]
    assert (regex.text, regex.flags, regex.column) == ("a/b", "i", text.index("m#") + 1)


@pytest.mark.parametrize(("text", "expected"), [
    ("1 == 2", ["WORD", "STROP", "WORD", "EOF"]),
    ("1 = 2", ["WORD", "STROP", "WORD", "EOF"]),
    ("1 eq 2", ["WORD", "INTOP", "WORD", "EOF"]),
    ("1 -GE 2", ["WORD", "INTOP", "WORD", "EOF"]),
    ("'a' in {'a','b'}", ["WORD", "IN", "LBRACE", "WORD", "COMMA", "WORD", "RBRACE", "EOF"]),
    ("-n 'a'", ["UNARY", "WORD", "EOF"]),
    ("'a' -ipmatch '1.2.3.4'", ["WORD", "BINARY", "WORD", "EOF"]),
    ("true || false", ["TRUE", "OR", "FALSE", "EOF"]),
    ("$1 != 'x'", ["WORD", "STROP", "WORD", "EOF"]),
    ("'a'.'b' <= 'c'", ["WORD", "DOT", "WORD", "STROP", "WORD", "EOF"]),
])
def test_token_kinds(text: str, expected: list[str]) -> None:
    assert kinds(text) == expected


def test_string_escapes_and_interpolation() -> None:
    word = tokenize(r"'a\tb\'c\x41\101\\%{REQUEST_METHOD}-$2'")[0].word
    assert isinstance(word, Concat)
    first, var, middle, ref = word.parts
    assert first == Lit("a\tb'cAA\\", 2)
    assert isinstance(var, Var) and var.name == "REQUEST_METHOD"
    assert middle.text == "-"  # type: ignore[union-attr]
    assert ref == Backref(2, 37)
    assert tokenize('"say \\"hi\\""')[0].word == Lit('say "hi"', 2)
    assert tokenize("''")[0].word == Lit("", 1)


def test_var_function_form() -> None:
    word = tokenize("%{HTTP:Content-Type}")[0].word
    assert word == Call("HTTP", Lit("Content-Type", 8), 1)


def test_regex_forms() -> None:
    assert parse("'a' =~ /x\\/y/").pattern.pattern == "x/y"  # type: ignore[union-attr]
    assert parse("'a' =~ m|a|i").pattern.pattern == "a"  # type: ignore[union-attr]
    node = parse("'a' !~ m!z!")
    assert isinstance(node, Match) and node.negate and node.pattern.pattern == "z"
    assert parse("'a' =~ /x/i").pattern.flags & 2  # type: ignore[union-attr]  # re.I
    # PCRE's named groups are accepted
    assert parse("'a' =~ /(?<code>\\d+)/").pattern.groupindex == {"code": 1}  # type: ignore


def test_precedence_and_associativity() -> None:
    # || binds loosest, then &&, then !
    assert parse("true || false && false") == Or(Const(True), And(Const(False), Const(False)))
    assert parse("!true && false") == And(Not(Const(True)), Const(False))
    assert parse("!(true && false)") == Not(And(Const(True), Const(False)))
    assert parse("true && false && true") == And(And(Const(True), Const(False)), Const(True))
    assert parse("false || false || true") == Or(Or(Const(False), Const(False)), Const(True))
    assert parse("!!true") == Not(Not(Const(True)))
    assert parse("((true))") == Const(True)


def test_comparisons() -> None:
    node = parse("%{REQUEST_STATUS} -lt 400")
    assert isinstance(node, Compare) and node.op == "lt" and node.column == 19
    assert parse("'a' = 'b'").op == "=="  # type: ignore[union-attr]
    assert parse("'a' >= 'b'").op == ">="  # type: ignore[union-attr]
    node = parse("'a' -in {'a', 'b' , 'c'}")
    assert isinstance(node, InList) and len(node.items) == 3
    node = parse("-z hc('body')")
    assert isinstance(node, UnaryTest) and node.op == "z"
    node = parse("'10.1.2.3' -ipmatch '10.0.0.0/8'")
    assert isinstance(node, BinaryTest) and node.op == "ipmatch"
    node = parse("'a'.%{REQUEST_METHOD}.tolower('B') == 'aGETb'")
    assert isinstance(node.left, Concat) and len(node.left.parts) == 3  # type: ignore


@pytest.mark.parametrize(("text", "column", "words"), [
    ("", 1, "empty expression"),
    ("true &&", 8, "expected a condition"),
    ("(true", 6, "expected ')'"),
    ("true)", 5, "expected '&&', '||'"),
    ("'a' == ", 8, "expected a value"),
    ("'a'", 4, "comparison operator"),
    ("foo == 'a'", 1, "bare word 'foo'"),
    ("'a' =~ 'b'", 8, "expected a regular expression"),
    ("'a' =~ /b", 8, "not closed"),
    ("'a' =~ /b/x", 11, "unknown regex flags"),
    ("'a' =~ /(/", 8, "bad regular expression"),
    ("'abc", 1, "string is not closed"),
    ("%{REQUEST_STATUS", 17, "expected '}' or ':'"),
    ("%{} == 1", 3, "expected a variable name"),
    ("%{NOPE} == 1", 1, "unknown variable %{NOPE}"),
    ("nope('x') == 1", 1, "unknown function 'nope'"),
    ("hc('head') == 1", 1, "only health-check value is 'body'"),
    ("'x' -eq 1", 5, "'x' is not an integer"),
    ("-d 'x'", 1, "-d: file and user tests"),
    ("-q 'x'", 1, "unknown unary operator"),
    ("'a' -frob 'b'", 5, "unknown operator -frob"),
    ("'a' -ipmatch 'nonsense'", 5, "not an address or network"),
    ("'a' -in {'a' 'b'}", 14, "',' or '}'"),
    ("'a' -in 'a'", 9, "'{' starting the list"),
    ("'a' == 'b' #", 12, "unexpected character '#'"),
    ("'\\9'", 2, "bad escape"),
    ("tolower('a' == 'a'", 13, "')' closing tolower("),
    ("(" * 300 + "true" + ")" * 300, 201, "nested deeper"),
])
def test_errors_have_columns(text: str, column: int, words: str) -> None:
    with pytest.raises(ExprError) as info:
        compile_expr(text, "hc.conf", 7)
    error = info.value
    assert words in error.message
    assert error.column == column, str(error)
    assert (error.file, error.line) == ("hc.conf", 7)
    assert str(error).startswith("hc.conf:7: ") and f"(column {column})" in str(error)
