"""The byte layout of the scoreboard: header, records, lanes, and the limits on strings.

A record is a list of fields with fixed offsets, computed once at import. Numbers are
naturally aligned (8-byte fields on 8-byte offsets) so the scoreboard can read and write
them through typed ``memoryview`` casts (``'q'``, ``'d'``, ``'I'``, ``'i'``) without
``struct`` on the hot path, and every record size is a multiple of 64 bytes so records of
different processes never share a cache line.

Whole-board order: ``header | worker records | balancer records | process records | lanes``,
where ``lanes`` is one block per serving process, each block holding one ``LANE`` entry per
worker record (a process writes only its own block; see ``scoreboard``).

The header carries ``MAGIC``, ``LAYOUT_VERSION`` and a fingerprint of every field below, so
a board written by a different layout is refused (``LayoutMismatch``) instead of misread.
"""

from __future__ import annotations

__all__ = [
    "BALANCER", "HEADER", "HEALTH_RING", "LANE", "LANE_COUNTERS", "LATENCY_BOUNDS",
    "LATENCY_BUCKETS", "LATENCY_SUM", "LAYOUT_VERSION", "LayoutMismatch", "MAGIC",
    "MAX_BALANCER_NAME", "MAX_LBMETHOD", "MAX_NONCE", "MAX_ROUTE", "MAX_STICKY",
    "MAX_WORKER_NAME", "PROCESS", "Record", "WORKER", "fingerprint", "read_str", "write_str",
]

import zlib
from collections.abc import Sequence
from typing import NamedTuple

MAGIC = b"PORTICO\x00"
LAYOUT_VERSION = 2           # 2: the request-duration histogram in the lanes

# Limits (§1.3). "< 64" in httpd means 63 usable bytes plus its NUL; we keep the same bound.
MAX_WORKER_NAME = 384        # the extended worker name
MAX_BALANCER_NAME = 128      # "balancer://name"; httpd's vpath/vhost limit is 64, names are ours
MAX_ROUTE = 63               # route and redirect
MAX_STICKY = 63              # each stickysession name
MAX_LBMETHOD = 16
MAX_NONCE = 36               # a UUID
HEALTH_RING = 16             # recent health results kept per worker

_SIZES = {"q": 8, "d": 8, "I": 4, "i": 4}


class LayoutMismatch(ValueError):
    """A board's header does not match this code's layout (magic, version or fingerprint)."""


class Field(NamedTuple):
    name: str
    kind: str    # q i64, d f64, I u32, i i32, s length-prefixed string, r raw bytes
    size: int    # payload bytes for s/r, else the number's size
    offset: int


