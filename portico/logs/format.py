"""LogFormat strings (mod_log_config + mod_logio codes), compiled once into a fast callable.

``compile_format(fmt)`` parses the format at config load and returns a function that turns an
``AccessRecord`` into one log line (without the trailing newline). The function is generated
Python source: literal text is inlined as constants and each ``%`` code is a small pre-bound
closure, so formatting does no parsing and no dictionary lookups by code.

How it works, in httpd's terms:

* ``%`` may be followed, in any order, by a status list (``400,501``) optionally negated with
  ``!``, by ``<`` or ``>`` (original or final request), and by ``{argument}``; then one code
  letter, or ``^ti`` / ``^to``. ``%%`` is a literal percent.
* A status list makes the item log ``-`` unless the final status is (``!``: is not) listed.
* ``<`` only changes ``%s`` (original status, the default); ``%>s`` is the final status. There
  are no internal redirects in a proxy, so every other code has one value.
* In literal text ``\\n``, ``\\t``, ``\\r``, ``\\"`` and ``\\\\`` are the usual characters; any
  other backslash is kept as written (as httpd does).
* Untrusted strings are escaped like ``ap_escape_logitem``: ``"`` and ``\\`` get a backslash,
  ``\\b \\n \\r \\t \\v`` are written in C notation, any other byte outside printable ASCII is
  ``\\xhh``. A missing value is ``-``; a present but empty header, note or variable is empty.

Where httpd silently logs a bogus argument literally (``%{foo}p``, ``%{foo}P``, ``%{foo}T``)
we refuse the format at load time instead.
"""

from __future__ import annotations

__all__ = ["LogFormatter", "compile_format", "escape_bytes", "escape_str"]

import os
import threading
import time
from collections.abc import Callable, Iterable

from portico.logs.record import AccessRecord, Headers

LogFormatter = Callable[[AccessRecord], str]
_Item = Callable[[AccessRecord], str]

# ---------------------------------------------------------------------------------- escaping

# Printable ASCII except '"' and '\': bytes that are logged as they are.
_SAFE_BYTES = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')
_C_ESCAPES = {0x08: "\\b", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x0B: "\\v",
              0x22: '\\"', 0x5C: "\\\\"}
# Maps every code point 0..255 that needs escaping to its escaped form (for str.translate on
# latin-1-decoded bytes, where each code point is one original byte).
_ESCAPE_TABLE: dict[int, str] = {
    c: _C_ESCAPES.get(c, f"\\x{c:02x}") for c in range(256) if c not in _SAFE_BYTES
}


def escape_bytes(data: bytes) -> str:
    """Return ``data`` as log-safe ASCII text, escaped the way httpd escapes log items."""
    if not data.translate(None, _SAFE_BYTES):  # nothing but safe bytes left out: fast path
        return data.decode("ascii")
    return data.decode("latin-1").translate(_ESCAPE_TABLE)


def escape_str(text: str) -> str:
    """Like ``escape_bytes`` for text; non-ASCII characters are escaped byte by byte (UTF-8)."""
    return escape_bytes(text.encode("utf-8", "surrogateescape"))


# ------------------------------------------------------------------------------ header access

def _find(headers: Headers, lname: bytes) -> bytes | None:
    """All values of the header named ``lname`` (lower case) joined by ", ", or None."""
    n = len(lname)
    found = None
    for name, value in headers:
        # The length test keeps us from lower-casing every header name.
        if len(name) == n and name.lower() == lname:
            found = value if found is None else found + b", " + value
    return found


def _header_item(arg: str, get: Callable[[AccessRecord], Headers]) -> _Item:
    lname = arg.encode("latin-1").lower()  # bytes.lower(): ASCII only, as header names are

    def item(r: AccessRecord) -> str:
        value = _find(get(r), lname)
        return "-" if value is None else escape_bytes(value)

    return item


def _content_type_item(r: AccessRecord) -> str:
    # httpd logs the response's content type without its parameters (ap_field_noparam).
    value = _find(r.response_headers, b"content-type")
    if value is None:
        return "-"
    return escape_bytes(value.split(b";", 1)[0].rstrip(b" \t"))


