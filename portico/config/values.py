"""Scalar value parsers shared by directives and worker parameters.

Each parser takes the raw word and returns the typed value or raises ``ValueError`` with a
short reason; callers turn that into a ``ConfigError`` carrying file:line and the directive.
"""

from __future__ import annotations

__all__ = [
    "parse_duration",
    "parse_flag",
    "parse_int",
    "parse_seconds_int",
]

import re

_DURATION = re.compile(r"^\s*(-?\d+)\s*(ms|s|mi|min|h)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "mi": 60.0, "min": 60.0, "h": 3600.0}


def parse_flag(word: str) -> bool:
    """``On``/``Off`` in any case → True/False; anything else is a ValueError."""
    lowered = word.lower()
    if lowered == "on":
        return True
    if lowered == "off":
        return False
    raise ValueError(f"expected On or Off, got {word!r}")


def parse_int(word: str, low: int | None = None, high: int | None = None) -> int:
    """A whole decimal number (optional sign), checked against an inclusive range."""
    text = word.strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(f"expected a whole number, got {word!r}")
    value = int(text)
    if low is not None and value < low:
        raise ValueError(f"{value} is below the minimum {low}")
    if high is not None and value > high:
        raise ValueError(f"{value} is above the maximum {high}")
    return value


def parse_seconds_int(word: str, low: int | None = None, high: int | None = None) -> float:
    """Whole seconds with no unit suffix (how httpd reads ``timeout=`` and ProxyTimeout)."""
    return float(parse_int(word, low, high))


def parse_duration(word: str, default_unit: str) -> float:
    """A whole number with an optional ``ms``/``s``/``min``/``h`` suffix, as seconds.

    ``default_unit`` applies when no suffix is written (``"s"`` or ``"ms"``), mirroring
    httpd's ap_timeout_parameter_parse. Fractions are refused, as httpd refuses them.
    """
    match = _DURATION.match(word)
    if match is None:
        raise ValueError(f"expected a whole number with an optional ms/s/min/h unit, got {word!r}")
    unit = (match.group(2) or default_unit).lower()
    return int(match.group(1)) * _UNIT_SECONDS[unit]
