"""Chunked transfer coding (RFC 9112 §7.1): a table-driven decoder and the encoder helpers.

How it works
------------
The decoder reads one *token* at a time from the input and looks up
``(state, token) -> next state`` in ``_TRANSITIONS``; a pair missing from the table is a
protocol error (DESIGN rule 2). Tokens come from three readers, one per kind of input:

* in ``SIZE`` and ``TRAILER`` state a whole line is read (``\\n`` found with ``bytes.find``;
  a ``\\r`` before it is dropped, so bare-LF backends are tolerated) and classified. A size
  line gives ``SIZE`` or ``LAST`` (size 0) and stores the size; a trailer line gives
  ``FIELD`` (and stores the field) or ``BLANK``.
* in ``DATA`` state no line is read: up to ``remaining`` bytes are taken as one slice and
  emitted as a ``Data`` event (``PART``; ``PART_END`` once the chunk is complete). Bodies are
  never scanned byte by byte; when the whole input is payload the input object itself is
  emitted.
* in ``DATA_END`` state the next one or two bytes must be CRLF (or LF), giving ``CRLF``;
  anything else gives ``JUNK``, which has no entry, so it fails at once instead of waiting for
  a line ending.

Bounds (DESIGN rule 7): a size line longer than ``max_line`` (counted even before its line
ending arrives), a size of more than 16 hex digits, more than ``max_fields`` trailer fields or
a trailer line longer than ``max_field_size`` are errors. Chunk extensions are ignored.

The decoder keeps no byte buffer. ``feed`` returns how far it consumed; when it stops in the
middle of a line the caller keeps the unconsumed tail and passes it again, joined with the
next bytes.
"""

from __future__ import annotations

__all__ = [
    "LAST_CHUNK",
    "ChunkedDecoder",
    "chunk_frames",
    "encode_trailers",
]

from typing import NoReturn

from portico.errors import RemoteProtocolError
from portico.protocols.events import Data, Headers

# States.
_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)
_STATE_NAMES = ("chunk-size line", "chunk data", "CRLF after chunk data", "trailer", "done")

# Tokens.
_T_SIZE, _T_LAST, _T_PART, _T_PART_END, _T_CRLF, _T_JUNK, _T_FIELD, _T_BLANK = range(8)
_TOKEN_NAMES = ("chunk size", "last chunk", "data", "end of chunk data", "CRLF",
                "unexpected bytes", "trailer field", "blank line")

_TRANSITIONS: dict[tuple[int, int], int] = {
    (_SIZE, _T_SIZE): _DATA,
    (_SIZE, _T_LAST): _TRAILER,
    (_DATA, _T_PART): _DATA,
    (_DATA, _T_PART_END): _DATA_END,
    (_DATA_END, _T_CRLF): _SIZE,
    (_TRAILER, _T_FIELD): _TRAILER,
    (_TRAILER, _T_BLANK): _DONE,
}

_HEX_DIGITS = b"0123456789abcdefABCDEF"
# RFC 9110 tchar: ``name.translate(None, TOKEN_CHARS)`` is empty exactly for a token.
TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Control characters a field value must not contain (HTAB is allowed).
VALUE_CTLS = bytes(c for c in range(32) if c != 9) + b"\x7f"
_MAX_SIZE_DIGITS = 16


