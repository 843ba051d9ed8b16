"""A real HTTP/1.1 origin server for end-to-end tests.

`Origin` runs an asyncio server (raw streams, our own parser) on its own event loop in a
background thread, so sync pytest tests can start it, talk to it through the proxy, and read
what it received. It listens on 127.0.0.1 with an ephemeral port, on a unix socket, or with
TLS. Every request is recorded (`Recorded`) with its raw target, headers as sent (a list of
pairs, order and case kept), body and connection id; every byte received is also kept per
connection so a test can prove that *nothing* reached the origin.

Responses are chosen by path (see `Origin._respond`):

* ``/echo…``            200, JSON of what the origin saw (any path starting with /echo)
* ``/status/N``          status N
* ``/slow/MS``           waits MS milliseconds before the head, then echoes
* ``/hang``              never answers (until the peer closes or the origin stops)
* ``/garbage``           non-HTTP bytes, then close
* ``/close-mid-body``    Content-Length 1000, 10 bytes, close
* ``/close-mid-chunked`` one chunk, then close without the last-chunk
* ``/chunked/N``         N chunks (``?size=S`` bytes each, default 1000) of `pattern` bytes
* ``/big/N``             N bytes of `pattern` with Content-Length
* ``/big/N?cut=M``       Content-Length N but only M bytes, then close (``&stall=1``: hang)
* ``/set-cookie?c=V&c=W`` one Set-Cookie header per ``c``
* ``/redirect?to=URL``   302 with Location: URL
* ``/headers?Name=V&…``  the given response headers (repeatable)
* ``/no-colon``          a response header line without a colon (body "ok", close-delimited)
* ``/early-hints``       a 103 Early Hints (Link header) first, then the echo
* ``/upload``            reads the body slowly (``?pause_ms=``, ``?sleep_ms=`` per
  ``?chunk=`` bytes) without keeping it, answers JSON {"length", "sha256"}
* anything else          200 echo as well

Keep-alive is the default; a request with ``Connection: close`` (or HTTP/1.0 without
keep-alive) gets ``Connection: close`` and the connection is closed after the response.
"""

from __future__ import annotations

__all__ = ["Origin", "Recorded", "pattern", "pattern_sha256"]

import asyncio
import contextlib
import hashlib
import itertools
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_MAX_HEAD = 256 * 1024
_READ_SIZE = 65536
_START_TIMEOUT = 10.0
_HANG_LIMIT = 120.0  # /hang never answers, but is still bounded so a stuck test cannot leak


def pattern(n: int) -> bytes:
    """Return n deterministic bytes (a repeating 256-byte ramp) for body integrity checks."""
    block = bytes(range(256))
    reps, rest = divmod(n, 256)
    return block * reps + block[:rest]


def pattern_sha256(n: int) -> str:
    """Return the hex sha256 of ``pattern(n)`` without holding more than 1 MiB at a time."""
    h = hashlib.sha256()
    chunk = pattern(1 << 20)
    while n > 0:
        take = min(n, len(chunk))
        h.update(chunk[:take])
        n -= take
    return h.hexdigest()


@dataclass
class Recorded:
    """One request as the origin saw it. ``headers`` keep the order and case as received."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    conn_id: int
    body_len: int = 0
    body_sha256: str = ""
    chunked: bool = False

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in arrival order."""
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def as_json(self) -> dict[str, Any]:
        """The JSON shape the /echo handler returns."""
        small = self.body if len(self.body) <= 65536 else b""
        return {
            "method": self.method,
            "target": self.target,
            "version": self.version,
            "headers": [[k, v] for k, v in self.headers],
            "body": small.decode("latin-1"),
            "body_len": self.body_len,
            "body_sha256": self.body_sha256,
            "chunked": self.chunked,
            "conn_id": self.conn_id,
        }


class _BadRequest(Exception):
    """The bytes the origin received are not a request it can parse."""


@dataclass
class _ConnState:
    """Bookkeeping for one accepted connection (touched only on the origin's loop)."""

    conn_id: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    buf: bytearray = field(default_factory=bytearray)
    raw: bytearray = field(default_factory=bytearray)
    idle: bool = True
    eof: bool = False