class Record:
    """Fixed offsets for one kind of record; ``size`` is padded to a multiple of 64."""

    def __init__(self, name: str, spec: Sequence[tuple[str, str] | tuple[str, str, int]]):
        self.name = name
        self.fields: dict[str, Field] = {}
        offset = 0
        for item in spec:
            fname, kind = item[0], item[1]
            if kind in ("s", "r"):
                size = item[2]  # type: ignore[misc]
                align = 4 if kind == "s" else 8
                offset = -(-offset // align) * align
                self.fields[fname] = Field(fname, kind, size, offset)
                offset += size + (4 if kind == "s" else 0)
            else:
                size = _SIZES[kind]
                offset = -(-offset // size) * size
                self.fields[fname] = Field(fname, kind, size, offset)
                offset += size
        self.size = -(-offset // 64) * 64

    def offset(self, name: str) -> int:
        return self.fields[name].offset

    def describe(self) -> str:
        """A canonical text of the fields, for the layout fingerprint."""
        return self.name + ";" + ";".join(
            f"{f.name}:{f.kind}{f.size}@{f.offset}" for f in self.fields.values())


HEADER = Record("header", [
    ("magic", "r", 8), ("version", "I"), ("fingerprint", "I"),
    ("header_size", "I"), ("worker_size", "I"), ("balancer_size", "I"),
    ("process_size", "I"), ("lane_size", "I"),
    ("n_workers", "I"), ("n_balancers", "I"), ("n_processes", "I"),
    ("generation", "q"), ("edits", "q"), ("members_version", "q"), ("created", "d"),
    ("edit_holder", "q"),
    ("workers_at", "q"), ("balancers_at", "q"), ("processes_at", "q"), ("lanes_at", "q"),
    ("total_size", "q"),
    # Counters of processes that are gone, so server-status totals do not drop at a restart.
    ("retired_requests", "q"), ("retired_conns", "q"),
    ("retired_bytes_in", "q"), ("retired_bytes_out", "q"),
])

#: Upper bounds in seconds of the request-duration histogram's finite buckets, ascending.
#: A value goes to the first bucket whose bound is >= it (Prometheus ``le``); one more
#: bucket (+Inf) takes what is above the last bound. Part of the layout fingerprint.
LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Lane counter names of the histogram buckets (not cumulative), the +Inf one last.
LATENCY_BUCKETS = tuple(f"lat_{n}" for n in range(len(LATENCY_BOUNDS) + 1))
#: Lane counter name of the histogram's sum, in whole microseconds.
LATENCY_SUM = "lat_sum_us"

#: The per-process counters of one worker, in lane order. ``busy`` goes up and down; the
#: others only grow. The worker record holds one ``carry_<name>`` per counter (see WORKER).
LANE_COUNTERS = ("busy", "elected", "requests", "errors", "transferred", "read",
                 *LATENCY_BUCKETS, LATENCY_SUM)
LANE = Record("lane", [(name, "q") for name in LANE_COUNTERS])

WORKER = Record("worker", [
    ("status", "I"), ("balancer", "i"), ("lbfactor", "i"), ("lbset", "i"),
    ("retries", "I"), ("pcount", "I"), ("fcount", "I"), ("hc_last", "i"),
    ("hc_head", "I"), ("hc_count", "I"), ("edits", "I"), ("pad0", "I"),
    ("lbstatus", "q"),
    *[(f"carry_{name}", "q") for name in LANE_COUNTERS],
    ("error_time", "d"), ("hc_last_time", "d"), ("updated", "d"),
    # Ring of recent health results: HEALTH_RING x (time f64, latency_ms f64, ok i64).
    ("hc_ring", "r", HEALTH_RING * 24),
    ("name", "s", MAX_WORKER_NAME), ("route", "s", MAX_ROUTE + 1),
    ("redirect", "s", MAX_ROUTE + 1),
])

BALANCER = Record("balancer", [
    ("nofailover", "I"), ("forcerecovery", "I"), ("need_reset", "I"), ("maxattempts", "i"),
    ("first_worker", "I"), ("max_members", "I"), ("growth", "I"), ("growth_used", "I"),
    ("edits", "I"), ("sticky_sep", "I"),
    ("lock_holder", "q"), ("timeout", "d"), ("updated", "d"),
    ("name", "s", MAX_BALANCER_NAME), ("lbmethod", "s", MAX_LBMETHOD),
    ("sticky", "s", MAX_STICKY + 1), ("sticky_path", "s", MAX_STICKY + 1),
    ("nonce", "s", MAX_NONCE),
])

PROCESS = Record("process", [
    ("pid", "q"), ("generation", "q"), ("state", "q"), ("requests", "q"),
    ("conns", "q"), ("conns_total", "q"), ("bytes_in", "q"), ("bytes_out", "q"),
    ("start_time", "d"), ("updated", "d"),
])


def fingerprint() -> int:
    """CRC-32 of every record's field list and of the histogram bounds: changes whenever
    any offset, size or bucket bound does."""
    text = "|".join(r.describe() for r in (HEADER, LANE, WORKER, BALANCER, PROCESS))
    text += "|latency:" + ",".join(repr(b) for b in LATENCY_BOUNDS)
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def read_str(buf: memoryview, offset: int, limit: int) -> str:
    """A length-prefixed UTF-8 string stored at ``offset`` (u32 length, then the bytes)."""
    length = int.from_bytes(buf[offset:offset + 4], "little")
    length = min(length, limit)  # a torn or corrupt length must not read past the field
    return bytes(buf[offset + 4:offset + 4 + length]).decode("utf-8", "replace")


def write_str(buf: memoryview, offset: int, limit: int, value: str, what: str) -> None:
    """Store ``value``; ValueError when its UTF-8 form is longer than ``limit`` bytes."""
    data = value.encode("utf-8")
    if len(data) > limit:
        raise ValueError(f"{what} is {len(data)} bytes long, the limit is {limit}: {value!r}")
    buf[offset + 4:offset + 4 + len(data)] = data
    buf[offset + 4 + len(data):offset + 4 + limit] = bytes(limit - len(data))
    buf[offset:offset + 4] = len(data).to_bytes(4, "little")
