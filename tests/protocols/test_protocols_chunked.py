"""ChunkedDecoder and the chunk encoders: round trips under any split, and every refusal."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portico.errors import RemoteProtocolError
from portico.protocols.chunked import (
    _TRANSITIONS,
    LAST_CHUNK,
    ChunkedDecoder,
    chunk_frames,
    encode_trailers,
)
from portico.protocols.events import Data


def decode(wire: bytes, cuts: list[int] | None = None, **limits: int):
    """Feed ``wire`` cut at ``cuts``, keeping unconsumed tails as a caller must.

    Returns (payload, trailers, leftover after the body).
    """
    decoder = ChunkedDecoder(**limits)
    bounds = [0, *sorted(set(cuts or [])), len(wire)]
    out: list = []
    carry = b""
    for start, stop in itertools.pairwise(bounds):
        data = carry + wire[start:stop]
        pos = decoder.feed(data, 0, out)
        carry = data[pos:]
        if decoder.done:
            carry += wire[stop:]
            break
    assert all(isinstance(e, Data) and e.data for e in out)
    assert decoder.done, "body did not end"
    return b"".join(e.data for e in out), decoder.trailers, carry


def encode(payload: bytes, sizes: list[int], trailers=None) -> bytes:
    """``payload`` as chunks of the given sizes (cycled), with ``chunk_frames``."""
    parts = []
    pos = 0
    i = 0
    while pos < len(payload):
        size = max(1, sizes[i % len(sizes)]) if sizes else len(payload)
        parts += chunk_frames(payload[pos:pos + size])
        pos += size
        i += 1
    parts.append(encode_trailers(trailers or []))
    return b"".join(parts)


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=600),
       sizes=st.lists(st.integers(min_value=1, max_value=300), max_size=8),
       cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
       tail=st.binary(max_size=20))
def test_round_trip_any_chunking_any_split(payload, sizes, cuts, tail):
    wire = encode(payload, sizes)
    got, trailers, leftover = decode(wire + tail, [c for c in cuts if c < len(wire)])
    assert got == payload
    assert trailers == []
    assert leftover == tail


@settings(max_examples=50, deadline=None)
@given(names=st.lists(st.from_regex(rb"\A[A-Za-z][A-Za-z0-9-]{0,10}\Z"), max_size=5),
       value=st.from_regex(rb"\A[ -~]{0,20}\Z"))
def test_trailers_round_trip(names, value):
    trailers = [(n, value.strip(b" \t")) for n in names]
    wire = encode(b"abc", [2], trailers)
    for cut in range(len(wire) + 1):
        assert decode(wire, [cut])[:2] == (b"abc", trailers)


def test_whole_input_payload_is_passed_through_without_copy():
    decoder = ChunkedDecoder()
    out: list = []
    assert decoder.feed(b"10\r\n", 0, out) == 4
    data = b"0123456789"
    assert decoder.feed(data, 0, out) == len(data)
    assert out[0].data is data


def test_extensions_are_ignored_and_bare_lf_is_tolerated():
    assert decode(b"3;a=b;c\r\nabc\r\n2 ; x=\"y\"\r\nde\r\n0;z\r\n\r\n")[0] == b"abcde"
    assert decode(b"3\nabc\n0\nT: v\n\n")[:2] == (b"abc", [(b"T", b"v")])
    assert decode(b"A\r\n0123456789\r\n0\r\n\r\n")[0] == b"0123456789"


def test_encoders():
    assert chunk_frames(b"hello") == (b"5\r\n", b"hello", b"\r\n")
    assert chunk_frames(b"x" * 255)[0] == b"ff\r\n"
    assert chunk_frames(b"") == (b"", b"", b"")
    assert LAST_CHUNK == b"0\r\n\r\n"
    assert encode_trailers([]) == LAST_CHUNK
    assert encode_trailers([(b"A", b"1"), (b"B", b"")]) == b"0\r\nA: 1\r\nB: \r\n\r\n"


def test_every_table_entry_is_reachable_by_a_plain_body():
    # Sanity of the table itself: from SIZE a complete body reaches DONE.
    assert len(_TRANSITIONS) == 7
    assert decode(b"1\r\na\r\n0\r\nT: 1\r\n\r\n")[:2] == (b"a", [(b"T", b"1")])


BAD = {
    "not-hex": b"zz\r\nabc\r\n0\r\n\r\n",
    "empty-size": b"\r\nabc\r\n0\r\n\r\n",
    "sign": b"+3\r\nabc\r\n0\r\n\r\n",
    "hex-prefix": b"0x3\r\nabc\r\n0\r\n\r\n",
    "underscore": b"1_0\r\n",
    "leading-space": b" 3\r\nabc\r\n0\r\n\r\n",
    "too-many-digits": b"1" + b"0" * 16 + b"\r\n",
    "missing-crlf-after-data": b"3\r\nabcX\r\n0\r\n\r\n",
    "cr-then-junk-after-data": b"3\r\nabc\rX0\r\n\r\n",
    "trailer-without-colon": b"0\r\nnot a field\r\n\r\n",
    "trailer-bad-name": b"0\r\nBad Name: v\r\n\r\n",
    "trailer-empty-name": b"0\r\n: v\r\n\r\n",
    "trailer-ctl": b"0\r\nT: a\x00b\r\n\r\n",
    "bare-cr-in-size": b"3\rx\r\nabc\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_chunked_is_refused_whole_and_bytewise(name):
    wire = BAD[name]
    for cuts in ([], list(range(1, len(wire)))):
        with pytest.raises(RemoteProtocolError) as info:
            decode(wire, cuts)
        assert info.value.status == 502


def test_size_line_length_is_bounded_before_its_end():
    decoder = ChunkedDecoder(max_line=20)
    with pytest.raises(RemoteProtocolError, match="too long"):
        decoder.feed(b"1;" + b"e" * 30, 0, [])
    assert decode(b"1;" + b"e" * 18 + b"\r\na\r\n0\r\n\r\n", max_line=20)[0] == b"a"


def test_trailer_bounds():
    with pytest.raises(RemoteProtocolError, match="too many"):
        decode(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", max_fields=2)
    with pytest.raises(RemoteProtocolError, match="too long"):
        decode(b"0\r\nA: " + b"v" * 50 + b"\r\n\r\n", max_field_size=20)


def test_status_is_configurable_for_client_side_use():
    with pytest.raises(RemoteProtocolError) as info:
        ChunkedDecoder(status=400).feed(b"zz\r\n", 0, [])
    assert info.value.status == 400


def test_reset_allows_reuse():
    decoder = ChunkedDecoder()
    out: list = []
    decoder.feed(b"0\r\nA: 1\r\n\r\n", 0, out)
    assert decoder.done and decoder.trailers == [(b"A", b"1")]
    decoder.reset()
    assert not decoder.done and decoder.trailers == []
    assert decoder.feed(b"1\r\nz\r\n0\r\n\r\n", 0, out) == 11 and decoder.done
