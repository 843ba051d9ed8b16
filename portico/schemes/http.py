"""The http/https/unix scheme: one proxied request over a pooled HTTP/1.1 connection (§15.1).

How it works. ``HttpExchange`` owns one client request from routing to the end of the
response. It takes an idle pooled ``HttpBackend`` synchronously when there is one (the fast
path: no task, no await) or starts one task that waits for a pool slot and connects. The
request head and body go to the backend as they arrive; the backend's events come back as
method calls from ``HttpBackend.data_received``. Each side's write buffer throttles the other
side's reads through ``Flow`` (DESIGN rule 6).

Failures before the response head reach the client become an error status through
``proxy/errors.py``; after it, the client connection is aborted so a truncated body can never
look complete. A reused connection that dies before any response byte is retried once on a
fresh connection when the request is idempotent and its body was kept.
"""

from __future__ import annotations

__all__ = ["HttpBackend", "HttpExchange"]

import asyncio
import contextlib
import logging
import tempfile
from typing import IO, TYPE_CHECKING

from portico.errors import RemoteProtocolError, UpstreamError, UpstreamErrorKind
from portico.protocols.events import (
    BodyKind,
    Data,
    EndOfMessage,
    InformationalHead,
    ResponseHead,
)
from portico.protocols.hop import RESPONSE_HOP_BY_HOP
from portico.protocols.http1 import LAST_CHUNK, ResponseParser, chunk_frames, encode_trailers
from portico.proxy.headers import ResponseFraming, build_response_head
from portico.server.flow import Flow
from portico.server.splice import MIN_SPLICE, SpliceRelay, splice_fd
from portico.upstream.pool import PoolExhausted

if TYPE_CHECKING:
    from portico.proxy.exchange import ProxySwitches, RequestContext
    from portico.server.front import FrontConnection
    from portico.upstream.pool import Pool

log = logging.getLogger("portico.proxy")

_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
_PLAIN = "\0plain"   # HttpBackend.tls_name of a connection without TLS (any name fits)
_REPLAY_LIMIT = 64 * 1024   # request body kept for a retry on a fresh connection
# proxy-sendcl / force-proxy-request-1.0 gather a chunked body to learn its length, as httpd
# spools it (see _Spool): at most SPOOL_MEMORY of it in memory, the first _SPOOL_KEEP bytes
# and the temporary file's write buffer; the rest on disk. Only LimitRequestBody bounds it.
SPOOL_MEMORY = 256 * 1024
_SPOOL_WRITE = 64 * 1024   # the file's write buffer: small pieces reach the disk together
# More than _REPLAY_LIMIT: a body kept for a retry is all in memory, never partly in a file.
_SPOOL_KEEP = SPOOL_MEMORY - _SPOOL_WRITE
_SPOOL_READ = 256 * 1024   # the file goes to the backend in pieces of this size
# Failures that httpd's handler reports as 503 and that move a balanced request to another
# member (§7.5): the request never reached the backend.
_FAILOVER_KINDS = frozenset({UpstreamErrorKind.CONNECT, UpstreamErrorKind.CONNECT_TIMEOUT,
                             UpstreamErrorKind.POOL_EXHAUSTED})
# Plain ints for the per-response comparisons (an enum attribute costs a lookup each time).
_BODY_LENGTH = int(BodyKind.LENGTH)
_BODY_CHUNKED = int(BodyKind.CHUNKED)
_BODY_UNTIL_CLOSE = int(BodyKind.UNTIL_CLOSE)
_FRAMING_NONE = ResponseFraming.NONE
_FRAMING_LENGTH = ResponseFraming.LENGTH
_FRAMING_CHUNKED = ResponseFraming.CHUNKED
# Where backend reads land (one buffer per process: each read is copied out before the next).
# A connection whose body may be spliced reads a head at a time, so the rest of a large body
# is still in the socket when the head has been parsed; other reads take what is there.
_READ_BUFFER = bytearray(256 * 1024)
_LARGE_READS = memoryview(_READ_BUFFER)
# After a spliced body, the next head is read in a short read: the bytes of a large body that
# come with its head are copied twice (into here, then into the splice pipe), so the less of
# them the better (+7% req/s on 64 KiB bodies against 8 KiB head reads). A head that does
# not fit costs one more read and doubles the size for that connection, up to iobuffersize.
# A body read through here after its head (too short to splice, or not spliceable) brings
# iobuffersize head reads back, so responses of a few KiB keep arriving in one read; a
# response that came whole in a short read changes nothing.
_SHORT_HEAD_READS = 1024