class Origin:
    """A recording HTTP/1.1 origin on its own thread and loop.

    Promises: `start()` returns only once the socket listens (or raises within 10 s);
    `stop()` closes the listener and every connection and joins the thread. All public
    methods may be called from any thread.
    """

    def __init__(
        self, *, unix_path: str | None = None, ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.unix_path = unix_path
        self.ssl_context = ssl_context
        self.port = 0
        self._lock = threading.Condition()
        self._requests: list[Recorded] = []
        self._raw: dict[int, bytearray] = {}
        self._conns: dict[int, _ConnState] = {}
        self._ids = itertools.count(1)
        self.connections_accepted = 0
        self.max_open_connections = 0
        self.max_inflight = 0
        self._inflight = 0
        self.errors: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> Origin:
        """Start listening; returns self once ready."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)  # this thread's own loop, for gather() at shutdown
            self._loop = loop
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # reported to start(), which raises it
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                # Connection handlers still parked (e.g. in /hang) end here, not at GC time.
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="origin", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT):
            raise RuntimeError("origin did not start listening within 10 s")
        if failure:
            raise failure[0]
        return self

    async def _listen(self) -> None:
        self._stopping = asyncio.Event()
        if self.unix_path is not None:
            self._server = await asyncio.start_unix_server(
                self._serve, path=self.unix_path, ssl=self.ssl_context, limit=_MAX_HEAD)
        else:
            self._server = await asyncio.start_server(
                self._serve, self.host, 0, ssl=self.ssl_context, limit=_MAX_HEAD)
            self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Close the listener and all connections, stop the loop, join the thread."""
        loop = self._loop
        if loop is None or self._thread is None or loop.is_closed():
            return

        async def shutdown() -> None:
            assert self._server is not None and self._stopping is not None
            self._stopping.set()
            self._server.close()
            for st in list(self._conns.values()):
                st.writer.transport.abort()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5.0)
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(5.0)

    def __enter__(self) -> Origin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- what tests read
    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:PORT`` (no trailing slash); for unix origins the nominal URL."""
        scheme = "https" if self.ssl_context is not None else "http"
        if self.unix_path is not None:
            return f"{scheme}://localhost"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def hostport(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"{self.host}:{self.port}"

    @property
    def requests(self) -> list[Recorded]:
        """A snapshot of every request recorded since the last `reset()`."""
        with self._lock:
            return list(self._requests)

    def raw_received(self) -> bytes:
        """Every byte received since the last `reset()`, all connections concatenated."""
        with self._lock:
            return b"".join(bytes(v) for v in self._raw.values())

    def reset(self) -> None:
        """Forget recorded requests, raw bytes, errors and counters (connections stay open)."""
        with self._lock:
            self._requests.clear()
            self._raw.clear()
            self.errors.clear()
            self.connections_accepted = 0
            self.max_open_connections = len(self._conns)
            self.max_inflight = self._inflight

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[Recorded]:
        """Block until at least n requests are recorded; raise AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"origin saw {len(self._requests)} requests, wanted {n}")
                self._lock.wait(left)
            return list(self._requests)

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now."""
        with self._lock:
            return len(self._conns)

    def close_idle(self) -> int:
        """Close every connection that is waiting for its next request; return how many.

        Models a backend whose keep-alive timer fired: the connection is closed cleanly
        (FIN) while the proxy holds it in its pool.
        """
        loop = self._loop
        assert loop is not None

        async def close() -> int:
            n = 0
            for st in list(self._conns.values()):
                if st.idle and not st.buf:
                    st.writer.close()
                    n += 1
            return n

        return asyncio.run_coroutine_threadsafe(close(), loop).result(5.0)

    # ----------------------------------------------------------------- per connection
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        st = _ConnState(next(self._ids), reader, writer)
        with self._lock:
            self._conns[st.conn_id] = st
            self.connections_accepted += 1
            self.max_open_connections = max(self.max_open_connections, len(self._conns))
        try:
            while not st.eof:
                st.idle = True
                head = await self._read_head(st)
                st.idle = False
                if head is None:
                    break
                if not await self._one_request(st, head):
                    break
        except (ConnectionError, _BadRequest, asyncio.IncompleteReadError, ssl.SSLError,
                ValueError) as exc:  # ValueError: a number in the request that is not one
            with self._lock:
                self.errors.append(f"conn {st.conn_id}: {exc!r}")
        finally:
            with self._lock:
                self._conns.pop(st.conn_id, None)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                await writer.wait_closed()

    async def _fill(self, st: _ConnState) -> bool:
        """Read more bytes into st.buf; False at EOF. Every byte is recorded."""
        data = await st.reader.read(_READ_SIZE)
        if not data:
            st.eof = True
            return False
        st.buf += data
        with self._lock:
            self._raw.setdefault(st.conn_id, bytearray()).extend(data)
        return True

    async def _read_line(self, st: _ConnState) -> bytes:
        while True:
            i = st.buf.find(b"\n")
            if i >= 0:
                line = bytes(st.buf[: i + 1])
                del st.buf[: i + 1]
                return line.rstrip(b"\r\n")
            if len(st.buf) > _MAX_HEAD:
                raise _BadRequest("line too long")
            if not await self._fill(st):
                raise asyncio.IncompleteReadError(bytes(st.buf), None)

    async def _read_exact(self, st: _ConnState, n: int) -> bytes:
        while len(st.buf) < n:
            if not await self._fill(st):
                raise asyncio.IncompleteReadError(bytes(st.buf), n)
        data = bytes(st.buf[:n])
        del st.buf[:n]
        return data

    async def _read_head(self, st: _ConnState) -> bytes | None:
        """The request head up to the blank line, or None on a clean EOF before any byte."""
        while True:
            # Tolerate stray CRLFs between requests, as RFC 9112 §2.2 allows.
            while st.buf[:2] == b"\r\n":
                del st.buf[:2]
            i = st.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(st.buf[:i])
                del st.buf[: i + 4]
                return head
            if len(st.buf) > _MAX_HEAD:
                raise _BadRequest("head too large")
            if not await self._fill(st):
                if st.buf:
                    raise _BadRequest(f"EOF inside a request head: {bytes(st.buf)[:80]!r}")
                return None

    async def _one_request(self, st: _ConnState, head: bytes) -> bool:
        """Read one request's body, record it, answer it. Returns whether to keep going."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise _BadRequest(f"bad request line {lines[0]!r}")
        method, target, version = parts
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(f"header line without colon {line!r}")
            headers.append((name, value.strip(" \t")))
        rec = Recorded(method, target, version, headers, b"", st.conn_id)
        if rec.header("Expect") and rec.header("Expect").lower() == "100-continue":
            st.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        with self._lock:
            self._inflight += 1
            self.max_inflight = max(self.max_inflight, self._inflight)
        try:
            if rec.path == "/upload":
                return await self._upload(st, rec)
            await self._read_body(st, rec)
            self._record(rec)
            return await self._respond(st, rec)
        finally:
            with self._lock:
                self._inflight -= 1

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self._requests.append(rec)
            self._lock.notify_all()

    async def _body_chunks(self, st: _ConnState, rec: Recorded, chunk: int = _READ_SIZE):
        """Yield the request body in pieces of at most ``chunk`` bytes (CL or chunked)."""
        te = (rec.header("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            rec.chunked = True
            while True:
                size_line = await self._read_line(st)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError as exc:
                    raise _BadRequest(f"bad chunk size {size_line!r}") from exc
                if size == 0:
                    while await self._read_line(st):
                        pass  # trailer fields are read and dropped
                    return
                while size > 0:
                    take = min(size, chunk)
                    yield await self._read_exact(st, take)
                    size -= take
                if await self._read_exact(st, 2) != b"\r\n":
                    raise _BadRequest("chunk data not followed by CRLF")
        else:
            left = int(rec.header("Content-Length") or "0")
            while left > 0:
                take = min(left, chunk)
                yield await self._read_exact(st, take)
                left -= take

    async def _read_body(self, st: _ConnState, rec: Recorded) -> None:
        h = hashlib.sha256()
        parts: list[bytes] = []
        async for piece in self._body_chunks(st, rec):
            h.update(piece)
            parts.append(piece)
        rec.body = b"".join(parts)
        rec.body_len = len(rec.body)
        rec.body_sha256 = h.hexdigest()

    async def _upload(self, st: _ConnState, rec: Recorded) -> bool:
        q = dict(parse_qsl(urlsplit(rec.target).query))
        pause = int(q.get("pause_ms", "0")) / 1000
        sleep = int(q.get("sleep_ms", "0")) / 1000
        chunk = int(q.get("chunk", str(_READ_SIZE)))
        if pause:
            await asyncio.sleep(pause)
        h = hashlib.sha256()
        n = 0
        async for piece in self._body_chunks(st, rec, chunk):
            h.update(piece)
            n += len(piece)
            if sleep:
                await asyncio.sleep(sleep)
        rec.body_len, rec.body_sha256 = n, h.hexdigest()
        self._record(rec)
        body = json.dumps({"length": n, "sha256": rec.body_sha256}).encode()
        return await self._send(st, rec, 200, [("Content-Type", "application/json")], body)

    # ----------------------------------------------------------------- responses
    def _wants_close(self, rec: Recorded) -> bool:
        conn = (rec.header("Connection") or "").lower()
        if "close" in conn:
            return True
        return rec.version == "HTTP/1.0" and "keep-alive" not in conn

    async def _send(
        self, st: _ConnState, rec: Recorded, status: int, headers: list[tuple[str, str]],
        body: bytes, reason: str = "",
    ) -> bool:
        close = self._wants_close(rec)
        out = [f"HTTP/1.1 {status} {reason or _REASONS.get(status, 'Whatever')}"]
        out += [f"{k}: {v}" for k, v in headers]
        if status >= 200 and status not in (204, 304):
            out.append(f"Content-Length: {len(body)}")
        if close:
            out.append("Connection: close")
        st.writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
        if rec.method != "HEAD" and status >= 200 and status not in (204, 304):
            st.writer.write(body)
        await st.writer.drain()
        return not close

    async def _respond(self, st: _ConnState, rec: Recorded) -> bool:
        url = urlsplit(rec.target)
        path = url.path
        query = parse_qsl(url.query, keep_blank_values=True)
        seg = path.split("/")
        if path.startswith("/status/"):
            code = int(seg[2])
            return await self._send(st, rec, code, [("Content-Type", "text/plain")],
                                    f"status {code}\n".encode())
        if path.startswith("/slow/"):
            await asyncio.sleep(int(seg[2]) / 1000)
            return await self._echo(st, rec)
        if path == "/hang":
            return await self._hang(st)
        if path == "/garbage":
            st.writer.write(b"\x00\x01\x02 this is not HTTP at all \xff\xfe\r\n\r\n")
            await st.writer.drain()
            return False
        if path == "/close-mid-body":
            st.writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            b"Content-Length: 1000\r\n\r\n" + b"0123456789")
            await st.writer.drain()
            return False
        if path == "/close-mid-chunked":
            st.writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n")
            await st.writer.drain()
            return False
        if path.startswith("/chunked/"):
            return await self._chunked(st, rec, int(seg[2]), int(dict(query).get("size", 1000)))
        if path.startswith("/big/") and "cut" in dict(query):
            # The head promises N bytes; only the first `cut` come, then the connection
            # closes (or, with stall=1, stays open and silent).
            n, opts = int(seg[2]), dict(query)
            st.writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                            b"Content-Length: %d\r\n\r\n" % n + pattern(n)[:int(opts["cut"])])
            await st.writer.drain()
            if opts.get("stall") == "1":
                return await self._hang(st)
            return False
        if path.startswith("/big/"):
            return await self._send(st, rec, 200, [("Content-Type", "application/octet-stream")],
                                    pattern(int(seg[2])))
        if path == "/set-cookie":
            hdrs = [("Set-Cookie", v) for k, v in query if k == "c"]
            return await self._send(st, rec, 200, hdrs, b"cookies\n")
        if path == "/redirect":
            to = dict(query).get("to", "/")
            return await self._send(st, rec, 302, [("Location", to)], b"moved\n")
        if path == "/headers":
            return await self._send(st, rec, 200, list(query), b"headers\n")
        if path == "/early-hints":
            st.writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            await st.writer.drain()
            return await self._echo(st, rec)
        if path == "/no-colon":
            st.writer.write(b"HTTP/1.1 200 OK\r\nX-Before: 1\r\nThis line has no colon\r\n"
                            b"X-After: 2\r\nConnection: close\r\n\r\nok")
            await st.writer.drain()
            return False
        return await self._echo(st, rec)

    async def _echo(self, st: _ConnState, rec: Recorded) -> bool:
        body = json.dumps(rec.as_json()).encode()
        return await self._send(st, rec, 200, [("Content-Type", "application/json")], body)

    async def _hang(self, st: _ConnState) -> bool:
        assert self._stopping is not None
        stop = asyncio.ensure_future(self._stopping.wait())
        # Keep reading so a peer close is noticed; anything it sends is still recorded.
        try:
            deadline = time.monotonic() + _HANG_LIMIT
            while not stop.done() and time.monotonic() < deadline:
                reading = asyncio.ensure_future(self._fill(st))
                done, _ = await asyncio.wait({reading, stop}, timeout=1.0,
                                             return_when=asyncio.FIRST_COMPLETED)
                if reading not in done:
                    reading.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reading
                elif not reading.result():
                    break
        finally:
            stop.cancel()
        return False

    async def _chunked(self, st: _ConnState, rec: Recorded, n: int, size: int) -> bool:
        close = self._wants_close(rec)
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        head += "Transfer-Encoding: chunked\r\n"
        if close:
            head += "Connection: close\r\n"
        st.writer.write((head + "\r\n").encode())
        if rec.method != "HEAD":
            data = pattern(n * size)
            for i in range(n):
                st.writer.write(b"%x\r\n" % size + data[i * size:(i + 1) * size] + b"\r\n")
                await st.writer.drain()
            st.writer.write(b"0\r\n\r\n")
        await st.writer.drain()
        return not close


_REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
    302: "Found", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}