def _cookie_item(arg: str) -> _Item:
    want = arg.encode("latin-1")

    def item(r: AccessRecord) -> str:
        for name, value in r.request_headers:
            if len(name) != 6 or name.lower() != b"cookie":
                continue
            # Each Cookie header is its own "a=b; c=d" list (httpd merges them with ", " first
            # and then cannot find cookies from the second header; we can).
            for pair in value.split(b";"):
                cname, eq, cvalue = pair.partition(b"=")
                if eq and cname.strip(b" \t") == want:
                    return escape_bytes(cvalue.strip(b" \t"))
        return "-"

    return item


# ------------------------------------------------------------------------------------- times

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _clf_time(sec: int) -> str:
    """``[10/Oct/2000:13:55:36 -0700]`` in the local time zone (English month names)."""
    tm = time.localtime(sec)
    off = tm.tm_gmtoff
    sign = "-" if off < 0 else "+"
    off = abs(off)
    return (f"[{tm.tm_mday:02d}/{_MONTHS[tm.tm_mon - 1]}/{tm.tm_year}:"
            f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} "
            f"{sign}{off // 3600:02d}{off % 3600 // 60:02d}]")


def _per_second(render: Callable[[int], str], when: Callable[[AccessRecord], int]) -> _Item:
    """An item that renders ``when(r)`` (ns) with ``render(seconds)``, cached for one second.

    Most lines in a busy log share their second, so the cache saves the localtime/strftime.
    """
    cache_sec = -1
    cache_text = ""

    def item(r: AccessRecord) -> str:
        nonlocal cache_sec, cache_text
        sec = when(r) // 1_000_000_000
        if sec != cache_sec:
            cache_text = render(sec)
            cache_sec = sec
        return cache_text

    return item


def _begin(r: AccessRecord) -> int:
    return r.start_ns


def _end(r: AccessRecord) -> int:
    return r.end_ns


