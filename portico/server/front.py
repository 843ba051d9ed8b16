"""The client side of the proxy: one ``FrontConnection`` per accepted HTTP/1.1 connection.

How it works. Bytes go through the sans-I/O ``RequestParser``; events for the request being
served go straight to its handler, and everything from the next request head on waits in a
bounded queue (pipelining: answers leave in request order). A request is finished when its
response is done *and* its body was read; only then does the next queued request start.

One timer per connection enforces, depending on the state: KeepAliveTimeout while idle
between requests, Timeout while a request is being received, and Timeout while the client does
not read what we send. The values are those of the virtual host the last request selected
(``server_rt``); before the first request, those of the host the address defaults to.

Bytes received are counted per read for %I: a request is charged with every read since the
previous request was logged, up to its own log line (its head, its body with the framing).
Totals are exact; bytes of requests pipelined behind it that arrived meanwhile count with it.
"""

from __future__ import annotations

__all__ = ["FrontConnection"]

import asyncio
import logging
import socket
import time
from collections import deque
from typing import TYPE_CHECKING

from portico.errors import RemoteProtocolError, UpstreamError
from portico.protocols.events import Data, EndOfMessage, RequestHead
from portico.protocols.http1 import RequestParser
from portico.proxy.errors import error_page, reason, status_for_upstream
from portico.proxy.headers import http_date
from portico.server.flow import Flow
from portico.server.splice import SpliceRelay, splice_fd

if TYPE_CHECKING:
    from portico.proxy.exchange import RequestContext
    from portico.proxy.pipeline import Pipeline

log = logging.getLogger("portico.proxy")

_MAX_QUEUED_EVENTS = 64        # pipelined events held while a request is in flight
_MAX_QUEUED_BYTES = 1 << 20


