"""httpd config syntax at the character level: logical lines and words.

A *logical line* joins physical lines that end in a backslash (the backslash must be the very
last character: httpd does not continue a line whose backslash is followed by spaces). Comment
lines start with ``#`` after optional whitespace; as in httpd the continuation is joined first,
so a comment ending in ``\\`` swallows the next line (we warn about that trap).

Words follow httpd's ap_getword_conf: a word that starts with ``"`` or ``'`` runs to the
matching quote, and inside it only a backslash before that quote character is an escape
(``\\"`` → ``"``); every other backslash is kept, so regexes survive quoting.
"""

from __future__ import annotations

__all__ = ["LogicalLine", "read_logical_lines", "split_words"]

import logging
from dataclasses import dataclass

from portico.errors import ConfigError

_log = logging.getLogger("portico.config")


@dataclass(frozen=True, slots=True)
class LogicalLine:
    """One directive or section line; ``line`` is the first physical line it started on."""

    file: str
    line: int
    text: str


def _decode(data: bytes) -> str:
    """Config files are usually UTF-8; fall back to Latin-1 so any byte sequence loads."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_logical_lines(path: str) -> list[LogicalLine]:
    """Read ``path`` and return its non-empty, non-comment logical lines, stripped.

    Raises ConfigError (file only, no line) when the file cannot be read.
    """
    try:
        with open(path, "rb") as handle:
            text = _decode(handle.read())
    except OSError as exc:
        raise ConfigError(f"could not read config file: {exc.strerror}", path) from exc
    return list(_logical_lines(path, text.splitlines()))


def _logical_lines(path: str, physical: list[str]):
    index = 0
    total = len(physical)
    while index < total:
        start = index
        parts = []
        current = physical[index]
        index += 1
        while current.endswith("\\") and index <= total:
            parts.append(current[:-1])
            if index == total:
                current = ""
                break
            current = physical[index]
            index += 1
        parts.append(current)
        text = "".join(parts).strip()
        if not text:
            continue
        if text.startswith("#"):
            if len(parts) > 1:
                _log.warning(
                    "%s:%d: comment ends in a backslash, so it also swallows line %d "
                    "(httpd does the same)", path, start + 1, start + len(parts))
            continue
        yield LogicalLine(path, start + 1, text)


def split_words(text: str) -> list[str]:
    """Split an argument string into words with httpd's quoting rules.

    Raises ValueError for a quote that is never closed (httpd silently takes the rest of the
    line; we refuse, since that is always a typo).
    """
    words: list[str] = []
    i = 0
    n = len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return words
        quote = text[i]
        if quote in "\"'":
            i += 1
            chunk: list[str] = []
            while i < n and text[i] != quote:
                if text[i] == "\\" and i + 1 < n and text[i + 1] == quote:
                    chunk.append(quote)
                    i += 2
                    continue
                chunk.append(text[i])
                i += 1
            if i >= n:
                raise ValueError(f"unterminated {quote} quote")
            i += 1
            words.append("".join(chunk))
        else:
            start = i
            while i < n and not text[i].isspace():
                i += 1
            words.append(text[start:i])