def _time_item(arg: str) -> _Item:
    when = _begin
    fmt = arg
    if fmt.startswith("begin:"):
        fmt = fmt[6:]
    elif fmt.startswith("end:"):
        fmt = fmt[4:]
        when = _end
    if not fmt:
        return _per_second(_clf_time, when)
    if fmt == "sec":
        return lambda r: str(when(r) // 1_000_000_000)
    if fmt == "msec":
        return lambda r: str(when(r) // 1_000_000)
    if fmt == "usec":
        return lambda r: str(when(r) // 1_000)
    if fmt == "msec_frac":
        return lambda r: f"{when(r) // 1_000_000 % 1000:03d}"
    if fmt == "usec_frac":
        return lambda r: f"{when(r) // 1_000 % 1_000_000:06d}"
    return _per_second(lambda sec: time.strftime(fmt, time.localtime(sec)), when)


def _duration_item(arg: str) -> _Item:
    divisor = {"": 1_000_000_000, "s": 1_000_000_000, "ms": 1_000_000, "us": 1_000}.get(arg)
    if divisor is None:
        raise ValueError(f"%{{{arg}}}T: the unit must be s, ms or us")
    return lambda r: str((r.end_ns - r.start_ns) // divisor)


# ------------------------------------------------------------------------------ other codes

def _text_or_dash(get: Callable[[AccessRecord], str]) -> _Item:
    """An item for a str field: escaped, ``-`` when empty."""
    def item(r: AccessRecord) -> str:
        value = get(r)
        return escape_str(value) if value else "-"
    return item


def _bytes_or_dash(get: Callable[[AccessRecord], bytes]) -> _Item:
    """An item for a bytes field: escaped, ``-`` when empty."""
    def item(r: AccessRecord) -> str:
        value = get(r)
        return escape_bytes(value) if value else "-"
    return item


def _mapping_item(arg: str, get: Callable[[AccessRecord], dict[str, str]]) -> _Item:
    def item(r: AccessRecord) -> str:
        value = get(r).get(arg)
        return "-" if value is None else escape_str(value)
    return item


def _port_item(arg: str) -> _Item:
    which = arg.lower()
    if which in ("", "canonical"):
        return lambda r: str(r.server_port)
    if which == "local":
        return lambda r: str(r.local_port)
    if which == "remote":
        return lambda r: str(r.remote_port)
    raise ValueError(f"%{{{arg}}}p: the argument must be canonical, local or remote")


def _pid_item(arg: str) -> _Item:
    # Looked up per line, not at compile time: the format is compiled before workers fork.
    which = arg.lower()
    if which in ("", "pid"):
        return lambda r: str(os.getpid())
    if which == "tid":
        return lambda r: str(threading.get_ident())
    if which == "hextid":
        return lambda r: f"{threading.get_ident():x}"
    raise ValueError(f"%{{{arg}}}P: the argument must be pid, tid or hextid")


def _query(r: AccessRecord) -> str:
    return "?" + escape_bytes(r.query) if r.query else ""


def _clf_bytes(r: AccessRecord) -> str:
    return str(r.body_bytes) if r.body_bytes else "-"


def _status_text(status: int) -> str:
    return str(status) if status > 0 else "-"


# code -> factory(argument, final) -> item. ``final`` is True after ">" (only %s cares).
_Factory = Callable[[str, bool], _Item]
_CODES: dict[str, _Factory] = {
    "a": lambda a, f: (lambda r: r.peer_ip or "-") if a == "c" else (lambda r: r.remote_ip or "-"),
    "A": lambda a, f: lambda r: r.local_ip or "-",
    "B": lambda a, f: lambda r: str(r.body_bytes),
    "b": lambda a, f: _clf_bytes,
    "C": lambda a, f: _cookie_item(a),
    "D": lambda a, f: lambda r: str((r.end_ns - r.start_ns) // 1000),
    "e": lambda a, f: _mapping_item(a, lambda r: r.env),
    "f": lambda a, f: _text_or_dash(lambda r: r.filename),
    "h": lambda a, f: _text_or_dash((lambda r: r.peer_ip) if a == "c" else (lambda r: r.remote_ip)),
    "H": lambda a, f: _bytes_or_dash(lambda r: r.protocol),
    "i": lambda a, f: _header_item(a, lambda r: r.request_headers),
    "I": lambda a, f: lambda r: str(r.bytes_in),
    "k": lambda a, f: lambda r: str(r.keepalive_count),
    "l": lambda a, f: lambda r: "-",   # no identd lookups
    "L": lambda a, f: _text_or_dash(lambda r: r.request_id),
    "m": lambda a, f: _bytes_or_dash(lambda r: r.method),
    "n": lambda a, f: _mapping_item(a, lambda r: r.notes),
    "o": lambda a, f: (_content_type_item if a.lower() == "content-type"
                       else _header_item(a, lambda r: r.response_headers)),
    "O": lambda a, f: lambda r: str(r.bytes_out),
    "p": lambda a, f: _port_item(a),
    "P": lambda a, f: _pid_item(a),
    "q": lambda a, f: _query,
    "r": lambda a, f: _bytes_or_dash(lambda r: r.request_line),
    "R": lambda a, f: _text_or_dash(lambda r: r.handler),
    "s": lambda a, f: ((lambda r: _status_text(r.status)) if f
                       else (lambda r: _status_text(r.original_status))),
    "S": lambda a, f: lambda r: str(r.bytes_in + r.bytes_out),
    "t": lambda a, f: _time_item(a),
    "T": lambda a, f: _duration_item(a),
    "u": lambda a, f: _text_or_dash(lambda r: r.remote_user),
    "U": lambda a, f: _bytes_or_dash(lambda r: r.path),
    "v": lambda a, f: _text_or_dash(lambda r: r.server_name),
    "V": lambda a, f: _text_or_dash(lambda r: r.host),
    "X": lambda a, f: lambda r: r.conn_status or "-",
    "^ti": lambda a, f: _header_item(a, lambda r: r.request_trailers),
    "^to": lambda a, f: _header_item(a, lambda r: r.response_trailers),
}


def _only_for(item: _Item, statuses: frozenset[int], negate: bool) -> _Item:
    """Wrap ``item`` so that it logs ``-`` unless the final status is (not) in ``statuses``."""
    if negate:
        return lambda r: "-" if r.status in statuses else item(r)
    return lambda r: item(r) if r.status in statuses else "-"


# ------------------------------------------------------------------------------------ parser

_DIGITS = frozenset("0123456789")  # not str.isdigit(), which accepts other scripts' digits
_LITERAL_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _literal(fmt: str, i: int, out: list[str]) -> int:
    """Append the literal text starting at ``fmt[i]`` up to the next ``%``; return its end."""
    n = len(fmt)
    while i < n and fmt[i] != "%":
        ch = fmt[i]
        if ch == "\\" and i + 1 < n and fmt[i + 1] in _LITERAL_ESCAPES:
            out.append(_LITERAL_ESCAPES[fmt[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return i


def _directive(fmt: str, i: int) -> tuple[_Item | str, int]:
    """Parse the ``%`` code whose ``%`` is at ``fmt[i]``; return (item or literal, next index)."""
    start = i
    i += 1
    if fmt.startswith("%", i):
        return "%", i + 1
    arg = ""
    final = False
    negate = False
    statuses: list[int] = []
    n = len(fmt)
    while i < n:
        ch = fmt[i]
        if ch == "!":
            negate = True
            i += 1
        elif ch in "<>":
            final = ch == ">"
            i += 1
        elif ch == ",":
            i += 1
        elif ch in _DIGITS:
            j = i
            while j < n and fmt[j] in _DIGITS:
                j += 1
            statuses.append(int(fmt[i:j]))
            i = j
        elif ch == "{":
            close = fmt.find("}", i + 1)
            if close < 0:
                raise ValueError(f"unclosed %{{ in log format at offset {start}: {fmt[start:]!r}")
            arg = fmt[i + 1:close]
            i = close + 1
        else:
            break
    else:
        raise ValueError(f"log format ends inside a %-code: {fmt[start:]!r}")
    code = fmt[i:i + 3] if fmt[i] == "^" else fmt[i]
    factory = _CODES.get(code)
    if factory is None:
        raise ValueError(f"unrecognized log format code %{code} at offset {start} in {fmt!r}")
    item = factory(arg, final)
    if statuses:
        item = _only_for(item, frozenset(statuses), negate)
    return item, i + len(code)


def _parse(fmt: str) -> list[_Item | str]:
    """Split ``fmt`` into literal strings (adjacent ones merged) and items, in order."""
    parts: list[_Item | str] = []
    i = 0
    n = len(fmt)
    while i < n:
        if fmt[i] == "%":
            piece, i = _directive(fmt, i)
        else:
            chars: list[str] = []
            i = _literal(fmt, i, chars)
            piece = "".join(chars)
        if isinstance(piece, str) and parts and isinstance(parts[-1], str):
            parts[-1] += piece
        else:
            parts.append(piece)
    return parts


def _generate(parts: Iterable[_Item | str]) -> LogFormatter:
    """Build one function that renders the parts as a single f-string (fastest concatenation).

    Literals are inlined with their braces doubled; the f-string as a whole is written with
    ``repr()``, which always yields a valid, inert string literal whatever the text holds.
    """
    namespace: dict[str, object] = {}
    template: list[str] = []
    for index, part in enumerate(parts):
        if isinstance(part, str):
            template.append(part.replace("{", "{{").replace("}", "}}"))
        else:
            name = f"_item{index}"
            namespace[name] = part
            template.append("{" + name + "(r)}")
    source = f"def format_record(r):\n    return f{''.join(template)!r}\n"
    exec(compile(source, "<log format>", "exec"), namespace)
    return namespace["format_record"]  # type: ignore[return-value]


def compile_format(fmt: str) -> LogFormatter:
    """Compile a LogFormat string into a function ``AccessRecord -> line`` (no newline).

    Raises ``ValueError`` naming the problem for an unknown code, an unclosed ``%{`` or a
    format that ends inside a code. Nicknames must already be resolved by the caller.
    """
    return _generate(_parse(fmt))