class FrontConnection(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    __slots__ = (
        "_last_activity", "_queue", "_queued_bytes", "_read_pauses",
        "_timer", "closing", "ctx", "flow", "handler", "local_ip", "local_port", "loop",
        "parser", "peer_ip", "peer_port", "pipeline", "req_complete", "requests_served",
        "resp_complete", "scheme", "transport", "_pending_error", "_queue_paused", "_held",
        "retiring", "relay", "splice_fd", "server_rt", "rx_pending", "_body_in",
        "_body_of",
    )

    def __init__(self, pipeline: Pipeline, scheme: str = "http") -> None:
        self.pipeline = pipeline
        self.scheme = scheme
        self.loop = asyncio.get_running_loop()
        self.parser = RequestParser(pipeline.limits)
        self.transport: asyncio.Transport | None = None
        self.flow = Flow()
        self.ctx: RequestContext | None = None
        self.handler = None
        self._queue: deque = deque()
        self._queued_bytes = 0
        self._read_pauses = 0
        self.req_complete = True
        self.resp_complete = True
        self.requests_served = 0
        self.closing = False
        self.retiring = False   # the server hands over: answer with Connection: close
        self.peer_ip = ""
        self.peer_port = 0
        self.local_ip = ""
        self.local_port = 0
        self._timer: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self._pending_error: int | None = None
        self._queue_paused = False
        self._held: list[bytes] | None = None
        self.splice_fd = -1   # the socket, when a response body can be spliced into it
        # The virtual host whose Timeout and keep-alive settings govern the connection now
        # (the pipeline's per-host runtime, set in connection_made and by each request).
        self.server_rt = None
        self.rx_pending = 0   # bytes received that no logged request was charged with (%I)
        self._body_in = 0     # body bytes of the request in flight (LimitRequestBody)
        self._body_of: RequestContext | None = None   # the request _body_in counts for
        self.relay: SpliceRelay | None = None   # a body being spliced to this client
        # Our write buffer full → the handler of the request in flight stops reading its
        # source (the backend). Linked once; the handler is looked up when a pause happens.
        self.flow.link(self._pause_source, self._resume_source)

    # -- transport callbacks ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The transport calls this once, when a client connection is accepted."""
        self.transport = transport  # type: ignore[assignment]
        if self.pipeline.core.splice:
            self.splice_fd = splice_fd(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        if isinstance(peer, tuple):
            self.peer_ip, self.peer_port = peer[0], peer[1]
        if isinstance(local, tuple):
            self.local_ip, self.local_port = local[0], local[1]
        pipeline = self.pipeline
        rt = self.server_rt = pipeline.base_runtime(self.local_ip, self.local_port)
        if rt.limits is not pipeline.limits:
            # LimitRequestLine/FieldSize/Fields apply before any Host is known: httpd takes
            # them from the host the address defaults to.
            self.parser = RequestParser(rt.limits)
        pipeline.connection_opened(self)
        self._last_activity = self.loop.time()
        self._arm(rt.timeout)

    def data_received(self, data: bytes) -> None:
        """The transport calls this with every chunk the client sends."""
        self._last_activity = self.loop.time()
        try:
            events = self.parser.feed(data)
        except RemoteProtocolError as exc:
            # The requests that ended in this read before the error come first; the error
            # follows them as an event of its own (answered by _protocol_error).
            events = self.parser.take_completed()
            events.append(exc)
            self.pause_reading()   # the parser is dead: nothing more is read
        self.rx_pending += len(data)   # %I: counted to the next request logged
        queue = self._queue
        for event in events:
            kind = type(event)
            if queue or (kind is RequestHead and self.ctx is not None):
                queue.append(event)
                if kind is Data:
                    self._queued_bytes += len(event.data)
                continue
            if kind is RequestHead:
                self._start_request(event)  # type: ignore[arg-type]
            elif kind is EndOfMessage:
                self._request_ended(event)  # type: ignore[arg-type]
            else:
                self._handle(event)
        if queue and not self._queue_paused and (
                len(queue) > _MAX_QUEUED_EVENTS or self._queued_bytes > _MAX_QUEUED_BYTES):
            self._queue_paused = True
            self.pause_reading()

    def eof_received(self) -> bool:
        """The client closed its side: abandon the request in flight (as nginx does).

        A browser or load balancer that gives up closes the connection; keeping the backend
        busy for an answer nobody reads would waste a pooled connection until its timeout.
        """
        return False  # the transport closes; connection_lost cleans up

    def connection_lost(self, exc: Exception | None) -> None:
        """The transport calls this once when the connection is closed, by either side."""
        self.closing = True
        self._cancel_timer()
        self.flow.abort()
        handler = self.handler
        self.handler = None
        ctx = self.ctx
        if handler is not None:
            handler.client_gone()
        if ctx is not None and not self.resp_complete:
            ctx.aborted = True
            self._finish_log(ctx)
        self.ctx = None
        self._queue.clear()
        self.pipeline.connection_closed(self)

    def pause_writing(self) -> None:
        """The client's write buffer went above high water: stop reading the backend."""
        self.flow.pause()

    def resume_writing(self) -> None:
        """The client's write buffer drained below low water."""
        self.flow.resume()
        self._last_activity = self.loop.time()

    @property
    def waiting_for_reader(self) -> bool:
        """What we send is waiting for the client to read (its Timeout applies)."""
        return self.flow.paused or (self.relay is not None and self.relay.waiting_for_client)

    def note_activity(self, now: float) -> None:
        """Bytes moved on this connection outside the transport (a splice)."""
        self._last_activity = now

    def _pause_source(self) -> None:
        if self.handler is not None:
            self.handler.pause_source()

    def _resume_source(self) -> None:
        if self.handler is not None:
            self.handler.resume_source()

    # -- reading control (several reasons may pause reading at once) -----------------------
    def pause_reading(self) -> None:
        self._read_pauses += 1
        if self._read_pauses == 1 and self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._read_pauses == 0:
            return
        self._read_pauses -= 1
        if self._read_pauses == 0 and self.transport is not None and not self.closing:
            self.transport.resume_reading()

    # -- writing ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            held.append(data)
            return
        t = self.transport
        if t is not None:
            t.write(data)

    def writelines(self, pieces) -> None:
        held = self._held
        if held is not None:
            held.extend(pieces)
            return
        t = self.transport
        if t is not None:
            t.writelines(pieces)

    def hold_writes(self) -> None:
        """Collect writes until flush_writes(): each syscall costs more than a join."""
        if self._held is None:
            self._held = []

    def take_held(self) -> bytes:
        """What was held since hold_writes(), joined, for the caller to send itself; the
        writes are held still (into an empty list)."""
        held = self._held
        if not held:
            return b""
        self._held = []
        return held[0] if len(held) == 1 else b"".join(held)

    def flush_writes(self) -> None:
        held = self._held
        if held is None:
            return
        self._held = None
        t = self.transport
        if not held or t is None or t.is_closing():
            return
        if len(held) == 1:
            t.write(held[0])
        elif len(held) < 16 and sum(map(len, held)) <= 16384:
            t.write(b"".join(held))
        else:
            t.writelines(held)

    # -- request dispatch ------------------------------------------------------------------
    def _handle(self, event: object) -> None:
        kind = type(event)
        if kind is Data:
            ctx = self.ctx
            if ctx is not None and ctx.body_limit:
                if self._body_of is not ctx:   # counted from a request's first body bytes
                    self._body_of = ctx
                    self._body_in = 0
                self._body_in += len(event.data)  # type: ignore[attr-defined]
                if self._body_in > ctx.body_limit:
                    self.refuse_body(ctx)
                    return
            if self.handler is not None:
                self.handler.on_request_data(event.data)  # type: ignore[attr-defined]
        elif kind is RequestHead:
            self._start_request(event)  # type: ignore[arg-type]
        elif kind is EndOfMessage:
            self._request_ended(event)  # type: ignore[arg-type]
        elif isinstance(event, RemoteProtocolError):
            self._protocol_error(event)

    def _request_ended(self, event: EndOfMessage) -> None:
        self.req_complete = True
        ctx = self.ctx
        if event.trailers and ctx is not None:
            ctx.request_trailers = event.trailers
        if self.handler is not None:
            self.handler.on_request_end(event.trailers)
        if self.resp_complete and ctx is not None:
            self._next_request()

    def _start_request(self, head: RequestHead) -> None:
        self.req_complete = False
        self.resp_complete = False
        # KeepAlive and MaxKeepAliveRequests are the selected host's: the pipeline applies
        # them once it knows the host. No request starts once `closing` is set (reading has
        # stopped, and a head behind a request that closed the connection stays queued).
        if self.retiring:
            head.keep_alive = False
        try:
            self.handler = self.pipeline.begin(self, head, time.time_ns())
        except Exception:
            # Our own bug (a local error): answer 500 and close; never leave the client hanging.
            log.exception("internal error while starting a request")
            ctx = self.ctx
            if ctx is not None and not self.resp_complete:
                ctx.keep_alive = False
                self.local_error(ctx, 500)

    def refuse_body(self, ctx: RequestContext, status: int = 413) -> None:
        """The body of the request in flight cannot be taken: it passed LimitRequestBody (or
        a limit of the handler's), or it is malformed (400). The handler stops and never
        reuses its backend connection, which holds a partial request; the client gets
        ``status`` if no response has started (otherwise the response is cut), and the
        connection closes."""
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.client_gone()
        ctx.keep_alive = False
        if self.resp_complete:
            self._close_after_write()
        elif ctx.response_headers or ctx.status:
            self.abort_response(ctx)
        else:
            self.local_error(ctx, status)

    def _next_request(self) -> None:
        """The request in flight is complete on both sides; serve what is queued."""
        self.ctx = None
        self.handler = None
        self.requests_served += 1
        now = self._last_activity = self.loop.time()
        # Pull the timer in only when it would fire too late for KeepAliveTimeout; otherwise
        # it re-arms itself from the last activity (no timer churn per request).
        timer = self._timer
        if timer is None or timer.when() > now + self.server_rt.keepalive_timeout:
            self._cancel_timer()
            self._arm(self.server_rt.keepalive_timeout)
        if self.parser.upgraded:
            # The request asked for an upgrade we did not grant: keep speaking HTTP/1.1.
            leftover = self.parser.take_unparsed()
            self.parser = RequestParser(
                self.pipeline.base_runtime(self.local_ip, self.local_port).limits)
            if leftover:
                self.rx_pending -= len(leftover)   # counted again when fed anew
                self.loop.call_soon(self.data_received, leftover)
        queue = self._queue
        while queue and not self.closing:
            event = queue[0]
            if type(event) is RequestHead and self.ctx is not None:
                break  # the next request waits until this one is complete
            queue.popleft()
            if type(event) is Data:
                self._queued_bytes -= len(event.data)
            self._handle(event)
        if self._queue_paused and len(queue) <= _MAX_QUEUED_EVENTS // 2:
            self._queue_paused = False
            self.resume_reading()
        if self._pending_error is not None and self.ctx is None:
            status, self._pending_error = self._pending_error, None
            self._reject(status)

    # -- responses -------------------------------------------------------------------------
    def response_done(self, ctx: RequestContext) -> None:
        """The handler finished sending the response for ``ctx``."""
        self.resp_complete = True
        self.handler = None
        ctx.end_ns = time.time_ns()
        self.pipeline.log_request(self, ctx)
        if not ctx.keep_alive:
            self._close_after_write()
            return
        if self.req_complete:
            self._next_request()

    def abort_response(self, ctx: RequestContext) -> None:
        """The response cannot be completed: cut the connection so it looks truncated."""
        self.resp_complete = True
        self.handler = None
        ctx.aborted = True
        self._finish_log(ctx)
        self.ctx = None
        if self.transport is not None:
            self.transport.abort()

    def upstream_error(self, ctx: RequestContext, error: UpstreamError) -> None:
        status = status_for_upstream(error)
        log.error("%s: %s (client %s, %s %s)", ctx.match.url if ctx.match else "-",
                  error, self.peer_ip, ctx.method.decode("latin-1"),
                  ctx.head.target.decode("latin-1"), extra={"vhost": ctx.vhost})
        ctx.error_note = str(error)
        self.local_error(ctx, status, proxy_error=True, detail=_public_detail(error))

    def local_error(self, ctx: RequestContext, status: int, *, override: bool = False,
                    proxy_error: bool = False, detail: str | None = None,
                    extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """Answer ``ctx`` with a locally generated error page (or its ErrorDocument)."""
        headers = list(ctx.override_headers) if override else []
        if extra:
            headers += extra
        settings = ctx.settings
        document = settings.error_documents.get(status) if settings is not None else None
        if document is not None and (document.startswith("http://")
                                     or document.startswith("https://")):
            headers.append((b"Location", document.encode("latin-1")))
            body = error_page(302, None)
            self.send_local(ctx, 302, body, headers, content_type=b"text/html; charset=utf-8")
            return
        if document is not None and not document.startswith("/"):
            text = document[1:] if document.startswith('"') else document
            self.send_local(ctx, status, text.encode("utf-8"), headers,
                            content_type=b"text/plain; charset=utf-8")
            return
        body = error_page(status, detail, proxy_error=proxy_error)
        self.send_local(ctx, status, body, headers, content_type=b"text/html; charset=utf-8",
                        reason_text=b"Proxy Error" if proxy_error else None)

    def send_local(self, ctx: RequestContext, status: int, body: bytes,
                   headers: list[tuple[bytes, bytes]], content_type: bytes | None = None,
                   reason_text: bytes | None = None) -> None:
        """Send a complete locally generated response."""
        if not self.req_complete and ctx.has_body:
            ctx.keep_alive = False   # we will not read the body we refused
        if status in (400, 408, 413, 414, 431, 500, 501, 505):
            ctx.keep_alive = False  # the request itself may have left the stream unusable
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason_text or reason(status).encode()),
                 b"Date: ", http_date(), b"\r\n"]
        for name, value in headers:
            lines += (name, b": ", value, b"\r\n")
        if content_type:
            lines += (b"Content-Type: ", content_type, b"\r\n")
        lines += (b"Content-Length: %d\r\n" % len(body),)
        if not ctx.keep_alive:
            lines.append(b"Connection: close\r\n")
        lines.append(b"\r\n")
        if ctx.method != b"HEAD":
            lines.append(body)
            ctx.body_bytes = len(body)
        ctx.status = status
        ctx.response_headers = list(headers)
        data = b"".join(lines)
        ctx.bytes_to_client += len(data)
        self.write(data)
        self.response_done(ctx)

    def _finish_log(self, ctx: RequestContext) -> None:
        ctx.end_ns = time.time_ns()
        self.pipeline.log_request(self, ctx)

    def _close_after_write(self) -> None:
        self.flush_writes()
        self.closing = True
        self._queue.clear()
        if self.transport is not None:
            self.transport.close()

    # -- protocol errors -------------------------------------------------------------------
    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        log.info("bad request from %s: %s", self.peer_ip, exc)
        ctx = self.ctx
        if self.closing:
            return
        if ctx is not None and not self.req_complete and not self._queue:
            # The error is in the body of the request in flight: its head may have gone to
            # a backend already, which now holds a partial request.
            self.refuse_body(ctx, exc.status)
            return
        if ctx is not None:
            # Answer the request in flight first; the error closes the connection after it.
            self._pending_error = exc.status
            self.pause_reading()
            return
        self._reject(exc.status)

    def _reject(self, status: int) -> None:
        """A client protocol error: 4xx with Connection: close, nothing reaches a backend."""
        self._queue.clear()
        body = error_page(status)
        data = b"".join((
            b"HTTP/1.1 %d %s\r\n" % (status, reason(status).encode()),
            b"Date: ", http_date(), b"\r\nContent-Type: text/html; charset=utf-8\r\n",
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body), body))
        self.write(data)
        self.pipeline.log_rejected(self, status, len(data))
        self._close_after_write()

    # -- timeouts --------------------------------------------------------------------------
    def _arm(self, seconds: float) -> None:
        if self._timer is None:
            self._timer = self.loop.call_at(self.loop.time() + seconds, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self.transport is None or (self.closing and self.ctx is None):
            return
        rt = self.server_rt
        now = self.loop.time()
        if self.ctx is None:
            limit = rt.keepalive_timeout if self.requests_served else rt.timeout
        elif not self.req_complete or self.waiting_for_reader:
            limit = rt.timeout
        else:
            limit = None   # waiting for the backend: the backend timeout governs
        if limit is not None and now - self._last_activity >= limit:
            if self.ctx is None:
                self._close_after_write()
            else:
                log.info("client %s timed out", self.peer_ip, extra={"vhost": self.ctx.vhost})
                self.transport.abort()
            return
        wait = (limit - (now - self._last_activity)) if limit is not None else rt.timeout
        self._timer = self.loop.call_at(now + max(wait, 0.05), self._on_timer)


def _public_detail(error: UpstreamError) -> str:
    """What the error page may say (no addresses or internals)."""
    return {
        "connect": "the backend refused or failed the connection",
        "connect-timeout": "connecting to the backend timed out",
        "dns": "the backend's name could not be resolved",
        "pool-exhausted": "no free connection to the backend",
        "timeout": "the backend did not answer in time",
        "bad-response": "the backend sent an invalid response",
        "closed": "the backend closed the connection before answering",
        "no-handler": "no protocol handler was valid",
        "tls-verify": "the backend's TLS certificate could not be verified",
    }[error.kind.value]
