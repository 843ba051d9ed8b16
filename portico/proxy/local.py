"""Requests answered by portico itself: ``<Location …> SetHandler name </Location>``.

A handler is a function registered by name (``server-status``, ``metrics``,
``balancer-manager``, …) that turns a ``LocalRequest`` into a ``LocalResponse``. The
pipeline finds the handler of the last matching Location that sets one (httpd's merge
order) and hands the request to a ``LocalExchange``, which collects the (bounded) request
body and then answers. Handlers run in the serving process and read shared state from the
scoreboard, so every process answers alike.
"""

from __future__ import annotations

__all__ = ["LocalExchange", "LocalRequest", "LocalResponse", "handler", "lookup"]

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from portico.proxy.exchange import RequestContext

log = logging.getLogger("portico.proxy")

_MAX_BODY = 64 * 1024   # local handlers take forms and small JSON documents, nothing larger


@dataclass(slots=True)
class LocalRequest:
    """What a local handler sees of a request."""

    method: str
    path: str                     # decoded path
    query: Mapping[str, str]      # the query string's parameters (last value wins)
    raw_query: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    client_ip: str
    location: str                 # the <Location> path that set the handler
    scheme: str
    host: str
    pipeline: Any                 # the serving Pipeline (scoreboard, balancers, config)

    def header(self, name: str) -> str | None:
        key = name.lower().encode()
        for n, v in self.headers:
            if n.lower() == key:
                return v.decode("latin-1")
        return None


@dataclass(slots=True)
class LocalResponse:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


Handler = Callable[[LocalRequest], LocalResponse]
_HANDLERS: dict[str, Handler] = {}


def handler(name: str) -> Callable[[Handler], Handler]:
    """Register a SetHandler name (case-insensitive), as httpd modules register theirs."""

    def register(func: Handler) -> Handler:
        _HANDLERS[name.lower()] = func
        return func

    return register


def lookup(name: str) -> Handler | None:
    """The handler registered for ``name``; built-in ones are imported on first use."""
    key = name.lower()
    if key not in _HANDLERS:
        _load_builtins()
    return _HANDLERS.get(key)


def _load_builtins() -> None:
    import importlib

    for module in ("portico.admin.status", "portico.admin.metrics", "portico.admin.manager"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


class LocalExchange:
    """Collects a request's body for a local handler, then answers (a front handler)."""

    __slots__ = ("body", "ctx", "func", "location", "too_large")

    def __init__(self, ctx: RequestContext, func: Handler, location: str) -> None:
        self.ctx = ctx
        self.func = func
        self.location = location
        self.body: list[bytes] = []
        self.too_large = False

    def start(self) -> None:
        if not self.ctx.has_body:
            self._answer()

    def on_request_data(self, data: bytes) -> None:
        if sum(map(len, self.body)) + len(data) > _MAX_BODY:
            self.too_large = True
            return
        self.body.append(data)

    def on_request_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        if self.ctx.has_body:
            self._answer()

    def pause_source(self) -> None:
        """The client stopped reading: nothing here reads from elsewhere meanwhile."""

    def resume_source(self) -> None:
        """The client reads again."""

    def client_gone(self) -> None:
        self.body = []

    def _answer(self) -> None:
        ctx = self.ctx
        front = ctx.front
        if self.too_large:
            front.local_error(ctx, 413)
            return
        head = ctx.head
        raw_query = ctx.query or ""
        request = LocalRequest(
            method=head.method.decode("latin-1"), path=ctx.path,
            query=dict(parse_qsl(raw_query, keep_blank_values=True)), raw_query=raw_query,
            headers=head.headers, body=b"".join(self.body), client_ip=front.peer_ip,
            location=self.location, scheme=front.scheme, host=ctx.host,
            pipeline=front.pipeline)
        try:
            response = self.func(request)
        except Exception:
            log.exception("the %s handler failed", self.location)
            front.local_error(ctx, 500)
            return
        front.send_local(ctx, response.status, response.body, response.headers,
                         content_type=response.content_type.encode("latin-1"))
