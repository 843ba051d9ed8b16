"""The per-request context handed from stage to stage (DESIGN: "what it needs is handed to it").

One ``RequestContext`` is made per request by the pipeline; the scheme handler reads the
decisions in it and writes what it observed (statuses, byte counts) for the response stages
and the access log.
"""

from __future__ import annotations

__all__ = ["RequestContext"]

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portico.config.model import ProxySettings, VirtualHost
    from portico.protocols.events import RequestHead
    from portico.proxy.reverse import ReverseMapper
    from portico.proxy.routing import Match
    from portico.upstream.worker import Worker

Headers = list[tuple[bytes, bytes]]


class RequestContext:
    """Everything one request carries through the pipeline."""

    __slots__ = (
        # the request as received
        "front", "head", "method", "client_version", "start_ns", "has_body",
        "expect_continue", "request_chunked", "host", "path", "query",
        # decisions made by the pipeline
        "vhost", "settings", "match", "worker", "backend_head", "plan", "sni", "via_name",
        "mapper", "base_url", "close_backend",
        # observed while serving
        "keep_alive", "reused", "sent_continue", "resume_client_on_attach", "status",
        "backend_status", "response_keep_alive", "response_headers", "response_trailers",
        "override_headers", "bytes_to_backend", "bytes_from_backend", "bytes_to_client",
        "body_bytes", "bytes_in", "aborted", "end_ns",
        "env", "notes", "request_trailers", "error_note", "body_limit",
        # balancing (§7.4, §7.5)
        "balancer", "balancer_match", "member_index", "member_view", "attempts",
        "vhost_runtime",
        "max_forwards", "sent_at", "status_line_len", "ping",
        "switches",
    )

    def __init__(self, front: Any, head: RequestHead, start_ns: int) -> None:
        self.front = front
        self.head = head
        self.method = head.method
        self.client_version = head.version
        self.start_ns = start_ns
        self.has_body = head.body_kind != 0
        self.expect_continue = head.expect_continue
        self.request_chunked = False
        self.host = ""
        self.path = ""
        self.query: str | None = None
        self.vhost: VirtualHost | None = None
        self.settings: ProxySettings | None = None  # type: ignore[assignment]
        self.match: Match | None = None  # type: ignore[assignment]
        self.worker: Worker | None = None  # type: ignore[assignment]
        self.backend_head = b""
        self.plan: Any = None   # the pipeline's per-(worker, scope) plan: timeouts, limits
        self.sni: str | None = None
        self.via_name = ""
        self.mapper: ReverseMapper | None = None
        self.base_url = ""
        self.close_backend = False
        self.keep_alive = head.keep_alive
        self.reused = False
        self.sent_continue = False
        self.resume_client_on_attach = False
        self.status = 0
        self.backend_status = 0
        self.response_keep_alive = False
        self.response_headers: Headers = []
        self.response_trailers: Headers = []
        self.override_headers: Headers = []
        self.bytes_to_backend = 0
        self.bytes_from_backend = 0
        self.bytes_to_client = 0
        self.body_bytes = 0
        self.bytes_in = 0
        self.aborted = False
        self.end_ns = 0
        self.env: dict[str, str] | None = None
        self.notes: dict[str, str] | None = None
        self.request_trailers: Headers = []
        self.error_note = ""
        self.body_limit = 0
        self.balancer: Any = None
        self.balancer_match: Any = None
        self.member_index = -1
        self.member_view: Any = None   # the balancer's view the member was chosen in
        self.attempts = 0
        self.vhost_runtime: Any = None
        self.max_forwards: bytes | None = None
        self.sent_at = 0.0
        self.status_line_len = 0
        self.ping = 0.0
        self.switches: ProxySwitches | None = None  # set only when the environment sets one


_SWITCH_NAMES = frozenset({
    "force-proxy-request-1.0", "proxy-nokeepalive", "proxy-sendcl", "proxy-interim-response",
    "proxy-initial-not-pooled", "proxy-sendextracrlf"})


class ProxySwitches:
    """mod_proxy's environment switches for one request (reference §4.8)."""

    __slots__ = ("close", "extra_crlf", "fresh", "http10", "send_length", "spool_head",
                 "suppress_interim")

    def __init__(self, env: Mapping[str, str], first_request: bool) -> None:
        self.http10 = "force-proxy-request-1.0" in env
        self.close = self.http10 or "proxy-nokeepalive" in env
        # force-proxy-request-1.0 implies proxy-sendcl: an HTTP/1.0 backend knows no chunks.
        # proxy-sendchunked changes nothing here: a sized body keeps its length (no input
        # filter can change it) and a chunked one is streamed chunked anyway, as in httpd.
        self.send_length = self.http10 or "proxy-sendcl" in env
        self.suppress_interim = env.get("proxy-interim-response", "").lower() == "suppress"
        self.fresh = first_request and "proxy-initial-not-pooled" in env
        self.extra_crlf = "proxy-sendextracrlf" in env
        # proxy-sendcl with a chunked body: the body is gathered first; this builds the head
        # once its length is known (set by the pipeline)
        self.spool_head: Callable[[int], bytes] | None = None


def proxy_switches(env: Mapping[str, str], first_request: bool) -> ProxySwitches | None:
    """The switches ``env`` sets, or None when it sets none (the usual case: at most the
    balancer's variables)."""
    if _SWITCH_NAMES.isdisjoint(env):
        return None
    return ProxySwitches(env, first_request)
