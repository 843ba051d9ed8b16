"""``${VAR}`` replacement from the request environment (ProxyPassInterpolateEnv, §2.1.5).

Rules flagged ``interpolate`` (ProxyPass, ProxyPassMatch, ProxyPassReverse and the two cookie
rules) have their text rewritten per request when ProxyPassInterpolateEnv is On. The config
preprocessor has already replaced the variables it knew (Define, the process environment)
and left the others as written, so what reaches here is request-time text.
"""

from __future__ import annotations

__all__ = ["has_variables", "interpolate"]

from collections.abc import Callable, Mapping


def has_variables(text: str | None) -> bool:
    """Whether ``text`` holds a complete ``${...}`` that ``interpolate`` would replace."""
    if not text:
        return False
    start = text.find("${")
    return start >= 0 and text.find("}", start + 2) >= 0


def interpolate(text: str, env: Mapping[str, str],
                escape: Callable[[str], str] | None = None) -> str:
    """``text`` with each ``${NAME}`` replaced by ``env[NAME]``, or by nothing when unset.

    The name runs to the first ``}``; a ``${`` with no ``}`` after it stays as written, with
    everything after it (as httpd). Values are inserted as they are, never scanned again, so
    a value holding ``${X}`` stays literal. ``escape`` transforms each value first (a caller
    that substitutes ``$1`` afterwards uses it to keep values from being read as groups).
    """
    start = text.find("${")
    if start < 0:
        return text
    pieces: list[str] = []
    done = 0
    while start >= 0:
        end = text.find("}", start + 2)
        if end < 0:
            break
        value = env.get(text[start + 2:end], "")
        pieces.append(text[done:start])
        pieces.append(escape(value) if escape is not None else value)
        done = end + 1
        start = text.find("${", done)
    pieces.append(text[done:])
    return "".join(pieces)
