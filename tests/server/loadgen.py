"""Steady client load for process-model tests, and helpers to look at a master's workers.

`Load` runs client threads against 127.0.0.1:PORT: some reuse one keep-alive connection
(http.client reconnects by itself after a ``Connection: close`` response), others open a
new connection for every request. Every request is recorded with its start time, outcome and
the marker found in its body, so a test can assert "no request failed", "no request started
after T failed" or "the new config answered".
"""

from __future__ import annotations

__all__ = ["Load", "Outcome", "children", "wait_until"]

import http.client
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_MARKER = re.compile(rb"/echo/(gen\d+)/")


@dataclass(frozen=True)
class Outcome:
    """One request: when it started (monotonic), how it ended, what it said."""

    started: float
    ok: bool
    marker: str | None = None    # "genN" from the echoed target, for a 200
    error: str | None = None     # exception or bad status, for a failure
    reset: bool = False          # the failure was a connection reset


class Load:
    """Client threads doing GETs in a loop until `stop()` (bounded by ``limit`` seconds)."""

    def __init__(self, port: int, path: str = "/app/x", keepalive: int = 2, fresh: int = 2,
                 limit: float = 30.0) -> None:
        self.port = port
        self.path = path
        self.limit = limit
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.outcomes: list[Outcome] = []
        self._threads = [threading.Thread(target=self._keepalive_client, daemon=True)
                         for _ in range(keepalive)]
        self._threads += [threading.Thread(target=self._fresh_client, daemon=True)
                          for _ in range(fresh)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

    # -- what tests read --------------------------------------------------------------------
    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def failures(self, since: float = 0.0) -> list[Outcome]:
        return [o for o in self.snapshot() if not o.ok and o.started >= since]

    def count(self, since: float = 0.0, marker: str | None = None) -> int:
        return sum(1 for o in self.snapshot() if o.ok and o.started >= since
                   and (marker is None or o.marker == marker))

    # -- clients ----------------------------------------------------------------------------
    def _running(self, until: float) -> bool:
        return not self._stop.is_set() and time.monotonic() < until

    def _keepalive_client(self) -> None:
        until = time.monotonic() + self.limit
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            while self._running(until):
                self._one(conn, {})
        finally:
            conn.close()

    def _fresh_client(self) -> None:
        until = time.monotonic() + self.limit
        while self._running(until):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self._one(conn, {"Connection": "close"})
            finally:
                conn.close()

    def _one(self, conn: http.client.HTTPConnection, headers: dict[str, str]) -> None:
        started = time.monotonic()
        try:
            conn.request("GET", self.path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()  # the next request on this client starts a new connection
            reset = isinstance(exc, ConnectionResetError)
            self._record(Outcome(started, False, error=repr(exc), reset=reset))
            return
        if resp.status != 200:
            self._record(Outcome(started, False, error=f"status {resp.status}: {body[:200]!r}"))
            return
        match = _MARKER.search(body)
        self._record(Outcome(started, True, marker=match.group(1).decode() if match else None))

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)


def children(pid: int) -> set[int]:
    """Pids of the live (not zombie) child processes of ``pid``, read from /proc."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry))
    return out


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``predicate`` until it returns something true; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)  # a poll interval inside a deadline


def get_marker(port: int, path: str = "/app/x") -> str | None:
    """One GET on a new connection; the "genN" marker of a 200, else None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                         .encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return None
    if not data.startswith(b"HTTP/1.1 200"):
        return None
    match = _MARKER.search(data)
    return match.group(1).decode() if match else None
