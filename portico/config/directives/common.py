"""Small helpers every area uses to read argument values with file:line errors."""

from __future__ import annotations

__all__ = ["duration", "flag", "integer", "key_value_pairs"]

from portico.config.build import BuildContext
from portico.config.values import parse_duration, parse_flag, parse_int


def flag(ctx: BuildContext, word: str) -> bool:
    """On/Off (any case) or a located ConfigError."""
    try:
        return parse_flag(word)
    except ValueError as exc:
        raise ctx.error(str(exc)) from None


def integer(ctx: BuildContext, word: str, low: int | None = None,
            high: int | None = None) -> int:
    """A whole number in [low, high] or a located ConfigError."""
    try:
        return parse_int(word, low, high)
    except ValueError as exc:
        raise ctx.error(str(exc)) from None


def duration(ctx: BuildContext, word: str, default_unit: str = "s") -> float:
    """Seconds from ``N`` / ``Nms`` / ``Ns`` / ``Nmin`` / ``Nh`` or a located ConfigError."""
    try:
        value = parse_duration(word, default_unit)
    except ValueError as exc:
        raise ctx.error(str(exc)) from None
    if value < 0:
        raise ctx.error(f"{word!r} must not be negative")
    return value


def key_value_pairs(ctx: BuildContext, words: tuple[str, ...]) -> list[tuple[str, str]]:
    """``key=value`` words as pairs; a word without '=' is a located ConfigError."""
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ctx.error(f"parameter {word!r} must be in the form key=value")
        pairs.append((key, value))
    return pairs
