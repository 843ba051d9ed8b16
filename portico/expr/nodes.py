"""The syntax tree the parser builds. Frozen and small; ``evaluate.py`` compiles it.

*Word* nodes produce strings; *condition* nodes produce booleans. Every node that can fail
keeps the 1-based ``column`` of the expression text it came from, for messages.
"""

from __future__ import annotations

__all__ = [
    "And", "Backref", "BinaryTest", "Call", "Compare", "Concat", "Condition", "Const",
    "InList", "Lit", "Match", "Not", "Or", "UnaryTest", "Var", "Word",
]

import re
from dataclasses import dataclass

# -- words ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lit:
    """Literal text (digits, or the constant parts of a quoted string)."""

    text: str
    column: int


@dataclass(frozen=True, slots=True)
class Var:
    """``%{NAME}``; ``name`` as written (lookups are case-insensitive)."""

    name: str
    column: int


@dataclass(frozen=True, slots=True)
class Call:
    """``name(word)`` or ``%{name:text}``: a string function of one argument."""

    name: str
    arg: Word
    column: int


@dataclass(frozen=True, slots=True)
class Backref:
    """``$0`` .. ``$9``: a group of the last successful regex match of this evaluation."""

    index: int
    column: int


@dataclass(frozen=True, slots=True)
class Concat:
    """Words joined: a quoted string with interpolations, or ``word . word``."""

    parts: tuple[Word, ...]
    column: int


Word = Lit | Var | Call | Backref | Concat

# -- conditions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Const:
    value: bool


@dataclass(frozen=True, slots=True)
class Not:
    operand: Condition


@dataclass(frozen=True, slots=True)
class And:
    left: Condition
    right: Condition


@dataclass(frozen=True, slots=True)
class Or:
    left: Condition
    right: Condition


@dataclass(frozen=True, slots=True)
class Compare:
    """String (``==``, ``<``, ...) or integer (``-eq``, ``lt``, ...) comparison.

    ``op`` is normalised: ``==`` ``!=`` ``<`` ``<=`` ``>`` ``>=`` for strings and
    ``eq`` ``ne`` ``lt`` ``le`` ``gt`` ``ge`` for integers.
    """

    op: str
    left: Word
    right: Word
    column: int


@dataclass(frozen=True, slots=True)
class Match:
    """``word =~ /re/`` (``negate`` for ``!~``); the regex is compiled by the parser."""

    left: Word
    pattern: re.Pattern[str]
    negate: bool
    column: int


@dataclass(frozen=True, slots=True)
class InList:
    """``word -in {w1, w2, ...}``."""

    left: Word
    items: tuple[Word, ...]
    column: int


@dataclass(frozen=True, slots=True)
class UnaryTest:
    """``-n word``, ``-z word``, ``-T word``; ``op`` is the letter."""

    op: str
    operand: Word
    column: int


@dataclass(frozen=True, slots=True)
class BinaryTest:
    """``word -ipmatch word``, ``-strmatch``, ``-strcmatch``, ``-fnmatch``; ``op`` lowercased,
    without the dash."""

    op: str
    left: Word
    right: Word
    column: int


Condition = Const | Not | And | Or | Compare | Match | InList | UnaryTest | BinaryTest