class HttpBackend(asyncio.BufferedProtocol):
    """A pooled HTTP/1.1 connection to a backend; serves one exchange at a time."""

    __slots__ = ("_client_paused", "_deadline", "_full_head_view", "_head_reads",
                 "_short_head_view", "_timer", "_timeout", "bytes_read", "closed",
                 "exchange", "flow", "head_view", "idle_since", "loop", "parser", "pool",
                 "read_view", "splice_fd", "tls_name", "transport")

    def __init__(self, pool: Pool, max_field_size: int, bad_header: str,
                 head_reads: int = 8192) -> None:
        """``head_reads``: the most one read takes while a head is expected on a socket
        whose body may be spliced (ProxyIOBufferSize / iobuffersize)."""
        self.pool = pool
        self.parser = ResponseParser(max_field_size=max_field_size, bad_header=bad_header)
        self.exchange: HttpExchange | None = None
        self.transport: asyncio.Transport | None = None
        self.flow = Flow()
        # Our write buffer full → stop reading the client of the exchange we serve now. The
        # partner is looked up when a pause happens, not linked per request.
        self.flow.link(self._pause_client, self._resume_client)
        self._client_paused: FrontConnection | None = None
        self.closed = False
        self.idle_since = 0.0
        self.bytes_read = 0
        self.loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timeout = 0.0
        self._deadline = 0.0
        self.splice_fd = -1   # the socket, when a body can be spliced from it (no TLS)
        # The server name a TLS connection was opened for (SNI, checked against the
        # certificate): it serves only requests for that name. _PLAIN: not TLS.
        self.tls_name: str | None = _PLAIN
        # Where reads go while a head is expected (set again for each exchange), and now.
        self.head_view = self.read_view = _LARGE_READS
        self._full_head_view = self._short_head_view = _LARGE_READS
        self._head_reads = head_reads

    # -- transport callbacks ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The transport calls this once, when the connection (and TLS handshake) is up."""
        self.transport = transport  # type: ignore[assignment]
        self.splice_fd = splice_fd(transport)
        if self.splice_fd >= 0:
            self.head_view = self._full_head_view = _LARGE_READS[:self._head_reads]
            self._short_head_view = _LARGE_READS[:min(_SHORT_HEAD_READS, self._head_reads)]

    def get_buffer(self, sizehint: int) -> memoryview:
        """The transport reads into this (see ``_READ_BUFFER``)."""
        return self.read_view

    def buffer_updated(self, nbytes: int) -> None:
        """The transport read ``nbytes`` of what the backend sends into ``read_view``."""
        data = self.read_view[:nbytes].tobytes()
        ex = self.exchange
        if ex is None:
            # Bytes on an idle connection: the backend is out of step; never reuse it.
            self.close()
            return
        self._deadline = self.loop.time() + self._timeout
        self.bytes_read += len(data)
        try:
            events = self.parser.feed(data)
        except RemoteProtocolError as exc:
            ex.backend_failed(UpstreamError(UpstreamErrorKind.BAD_RESPONSE, str(exc)))
            return
        n = len(events)
        if n == 0 and self.read_view is self._short_head_view is not _LARGE_READS:
            # A head longer than the short read (see _SHORT_HEAD_READS): the rest of it
            # comes in a full read, and this connection's next short reads are longer.
            self.read_view = self._full_head_view
            size = min(2 * len(self._short_head_view), self._head_reads)
            self._short_head_view = _LARGE_READS[:size]
            return
        if n == 1 and type(events[0]) is Data:
            ex.on_data(events[0].data)  # type: ignore[union-attr]  # a body read: one write
            return
        if (n == 3 and type(events[0]) is ResponseHead and type(events[1]) is Data
                and type(events[2]) is EndOfMessage):
            ex.on_whole_response(events[0], events[1].data,  # type: ignore[arg-type]
                                 events[2].trailers)  # type: ignore[union-attr]
            return
        if n == 2 and type(events[0]) is ResponseHead and type(events[1]) is EndOfMessage:
            ex.on_whole_response(events[0], b"", events[1].trailers)  # type: ignore[arg-type]
            return
        front = ex.front
        front.hold_writes()  # one write per read: head, body and chunk framing together
        try:
            for event in events:
                if self.exchange is None:
                    break
                kind = type(event)
                if kind is Data:
                    ex.on_data(event.data)  # type: ignore[union-attr]
                elif kind is ResponseHead:
                    ex.on_head(event)  # type: ignore[arg-type]
                elif kind is EndOfMessage:
                    ex.on_end(event.trailers)  # type: ignore[union-attr]
                elif kind is InformationalHead:
                    ex.on_informational(event)  # type: ignore[arg-type]
            ex = self.exchange
            # read_view is not _LARGE_READS: this was a head read on a socket whose body
            # may be spliced (head_view, sized by iobuffersize).
            if self.read_view is not _LARGE_READS and ex is not None and (
                    ex._head_sent or ex._override):
                left = self.parser.length_left
                # A relay takes the held head with it (see SpliceRelay.start).
                if left >= MIN_SPLICE and ex.splice_rest(left):
                    self.head_view = self._short_head_view
                else:
                    self.read_view = _LARGE_READS   # this body goes through here: read it whole
                    self.head_view = self._full_head_view
        finally:
            front.flush_writes()

    def eof_received(self) -> bool:
        """The backend half-closed: ends a read-until-close body, else it is an error."""
        ex = self.exchange
        if ex is not None:
            try:
                events = self.parser.feed_eof()
            except RemoteProtocolError as exc:
                ex.backend_failed(UpstreamError(UpstreamErrorKind.CLOSED, str(exc)))
                return False
            for event in events:
                if type(event) is EndOfMessage:
                    ex.on_end(event.trailers)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """The transport calls this once when the connection is closed, by either side."""
        self.closed = True
        self._cancel_timer()
        self.flow.abort()
        ex = self.exchange
        if ex is not None:
            self.exchange = None
            ex.backend_failed(UpstreamError(
                UpstreamErrorKind.CLOSED, "backend closed the connection"
                + (f": {exc}" if exc else "")))
        else:
            self.pool.forget(self)

    def pause_writing(self) -> None:
        """The transport's write buffer went above its high-water mark."""
        self.flow.pause()

    def resume_writing(self) -> None:
        """The transport's write buffer drained below its low-water mark."""
        self.flow.resume()

    def _pause_client(self) -> None:
        ex = self.exchange
        if ex is not None and self._client_paused is None:
            self._client_paused = ex.front
            ex.front.pause_reading()

    def _resume_client(self) -> None:
        front = self._client_paused
        if front is not None:
            self._client_paused = None
            front.resume_reading()

    def detach(self) -> None:
        """The exchange lets go of this connection: a client we paused reads again."""
        self.exchange = None   # its timer, if pending, finds no exchange and lapses
        if self._client_paused is not None:
            self._resume_client()

    # -- used by the exchange and the pool ----------------------------------------------
    def is_reusable(self) -> bool:
        t = self.transport
        return not self.closed and t is not None and not t.is_closing() and self.parser.idle

    def close(self) -> None:
        self._cancel_timer()
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def abort(self) -> None:
        self._cancel_timer()
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True

    def arm_timeout(self, seconds: float, now: float) -> None:
        """Fail the exchange after ``seconds`` without backend activity (reset by each read
        and by ``touch``). The timer is made once per connection and re-arms itself."""
        self._timeout = seconds
        deadline = self._deadline = now + seconds
        timer = self._timer
        if timer is None:
            self._timer = self.loop.call_at(deadline, self._on_timer)
        elif timer.when() > deadline:
            # A pooled connection's timer set for a longer timeout (another host's): it
            # would fire too late for this one.
            timer.cancel()
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def touch(self, now: float) -> None:
        """Activity outside ``buffer_updated`` (a splice): the timeout starts again."""
        self._deadline = now + self._timeout

    def _on_timer(self) -> None:
        self._timer = None
        ex = self.exchange
        if ex is None:
            return
        now = self.loop.time()
        # The client is slow to read the response, or to send the rest of its body (we are
        # not holding it back): its own Timeout governs then, as in httpd.
        waiting_for_client = ex.front.waiting_for_reader or (
            not ex.request_done and self._client_paused is None)
        if now < self._deadline and not waiting_for_client:
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return
        if waiting_for_client:
            # The client is slow to read; its own timeout governs. Check again later.
            self._deadline = now + self._timeout
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return
        ex.backend_failed(UpstreamError(UpstreamErrorKind.TIMEOUT,
                                        f"no data from the backend for {self._timeout:g}s"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Spool:
    """A chunked request body gathered whole before it goes out with a Content-Length
    (proxy-sendcl, force-proxy-request-1.0).

    Its first ``_SPOOL_KEEP`` bytes stay in the exchange's ``_pending``; the rest goes to an
    anonymous temporary file (system temp dir) as it arrives, and is read back in
    ``_SPOOL_READ`` pieces once the head is out (``HttpExchange._send_spool_file``). Memory
    always holds something when the file does, so the head is never sent alone. ``close``
    ends it all, from any state; methods that touch the file raise ``OSError``.
    """

    __slots__ = ("close_backend", "file", "gathering", "in_file", "in_memory", "task")

    def __init__(self, in_memory: int) -> None:
        self.in_memory = in_memory   # bytes in _pending (what came before gathering began)
        self.in_file = 0
        self.file: IO[bytes] | None = None   # opened past _SPOOL_KEEP
        self.gathering = True   # False once the whole body is in
        self.task: asyncio.Task[None] | None = None   # sending the file to the backend
        self.close_backend = False   # ctx.close_backend to restore once the file went out

    @property
    def length(self) -> int:
        return self.in_memory + self.in_file

    def add(self, pending: list[bytes], data: bytes) -> None:
        """Gather ``data``: into ``pending`` while it fits in ``_SPOOL_KEEP``, else the file."""
        if self.file is None:
            room = _SPOOL_KEEP - self.in_memory
            if len(data) <= room:
                pending.append(data)
                self.in_memory += len(data)
                return
            if room > 0:   # fill memory up: the file starts where it ends
                pending.append(data[:room])
                self.in_memory += room
                data = data[room:]
            # closed by close(), which every way out of the exchange calls
            self.file = tempfile.TemporaryFile(buffering=_SPOOL_WRITE)  # noqa: SIM115 (see close)
        self.file.write(data)
        self.in_file += len(data)

    def finish(self) -> None:
        """The whole body is in: make the file ready to be read from its start."""
        self.gathering = False
        if self.file is not None:
            self.file.flush()
            self.file.seek(0)

    def close(self) -> None:
        """Stop sending and drop the file (idempotent)."""
        task, self.task = self.task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        file, self.file = self.file, None
        if file is not None:
            # The body is dropped: a write buffer that cannot be flushed any more does not
            # matter, and the descriptor is closed all the same.
            with contextlib.suppress(OSError):
                file.close()


class HttpExchange:
    """One proxied request/response over HTTP/1.1 (see the module docstring)."""

    __slots__ = ("_backend", "_body_kept", "_connect_task", "_override", "_pending",
                 "_replayable", "_request_done", "_response_framing", "_retried",
                 "_head_sent", "ctx", "front", "_finished", "waiting", "_held", "_ping_timer",
                 "_pool", "_chunked_out", "_source_paused", "_relay", "_spooled")

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx
        self.front = ctx.front
        self._backend: HttpBackend | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._pending: list[bytes] = []      # request bytes waiting for a backend connection
        replayable = ctx.method in _IDEMPOTENT
        self._body_kept: list[bytes] | None = [] if replayable else None
        self._replayable = replayable
        self._request_done = False
        self._head_sent = False
        self._finished = False
        self._retried = False
        self._override = False
        self._response_framing = ResponseFraming.NONE
        self._chunked_out = ctx.request_chunked
        self._pool: Pool | None = None   # known once the worker is (a balancer may wait)
        self.waiting: asyncio.Task[None] | None = None   # the balancer `timeout` wait
        self._held: list[bytes] | None = None    # body held back until the backend's 100
        self._ping_timer: asyncio.TimerHandle | None = None
        self._source_paused = False   # we stopped the backend's reads: the client is slow
        self._relay: SpliceRelay | None = None   # the body is being spliced (server/splice.py)
        self._spooled: _Spool | None = None   # a body spooled for proxy-sendcl (see _Spool)

    # -- request side ---------------------------------------------------------------------
    def start(self) -> None:
        """Send the request head on a pooled connection, or start connecting."""
        ctx = self.ctx
        self.waiting = None
        switches = ctx.switches
        fresh = False
        if switches is not None:
            fresh = switches.fresh
            if switches.spool_head is not None and self._start_spooled(switches):
                return
        self._pool = ctx.worker.pool_for(ctx.match.host, ctx.match.port)
        if ctx.balancer is not None:
            ctx.balancer.start(ctx.member_view, ctx.member_index)
        else:
            ctx.worker.slot.begin()
        conn = None if fresh else self._pool.take_idle()
        if conn is not None and conn.tls_name is not _PLAIN and conn.tls_name != ctx.sni:
            self._pool.release(conn, reusable=False)   # made for another name (see _connect)
            conn = None
        if conn is not None:
            self._attach(conn, reused=True)  # type: ignore[arg-type]
        else:
            self._connect_task = asyncio.get_running_loop().create_task(self._connect(fresh))

    def _start_spooled(self, switches: ProxySwitches) -> bool:
        """proxy-sendcl with a chunked body: start gathering it (True: the exchange starts
        again at its end, see ``_end_spooled``), or, once it is whole, build the head."""
        ctx = self.ctx
        if not self._request_done:
            # What came before (the client paused past 64 KiB) is the start of the body.
            self._spooled = _Spool(sum(map(len, self._pending)))
            if ctx.resume_client_on_attach:
                ctx.resume_client_on_attach = False
                self.front.resume_reading()
            return True
        # The whole body is in _pending (and the file), with the extra CRLF if asked for;
        # no _Spool when it ended before the exchange started.
        spool = self._spooled
        length = spool.length if spool is not None else sum(map(len, self._pending))
        assert switches.spool_head is not None
        ctx.backend_head = switches.spool_head(length - (2 if switches.extra_crlf else 0))
        return False

    async def _connect(self, fresh: bool) -> None:
        ctx = self.ctx
        pool = self._pool
        plan = ctx.plan

        async def open_new() -> HttpBackend:
            proto: HttpBackend = await ctx.worker.connector.open(  # type: ignore[assignment]
                lambda: HttpBackend(pool, plan.response_field_size, plan.bad_header,
                                    plan.io_buffer_size),
                plan.connect_timeout, server_hostname=ctx.sni,
                host=ctx.match.host, port=ctx.match.port)
            if proto.transport is not None and proto.splice_fd < 0 and \
                    proto.transport.get_extra_info("ssl_object") is not None:
                proto.tls_name = ctx.sni
            return proto

        try:
            if fresh:
                if not pool.try_reserve():
                    raise PoolExhausted("pool is full")
                try:
                    conn: HttpBackend = await open_new()
                except BaseException:
                    pool.release(None, reusable=False)
                    raise
                reused = False
            else:
                conn, reused = await pool.acquire(open_new, plan.acquire_wait)  # type: ignore[assignment]
                if reused and conn.tls_name is not _PLAIN and conn.tls_name != ctx.sni:
                    # A pooled TLS connection was opened (and its certificate checked) for
                    # another server name: with ProxyPreserveHost the name follows the
                    # client's Host, so reusing it would skip the check (§4.1). A new one.
                    pool.release(conn, reusable=False)
                    await self._connect(True)
                    return
        except PoolExhausted as exc:
            self._connect_task = None
            self._fail(UpstreamError(UpstreamErrorKind.POOL_EXHAUSTED, str(exc)))
            return
        except UpstreamError as exc:
            self._connect_task = None
            self._fail(exc)
            return
        self._connect_task = None
        if self._finished:  # the client went away while we connected
            pool.release(conn, reusable=conn.is_reusable())
            return
        self._attach(conn, reused)

    def _attach(self, conn: HttpBackend, reused: bool) -> None:
        ctx = self.ctx
        self._backend = conn
        conn.exchange = self
        conn.bytes_read = 0
        conn.read_view = conn.head_view
        plan = ctx.plan
        conn.parser.start(ctx.method, plan.bad_header)
        ctx.reused = reused
        # Backpressure (DESIGN rule 6) is wired per connection, not per request: each side's
        # Flow finds its partner through the exchange when a pause happens. Only a pause in
        # force already needs acting on here.
        if self.front.flow.paused:
            self.pause_source()
        if conn.flow.paused:
            conn._pause_client()
        t = conn.transport
        assert t is not None
        now = conn.loop.time()
        conn.arm_timeout(plan.timeout, now)
        ctx.sent_at = now
        head = ctx.backend_head
        pending = self._pending
        if ctx.ping:
            # ping=: send the head alone; the body waits for the 100 (or a final answer).
            self._held = pending
            self._pending = []
            t.write(head)
            self._ping_timer = conn.loop.call_later(ctx.ping, self._ping_expired)
        elif not pending:
            t.write(head)
        else:
            self._pending = []
            t.writelines([head, *pending])
            ctx.bytes_to_backend += sum(map(len, pending))
            self._send_spool_file(conn)
        ctx.bytes_to_backend += len(head)
        if ctx.resume_client_on_attach:
            ctx.resume_client_on_attach = False
            self.front.resume_reading()

    def pause_source(self) -> None:
        """The client stopped reading (its Flow paused): stop reading the backend."""
        conn = self._backend
        if conn is not None and not self._source_paused and conn.transport is not None:
            self._source_paused = True
            conn.transport.pause_reading()

    def resume_source(self) -> None:
        """The client reads again: so do we."""
        if self._source_paused:
            self._source_paused = False
            conn = self._backend
            if conn is not None and conn.transport is not None and not conn.closed:
                conn.transport.resume_reading()

    def _let_go(self, conn: HttpBackend) -> None:
        """Unlink ``conn`` from this exchange, undoing any pause either side put on the other."""
        self._backend = None
        if self._source_paused:
            self._source_paused = False
            if conn.transport is not None and not conn.closed:
                conn.transport.resume_reading()
        conn.detach()

    def on_request_data(self, data: bytes) -> None:
        """A piece of the client's request body (already de-chunked)."""
        if self._finished:
            return
        kept = self._body_kept
        if kept is not None:
            if sum(len(k) for k in kept) + len(data) <= _REPLAY_LIMIT:
                kept.append(data)
            else:
                self._body_kept = None
                self._replayable = False
        spool = self._spooled
        if spool is not None:
            # Gathered whole, without pausing the client: the length is needed before the
            # head can go out (proxy-sendcl, force-proxy-request-1.0). LimitRequestBody,
            # checked by the front before this, is the only bound.
            try:
                spool.add(self._pending, data)
            except OSError as exc:
                self._spool_failed(exc)
            return
        pieces = chunk_frames(data) if self._chunked_out else (data,)
        conn = self._backend
        if self._held is not None:
            self._held.extend(pieces)
            if not self.ctx.resume_client_on_attach and sum(map(len, self._held)) > 65536:
                self.ctx.resume_client_on_attach = True
                self.front.pause_reading()
        elif conn is not None and conn.transport is not None:
            conn.transport.writelines(pieces)
            self.ctx.bytes_to_backend += len(data)
            conn.touch(conn.loop.time())   # the body moving counts as backend activity
        else:
            self._pending.extend(pieces)
            if not self.ctx.resume_client_on_attach and sum(map(len, self._pending)) > 65536:
                self.ctx.resume_client_on_attach = True
                self.front.pause_reading()

    def on_request_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        """The client's request (head and body) is complete."""
        self._request_done = True
        if self._finished:
            return
        if self._spooled is not None:
            self._end_spooled()
            return
        if self._chunked_out:
            tail = encode_trailers(trailers) if trailers else LAST_CHUNK
            self._send_to_backend(tail)
        switches = self.ctx.switches
        if switches is not None and switches.extra_crlf and self.ctx.has_body:
            self._send_to_backend(b"\r\n")

    def _end_spooled(self) -> None:
        """A spooled body is whole: the extra CRLF goes after it (in the file, if there is
        one), and the exchange starts, with the length in the head."""
        spool = self._spooled
        assert spool is not None and spool.gathering
        switches = self.ctx.switches
        try:
            if switches is not None and switches.extra_crlf:
                spool.add(self._pending, b"\r\n")
            spool.finish()
        except OSError as exc:
            self._spool_failed(exc)
            return
        self.start()

    def _spool_failed(self, exc: OSError) -> None:
        """The temporary file of a spooled body failed (disk full, ...): our failure, a 500;
        the exchange closes the file (``client_gone``)."""
        log.error("%s: the request body cannot be spooled to a temporary file: %s",
                  self.ctx.path, exc)
        self.front.refuse_body(self.ctx, 500)

    def _send_spool_file(self, conn: HttpBackend) -> None:
        """The head and the in-memory part of the body went to ``conn``: a spooled body's
        file follows, as fast as the backend takes it. Until it has all gone, ``conn``
        holds a partial request and cannot serve another one."""
        spool = self._spooled
        if spool is None or spool.file is None:
            return
        ctx = self.ctx
        spool.close_backend = ctx.close_backend
        ctx.close_backend = True
        spool.task = conn.loop.create_task(self._stream_spool_file(conn, spool))

    async def _stream_spool_file(self, conn: HttpBackend, spool: _Spool) -> None:
        """Copy the file to ``conn`` a piece at a time, waiting whenever its write buffer is
        full (its Flow, DESIGN rule 6), and yielding to the loop between pieces. Ends with
        the exchange; the file is closed however it ends."""
        ctx = self.ctx
        flow = conn.flow
        file = spool.file
        assert file is not None and conn.transport is not None
        try:
            while True:
                if flow.paused:
                    try:
                        await asyncio.wait_for(flow.drained(), ctx.plan.timeout)
                    except ConnectionResetError:
                        return   # the connection is gone: its connection_lost fails us
                    except TimeoutError:
                        self._spool_stalled(conn)
                        return
                else:
                    await asyncio.sleep(0)
                if self._backend is not conn or self._finished or conn.closed:
                    return   # the exchange ended meanwhile (answered early, or failed)
                try:
                    piece = file.read(_SPOOL_READ)
                except OSError as exc:
                    self._spool_failed(exc)
                    return
                if not piece:
                    break
                conn.transport.write(piece)
                ctx.bytes_to_backend += len(piece)
                conn.touch(conn.loop.time())   # the body moving counts as backend activity
            ctx.close_backend = spool.close_backend   # the request is whole on conn now
        finally:
            spool.close()

    def _spool_stalled(self, conn: HttpBackend) -> None:
        """The backend took none of a spooled body for its timeout."""
        timeout = self.ctx.plan.timeout
        if self._backend is conn and not self._finished:
            self.backend_failed(UpstreamError(
                UpstreamErrorKind.TIMEOUT, f"the backend took no request body for {timeout:g}s"))
        elif conn.transport is not None:
            # Answered already and given back (not reusable): do not wait for the rest of
            # the body to drain before the connection closes.
            conn.transport.abort()

    def _send_to_backend(self, data: bytes) -> None:
        conn = self._backend
        if self._held is not None:
            self._held.append(data)
        elif conn is not None and conn.transport is not None:
            conn.transport.write(data)
        else:
            self._pending.append(data)

    # -- response side ----------------------------------------------------------------------
    def _release_held(self) -> None:
        """The backend said 100 Continue: the held body goes out now."""
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        held, self._held = self._held, None
        conn = self._backend
        if held and conn is not None and conn.transport is not None:
            conn.transport.writelines(held)
            self.ctx.bytes_to_backend += sum(map(len, held))
            self._send_spool_file(conn)
        if self.ctx.resume_client_on_attach:
            self.ctx.resume_client_on_attach = False
            self.front.resume_reading()

    def _ping_expired(self) -> None:
        self._ping_timer = None
        if self._held is not None and not self._finished:
            self.backend_failed(UpstreamError(
                UpstreamErrorKind.CONNECT,
                f"no 100 Continue within ping={self.ctx.ping:g}s"))

    def on_informational(self, head: InformationalHead) -> None:
        """A 1xx from the backend: relayed to an HTTP/1.1 client (100 only if it asked)."""
        ctx = self.ctx
        if head.status == 100 and self._held is not None:
            self._release_held()
        if ctx.client_version != b"1.1" or (ctx.switches is not None
                                            and ctx.switches.suppress_interim):
            return
        if head.status == 100 and not ctx.expect_continue:
            return
        if head.status == 100 and ctx.sent_continue:
            return
        # the interim response's own fields go along (103 Early Hints is all Link fields)
        fields = b"".join(b"%s: %s\r\n" % (name, value) for name, value in head.headers
                          if name.lower() not in RESPONSE_HOP_BY_HOP)
        self.front.write(b"HTTP/1.1 %d %s\r\n%s\r\n" % (head.status, head.reason, fields))
        if head.status == 100:
            ctx.sent_continue = True

    def on_head(self, head: ResponseHead) -> None:
        """The backend's final response head arrived."""
        data = self._client_head(head)
        if data is not None:
            self.front.write(data)

    def on_whole_response(self, head: ResponseHead, body: bytes,
                          trailers: list[tuple[bytes, bytes]]) -> None:
        """A final head, all of its body (maybe none) and its end, from one read: the
        common small response, sent to the client in one write."""
        data = self._client_head(head)
        if data is None:   # ProxyErrorOverride: the error page answers instead
            self.on_end(trailers)
            return
        ctx = self.ctx
        if self._response_framing == _FRAMING_CHUNKED:
            ctx.body_bytes += len(body)
            self.front.writelines((data, *chunk_frames(body),
                                   encode_trailers(trailers) if trailers else LAST_CHUNK))
        elif not body:
            self.front.write(data)
        else:
            ctx.body_bytes += len(body)
            if len(body) <= 16384:
                self.front.write(data + body)
            else:
                self.front.writelines((data, body))
        self._complete(trailers)

    def _client_head(self, head: ResponseHead) -> bytes | None:
        """Account for the backend's final head and return the client's (None when
        ProxyErrorOverride will answer instead)."""
        ctx = self.ctx
        conn = self._backend
        if self._held is not None:
            # A final answer instead of 100 (ping=): the body is never sent, so the backend
            # connection cannot carry another request.
            if self._ping_timer is not None:
                self._ping_timer.cancel()
                self._ping_timer = None
            self._held = None
            ctx.close_backend = True
            self._close_spool()   # nor is the rest of a spooled body
        ctx.backend_status = head.status
        ctx.status = head.status
        ctx.response_keep_alive = head.keep_alive
        ctx.status_line_len = 13 + (len(head.reason) + 1 if head.reason else 0)
        if ctx.balancer is not None:
            if conn is not None:
                ctx.balancer.first_byte(ctx.member_view, ctx.member_index,
                                        conn.loop.time() - ctx.sent_at)
            ctx.balancer.after_response(ctx.member_view, ctx.member_index, head.status,
                                        False)
        settings = ctx.settings
        if settings.error_override and 400 <= head.status <= 599 and (
                not settings.error_override_codes
                or head.status in settings.error_override_codes):
            self._override = True
            ctx.override_headers = [(n, v) for n, v in head.headers
                                    if head.status == 401 and n.lower() == b"www-authenticate"]
            return None
        framing = _FRAMING_NONE
        kind = head.body_kind
        client_keep = ctx.keep_alive
        if kind == _BODY_LENGTH:
            framing = _FRAMING_LENGTH
        elif kind in (_BODY_CHUNKED, _BODY_UNTIL_CLOSE):
            if ctx.client_version == b"1.1":
                framing = _FRAMING_CHUNKED
            else:
                framing = ResponseFraming.CLOSE
                client_keep = False
        if ctx.method == b"HEAD" or head.status == 204 or head.status == 304:
            framing = _FRAMING_NONE
        if not self._request_done and ctx.has_body:
            client_keep = False   # we will not read the rest of this body: close afterwards
        ctx.keep_alive = client_keep
        self._response_framing = framing
        data, sent = build_response_head(
            head.status, head.reason, head.headers, framing=framing,
            content_length=head.content_length, keep_alive=client_keep,
            client_version=ctx.client_version, settings=settings, via_name=ctx.via_name,
            mapper=ctx.mapper, base_url=ctx.base_url,
            keepalive_header=ctx.vhost_runtime.keepalive_header, names_key=head.names_key)
        ctx.response_headers = sent
        self._head_sent = True
        ctx.bytes_to_client += len(data)
        return data

    def on_data(self, data: bytes) -> None:
        """A piece of the response body from the backend."""
        if self._override:
            return
        ctx = self.ctx
        ctx.body_bytes += len(data)
        if self._response_framing == _FRAMING_CHUNKED:
            self.front.writelines(chunk_frames(data))
        else:
            self.front.write(data)

    def splice_rest(self, left: int) -> bool:
        """The backend's read left ``left`` bytes of a Content-Length body in its socket:
        splice them to the client when both ends allow it (server/splice.py). False when
        the body keeps going through Python."""
        front = self.front
        conn = self._backend
        t = front.transport
        # A closing transport may have closed its descriptor already, and its number may
        # belong to a new connection: never splice to or from one.
        if (self._override or self._response_framing is not _FRAMING_LENGTH
                or front.splice_fd < 0 or self._source_paused or front.closing
                or conn is None or conn.transport is None or t is None or t.is_closing()
                or conn.transport.is_closing() or t.get_write_buffer_size()):
            return False
        relay = SpliceRelay(conn.loop, conn.splice_fd, front.splice_fd, left,
                            self._spliced, self._splice_failed, self._splice_progress)
        self._relay = front.relay = relay
        # Usually done in here: the body was there and the client had room. The held head
        # and first body bytes go into the pipe ahead of the rest: one send, one wake-up of
        # the client, instead of two.
        prefix = front.take_held()
        if not relay.start(prefix):
            self._relay = front.relay = None
            front.write(prefix)   # held again: it goes out with the body through Python
            return False
        if self._relay is relay:
            # It waits for one side: the backend's transport must not read meanwhile (we
            # are inside its read callback until now, so it could not).
            conn.transport.pause_reading()
        return True

    def _spliced(self, moved: int) -> None:
        """The whole rest of the body went to the client."""
        self._relay = self.front.relay = None
        self.ctx.body_bytes += moved
        conn = self._backend
        assert conn is not None and conn.transport is not None
        conn.bytes_read += moved
        conn.parser.body_moved(moved)
        conn.transport.resume_reading()
        self._complete([])

    def _splice_failed(self, side: str, message: str, moved: int) -> None:
        self._relay = self.front.relay = None
        self.ctx.body_bytes += moved
        if side == "backend":
            self.backend_failed(UpstreamError(UpstreamErrorKind.CLOSED, message))
        else:
            log.info("client %s: %s", self.front.peer_ip, message)
            if self.front.transport is not None:
                self.front.transport.abort()   # connection_lost ends this exchange

    def _splice_progress(self) -> None:
        """A wait of the relay is over: both sides count it as activity."""
        conn = self._backend
        now = self.front.loop.time()
        self.front.note_activity(now)
        if conn is not None:
            conn.touch(now)

    def _stop_relay(self) -> None:
        relay = self._relay
        if relay is not None:
            self._relay = self.front.relay = None
            self.ctx.body_bytes += relay.moved
            relay.cancel()

    def on_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        """The backend's response is complete."""
        ctx = self.ctx
        if self._override:
            self._finished = True
            self._release_backend(self._backend_reusable())
            self.front.local_error(ctx, ctx.status, override=True)
            return
        if self._response_framing == _FRAMING_CHUNKED:
            self.front.write(encode_trailers(trailers) if trailers else LAST_CHUNK)
        self._complete(trailers)

    def _backend_reusable(self) -> bool:
        """Whether the backend connection may serve another request now that its response
        is complete: only if it got the whole request (a backend that answered before the
        body ended would read the next request as the rest of it), said keep-alive, and
        nothing asked to close it. A body cut short also ends the client's keep-alive."""
        ctx = self.ctx
        if not self._request_done:
            if ctx.has_body:   # the rest of the body would go nowhere: close the client too
                ctx.keep_alive = False
            return False
        return ctx.response_keep_alive and not ctx.close_backend

    def _complete(self, trailers: list[tuple[bytes, bytes]]) -> None:
        """The whole response went to the client: account, release, next request."""
        if self._finished:
            return
        ctx = self.ctx
        ctx.response_trailers = trailers
        self._finished = True
        self._release_backend(self._backend_reusable())
        self.front.response_done(ctx)

    def _release_backend(self, reusable: bool) -> None:
        """A whole response arrived: give the backend back and account for the request,
        its duration (request sent to end of response) included; failed requests are
        not observed in the histogram."""
        conn = self._backend
        assert conn is not None  # only a backend's read or EOF ends a response
        self._let_go(conn)
        ctx = self.ctx
        ctx.bytes_from_backend += conn.bytes_read
        self._pool.release(conn, reusable)  # the pool checks is_reusable itself
        elapsed = conn.loop.time() - ctx.sent_at
        if ctx.balancer is not None:
            self._account_end(error=False)
            ctx.worker.slot.observe_latency(elapsed)
        else:
            ctx.worker.slot.finish(ctx.bytes_to_backend, ctx.bytes_from_backend, elapsed)

    # -- failures -------------------------------------------------------------------------
    def backend_failed(self, error: UpstreamError) -> None:
        """The backend connection failed, timed out or sent something invalid."""
        if self._finished:
            return
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        self._stop_relay()
        if self._held is not None:
            # Put the held body back so a failover can send it to the next member.
            self._pending = self._held
            self._held = None
        conn = self._backend
        got_bytes = conn is not None and conn.bytes_read > 0
        if conn is not None:
            self.ctx.bytes_from_backend += conn.bytes_read
            self._let_go(conn)
            conn.abort()
            self._pool.release(conn, reusable=False)
        ctx = self.ctx
        if (error.kind is UpstreamErrorKind.CLOSED and ctx.reused and not got_bytes
                and not self._retried and self._replayable and not self._head_sent
                and (self._request_done or not ctx.has_body) and self._body_kept is not None):
            # A keep-alive race: the backend closed an idle connection as we reused it.
            self._retried = True
            log.debug("retrying %s on a fresh connection: %s", ctx.match.url, error)
            self._pending = []
            body = self._body_kept
            if self._chunked_out:
                for piece in body:
                    self._pending += chunk_frames(piece)
                if self._request_done:
                    self._pending.append(LAST_CHUNK)
            else:
                self._pending.extend(body)
            self._connect_task = asyncio.get_running_loop().create_task(self._connect(True))
            return
        error.reused = ctx.reused
        self._fail(error)

    def _fail(self, error: UpstreamError) -> None:
        if self._finished:
            return
        self._finished = True
        ctx = self.ctx
        self._account_end(error=True)
        balancer = ctx.balancer
        if balancer is not None:
            if error.kind in _FAILOVER_KINDS and not self._head_sent:
                # §6.4: a connect failure → E
                balancer.mark_error(ctx.member_view, ctx.member_index)
                if self._failover():
                    self._close_spool()   # not handed on when the pipeline answered
                    return
            elif error.kind is UpstreamErrorKind.TIMEOUT:
                balancer.after_response(ctx.member_view, ctx.member_index, None, True)
        self._close_spool()
        if self._head_sent:
            log.warning("backend %s failed mid-response: %s", ctx.match.url, error)
            ctx.aborted = True
            self.front.abort_response(ctx)
            return
        self.front.upstream_error(ctx, error)

    def _close_spool(self) -> None:
        if self._spooled is not None:
            self._spooled.close()

    def _account_end(self, error: bool) -> None:
        """The worker's shared counters for this request: exactly once per request."""
        ctx = self.ctx
        if ctx.balancer is not None:
            # bytraffic counts what httpd counts: the status line (no CRLF) and the body.
            ctx.balancer.end(ctx.member_view, ctx.member_index, ctx.bytes_to_backend,
                             ctx.status_line_len + ctx.body_bytes, error)
        else:
            ctx.worker.slot.end(ctx.bytes_to_backend, ctx.bytes_from_backend, error)

    def _failover(self) -> bool:
        """Hand the request to another member (§7.5); False when there is none to try."""
        ctx = self.ctx
        front = self.front
        outcome = front.pipeline.failover(ctx)
        if outcome is None:
            return True   # the pipeline answered (no member left: 503)
        if not outcome:
            return False
        log.info("%s: member failed, retrying on %s", ctx.balancer.name, ctx.match.url)
        successor = HttpExchange(ctx)
        successor._pending = self._pending
        # A failover comes before any of the body went (_FAILOVER_KINDS): the spooled
        # body, its file unread, goes to the next member whole.
        successor._spooled, self._spooled = self._spooled, None
        successor._body_kept = self._body_kept
        successor._replayable = self._replayable
        successor._request_done = self._request_done
        front.handler = successor
        successor.start()
        return True

    @property
    def request_done(self) -> bool:
        """The client's whole request (head and body) has been received."""
        return self._request_done

    @property
    def finished(self) -> bool:
        return self._finished

    def abandon(self) -> None:
        """Nothing was started and the pipeline answered the request itself."""
        self._finished = True
        self.waiting = None

    def client_gone(self) -> None:
        """The client connection closed: stop everything, never reuse the backend."""
        if self._finished:
            return
        self._finished = True
        self._stop_relay()
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        spool = self._spooled
        if spool is not None:
            spool.close()
            if spool.gathering:
                return   # still gathering the body: nothing was started
        if self.waiting is not None:
            self.waiting.cancel()
            self.waiting = None
            return   # nothing was started: nothing to account
        self._account_end(error=False)
        if self._connect_task is not None:
            self._connect_task.cancel()
            self._connect_task = None
        conn = self._backend
        if conn is not None:
            self._let_go(conn)
            conn.abort()
            self._pool.release(conn, reusable=False)



