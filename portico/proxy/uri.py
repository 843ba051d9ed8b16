"""Request-target parsing, decoding and re-encoding (reference §2.1.1, §2.1.6).

Paths are handled as ``str`` decoded from bytes with latin-1, so every byte maps to one
character and nothing is lost; config paths are converted the same way when routes are
compiled (see ``to_wire_str``).
"""

from __future__ import annotations

__all__ = [
    "NEEDS_ENCODING",
    "BadTarget",
    "EncodedSlashRefused",
    "ParsedTarget",
    "canon_path",
    "encode_unsafe",
    "encoded_path",
    "parse_target",
    "to_wire_str",
]

import re
from dataclasses import dataclass
from urllib.parse import quote

from portico.config.model import EncodedSlashes

# Characters a canonical path may carry raw (unreserved, sub-delims, ':', '@', '/').
_PATH_SAFE = "/;:@&=+$,!~*'()-._"
NEEDS_ENCODING = re.compile(r"[^A-Za-z0-9/;:@&=+$,!~*'()\-._]")  # finds what canon_path encodes
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class BadTarget(Exception):
    """The request target cannot be served: ``status`` is 400 or 404 (encoded slash, NUL)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class EncodedSlashRefused(BadTarget):
    """A ``%2F`` in the path under AllowEncodedSlashes Off (404): only a ``mapping=`` rule,
    which sees the path before it is decoded, may still take the request."""

    def __init__(self) -> None:
        super().__init__(404, "encoded slash in the request path (AllowEncodedSlashes Off)")


@dataclass(slots=True)
class ParsedTarget:
    raw_path: str        # as sent, undecoded (latin-1 str)
    path: str            # decoded, slash-merged, dot-segments resolved
    query: str | None    # raw query without '?', None when absent
    authority: str | None = None  # from an absolute-form target


def to_wire_str(text: str) -> str:
    """A config string (UTF-8 text) in the latin-1 form request paths use."""
    return text.encode("utf-8").decode("latin-1")


def parse_target(target: bytes, encoded_slashes: EncodedSlashes) -> ParsedTarget:
    """Split and decode an origin-form or absolute-form request target."""
    text = target.decode("latin-1")
    authority = None
    if not text.startswith("/"):
        scheme_end = text.find("://")
        if scheme_end <= 0:
            raise BadTarget(400, f"invalid request target {text[:64]!r}")
        rest = text[scheme_end + 3:]
        slash = rest.find("/")
        query_mark = rest.find("?")
        cut = min(i for i in (slash, query_mark, len(rest)) if i >= 0)
        authority = rest[:cut]
        text = rest[cut:]
        if not text.startswith("/"):
            text = "/" + text
    if "#" in text:
        text = text[:text.index("#")]
    qpos = text.find("?")
    if qpos >= 0:
        raw_path, query = text[:qpos], text[qpos + 1:]
    else:
        raw_path, query = text, None
    path = raw_path
    if "%" in path:
        path = _decode(path, encoded_slashes)
    if "//" in path:
        path = re.sub("/{2,}", "/", path)
    if "/." in path:
        path = _remove_dot_segments(path)
    return ParsedTarget(raw_path, path, query, authority)


def encoded_path(raw_path: str) -> str:
    """The request path as ``mapping=encoded`` and ``mapping=servlet`` rules see it (§2.1.3).

    It stays %-encoded, except that escapes of unreserved characters (letters, digits,
    ``-._~``) are decoded; slash runs are merged and dot segments resolved. httpd normalises
    its URI this far before any rule runs, so ``/e/%7Efoo`` and ``/e/./x`` are seen as
    ``/e/~foo`` and ``/e/x`` and a backend never receives a dot segment it could climb with.
    Other escapes keep their case (``%e9`` stays ``%e9``). The caller has parsed the target
    already, so the escapes are valid; a path that climbs above the root here (``%2F`` keeps
    segments together that decoding splits) is a 400, as in httpd.
    """
    path = raw_path
    if "%" in path:
        path = _ESCAPE.sub(_unreserved_only, path)
    if "//" in path:
        path = re.sub("/{2,}", "/", path)
    if "/." in path:
        path = _remove_dot_segments(path)
    return path


def _unreserved_only(escape: re.Match[str]) -> str:
    char = chr(int(escape.group(1), 16))
    return char if char in _UNRESERVED else escape.group(0)


def _decode(path: str, encoded_slashes: EncodedSlashes) -> str:
    """Percent-decode like httpd's ap_unescape_url: bad escape 400; %00 and (by default) %2F 404."""
    parts = path.split("%")
    out = [parts[0]]
    for part in parts[1:]:
        if len(part) < 2 or not _is_hex(part[:2]):
            raise BadTarget(400, "invalid %-escape in the request path")
        code = int(part[:2], 16)
        if code == 0:
            raise BadTarget(404, "%00 in the request path")
        if code == 0x2F:
            if encoded_slashes is EncodedSlashes.OFF:
                raise EncodedSlashRefused()
            if encoded_slashes is EncodedSlashes.NO_DECODE:
                out.append("%" + part[:2] + part[2:])
                continue
        out.append(chr(code) + part[2:])
    return "".join(out)


def _is_hex(two: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in two)


def _remove_dot_segments(path: str) -> str:
    """Resolve '.' and '..' segments; climbing above the root is a 400 (as httpd)."""
    segments = path.split("/")
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
            continue
        if seg == "..":
            if len(out) <= 1:
                raise BadTarget(400, "request path climbs above the root")
            out.pop()
            if last:
                out.append("")
            continue
        out.append(seg)
    return "/".join(out) or "/"


def canon_path(decoded: str, keep_encoded_slash: bool = False) -> str:
    """Re-encode a decoded path for the backend: unsafe characters become %XX (uppercase)."""
    if not NEEDS_ENCODING.search(decoded):
        return decoded
    if keep_encoded_slash and "%2F" in decoded.upper():
        pieces = re.split("(%2[Ff])", decoded)
        return "".join(p if i % 2 else _quote(p) for i, p in enumerate(pieces))
    return _quote(decoded)


# What may stand raw in a path that is already encoded (a '%' starts an escape).
_UNSAFE_IN_ENCODED = re.compile(r"[^A-Za-z0-9/;:@&=+$,!~*'()\-._%]")


def encode_unsafe(text: str) -> str:
    """Encode what may not stand raw in a request path (``{``, a space, ...) in text that is
    encoded already: config URLs and assembled targets. Its ``%XX`` escapes stay as written."""
    if not _UNSAFE_IN_ENCODED.search(text):
        return text
    return quote(text.encode("latin-1"), safe=_PATH_SAFE + "%")


def _quote(text: str) -> str:
    return quote(text.encode("latin-1"), safe=_PATH_SAFE)