class ChunkedDecoder:
    """Decodes one chunked body; create a new one (or ``reset``) per message."""

    __slots__ = ("_max_field_size", "_max_fields", "_max_line", "_remaining", "_state",
                 "_status", "trailers")

    def __init__(
        self, max_line: int = 4096, max_field_size: int = 8192, max_fields: int = 100,
        status: int = 502,
    ) -> None:
        """``status`` is the status carried by the errors raised (502: a backend's fault)."""
        self._max_line = max_line
        self._max_field_size = max_field_size
        self._max_fields = max_fields
        self._status = status
        self._state = _SIZE
        self._remaining = 0
        self.trailers: Headers = []

    def reset(self) -> None:
        """Prepare for the next chunked body."""
        self._state = _SIZE
        self._remaining = 0
        self.trailers = []

    @property
    def done(self) -> bool:
        """The last chunk and the trailer section have been read."""
        return self._state == _DONE

    def feed(self, data: bytes, pos: int, out: list) -> int:
        """Decode ``data[pos:]``, appending ``Data`` events to ``out``.

        Returns the index of the first byte not consumed: ``len(data)`` when everything was
        used, less when the body ended (``done``; the rest belongs to the next message) or
        when only part of a line is left (the caller passes it again with more bytes).
        Raises ``RemoteProtocolError`` on malformed input.
        """
        state = self._state
        end = len(data)
        while pos < end and state != _DONE:
            if state == _DATA:
                remaining = self._remaining
                avail = end - pos
                if avail <= remaining:
                    out.append(Data(data if pos == 0 else data[pos:]))
                    pos = end
                    remaining -= avail
                else:
                    out.append(Data(data[pos:pos + remaining]))
                    pos += remaining
                    remaining = 0
                self._remaining = remaining
                token = _T_PART if remaining else _T_PART_END
            elif state == _DATA_END:
                first = data[pos]
                if first == 10:  # bare LF, tolerated from backends
                    pos += 1
                    token = _T_CRLF
                elif first == 13:
                    if pos + 1 == end:
                        break  # wait for the byte after CR
                    if data[pos + 1] != 10:
                        token = _T_JUNK
                    else:
                        pos += 2
                        token = _T_CRLF
                else:
                    token = _T_JUNK
            else:
                limit = self._max_line if state == _SIZE else self._max_field_size
                nl = data.find(b"\n", pos)
                if nl < 0:
                    if end - pos > limit + 1:
                        self._fail(f"{_STATE_NAMES[state]} line too long")
                    break
                stop = nl - 1 if nl > pos and data[nl - 1] == 13 else nl
                if stop - pos > limit:
                    self._fail(f"{_STATE_NAMES[state]} line too long")
                line = data[pos:stop]
                pos = nl + 1
                token = self._size_token(line) if state == _SIZE else self._trailer_token(line)
            nxt = _TRANSITIONS.get((state, token))
            if nxt is None:
                self._fail(f"{_TOKEN_NAMES[token]} where {_STATE_NAMES[state]} was expected")
            state = nxt
        self._state = state
        return pos

    def _size_token(self, line: bytes) -> int:
        """Classify a chunk-size line and remember the size it announces."""
        semi = line.find(b";")
        digits = (line if semi < 0 else line[:semi]).rstrip(b" \t")
        if not digits or digits.translate(None, _HEX_DIGITS):
            self._fail(f"invalid chunk size line {line[:40]!r}")
        if len(digits) > _MAX_SIZE_DIGITS:
            self._fail("chunk size too large")
        size = int(digits, 16)
        self._remaining = size
        return _T_SIZE if size else _T_LAST

    def _trailer_token(self, line: bytes) -> int:
        """Classify a trailer-section line, storing a valid field."""
        if not line:
            return _T_BLANK
        if len(self.trailers) >= self._max_fields:
            self._fail("too many trailer fields")
        colon = line.find(b":")
        name = line[:colon]
        if colon <= 0 or name.translate(None, TOKEN_CHARS):
            self._fail(f"invalid trailer line {line[:40]!r}")
        value = line[colon + 1:].strip(b" \t")
        if value.translate(None, VALUE_CTLS) != value:
            self._fail("control character in a trailer field")
        self.trailers.append((name, value))
        return _T_FIELD

    def _fail(self, message: str) -> NoReturn:
        self._state = _DONE  # a failed decoder never continues
        raise RemoteProtocolError(f"bad chunked body: {message}", self._status)


LAST_CHUNK = b"0\r\n\r\n"
"""The last chunk with an empty trailer section: ends a chunked body."""


def chunk_frames(data: bytes) -> tuple[bytes, bytes, bytes]:
    """``data`` framed as one chunk, as three pieces for ``transport.writelines``.

    ``data`` is not copied. Empty ``data`` gives three empty pieces: writing an empty chunk
    would end the body by accident.
    """
    if not data:
        return b"", b"", b""
    return b"%x\r\n" % len(data), data, b"\r\n"


def encode_trailers(trailers: Headers) -> bytes:
    """The last chunk followed by ``trailers`` and the final CRLF.

    Names and values must already be valid field content (as the parsers deliver them).
    """
    if not trailers:
        return LAST_CHUNK
    parts = [b"0\r\n"]
    for name, value in trailers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)
