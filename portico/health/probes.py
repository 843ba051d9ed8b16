"""One health check against one balancer member (mod_proxy_hcheck's check, §10.3).

Promises
--------
* ``ProbeTarget.from_spec`` is built once per config (the request bytes, the timeouts and
  the compiled hcexpr are precomputed); ``probe(target)`` runs one check and never raises
  for a network or protocol problem: every outcome is a ``ProbeResult`` with a reason.
* ``TCP`` passes when a connection opens within the connect timeout (it is closed at once).
* ``OPTIONS``/``HEAD``/``GET`` send HTTP/1.0, the ``…11`` variants HTTP/1.1; both with
  ``Host: host:port`` (the port always written) and nothing else, as httpd sends them.
  ``OPTIONS`` asks for ``*``; the connection is closed after one answer. The status line
  must be ``HTTP/1.x NNN``.
* For GET the body is read to its end (Content-Length, chunked or EOF), at most
  ``BODY_LIMIT`` bytes; HEAD and OPTIONS are complete at the end of the header block.
* Pass: the hcexpr evaluates true (an evaluation error is a failure); without hcexpr a
  status 200-399 passes.
* The whole check is bounded by ``min(worker timeout, hcinterval)`` and the connect by
  the worker's connectiontimeout (else its timeout) within that: a hanging member fails its
  check before the next one is due.

Where portico differs from httpd (docs/compat.md "Health checks"): the check path joins the
member's path and hcuri with exactly one ``/`` and is ``/`` when both are empty (httpd joins
literally: ``http://h/`` + ``/status`` gives ``///status``, and an empty target is sent).
"""

from __future__ import annotations

__all__ = [
    "BODY_LIMIT", "HTTP_METHODS", "ProbeResult", "ProbeTarget", "check_path", "probe",
]

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httptools

from portico.config.model import ServerConfig, TLSClientSettings, VirtualHost, WorkerSpec
from portico.upstream.connect import tls_context_for
from portico.upstream.peercert import tls_problem

log = logging.getLogger("portico.health")

#: GET bodies longer than this are cut here (rule 7); the expression sees the first bytes.
BODY_LIMIT = 1 << 20
_HEAD_LIMIT = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "h2c": 80, "h2": 443}
_TLS_SCHEMES = frozenset({"https", "wss", "h2"})

#: hcmethod → (request method, HTTP version).
HTTP_METHODS: Mapping[str, tuple[str, str]] = {
    "OPTIONS": ("OPTIONS", "1.0"), "HEAD": ("HEAD", "1.0"), "GET": ("GET", "1.0"),
    "OPTIONS11": ("OPTIONS", "1.1"), "HEAD11": ("HEAD", "1.1"), "GET11": ("GET", "1.1"),
}


def check_path(member_path: str, hcuri: str) -> str:
    """The request-target of a HEAD/GET check: member path and hcuri joined by one ``/``.

    >>> check_path("/", "/status"), check_path("", "status"), check_path("/app", "")
    ('/status', '/status', '/app')
    """
    left = member_path.rstrip("/")
    right = hcuri.lstrip("/")
    path = f"{left}/{right}" if right else left
    if not path.startswith("/"):
        path = "/" + path
    return path


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One check's outcome. ``status`` is None when no response was read."""

    ok: bool
    latency_ms: float
    reason: str                      # "GET /status → 503", "TCP → connection refused", …
    status: int | None = None


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """Everything one member's checks need, computed once per config."""

    member: str                      # the member URL (its name), for messages
    method: str                      # hcmethod, upper case (never NONE here)
    host: str
    port: int
    request: bytes                   # b"" for TCP
    describe: str                    # "GET /status", "TCP"
    timeout: float                   # bound of the whole check, seconds
    connect_timeout: float
    tls: ssl.SSLContext | None = None
    server_hostname: str | None = None
    expr: Any = None                 # a compiled hcexpr (``.evaluate(ctx) -> bool``) or None
    expr_error: str | None = None    # why the named hcexpr cannot be used (checks then fail)
    read_body: bool = field(default=False)
    tls_settings: TLSClientSettings | None = None   # for mod_ssl's own certificate checks
    # The <VirtualHost> defining the member's balancer (its error log gets the member's
    # transitions); None: the main server.
    vhost: VirtualHost | None = None

    @classmethod
    def from_spec(cls, spec: WorkerSpec, config: ServerConfig) -> ProbeTarget:
        """The target for member ``spec`` (its hcmethod must not be NONE)."""
        p = spec.params
        method = p.hcmethod.upper()
        port = spec.port or _DEFAULT_PORTS.get(spec.scheme, 80)
        settings_timeout = config.main.settings.timeout
        io_timeout = p.timeout or settings_timeout or config.core.timeout
        timeout = max(0.1, min(io_timeout, p.hcinterval))
        connect_timeout = min(timeout, p.connectiontimeout or io_timeout)
        tls = None
        tls_settings = None
        definer = _defining_host(spec, config)
        vhost = None if definer is config.main else definer
        if spec.scheme in _TLS_SCHEMES:
            tls_settings = definer.settings.tls
            tls = tls_context_for(tls_settings)
        expr, expr_error = _resolve_expr(p.hcexpr, config) if method != "TCP" else (None, None)
        if method == "TCP":
            return cls(spec.name, method, spec.host, port, b"", "TCP", timeout,
                       connect_timeout, tls, spec.host if tls else None,
                       tls_settings=tls_settings, vhost=vhost)
        verb, version = HTTP_METHODS[method]
        target = "*" if verb == "OPTIONS" else check_path(spec.path, p.hcuri)
        host = f"[{spec.host}]" if ":" in spec.host else spec.host
        request = f"{verb} {target} HTTP/{version}\r\nHost: {host}:{port}\r\n\r\n".encode()
        return cls(spec.name, method, spec.host, port, request, f"{verb} {target}", timeout,
                   connect_timeout, tls, spec.host if tls else None, expr, expr_error,
                   read_body=verb == "GET", tls_settings=tls_settings, vhost=vhost)


def _defining_host(spec: WorkerSpec, config: ServerConfig) -> VirtualHost:
    """The server whose settings a member's checks use (its SSLProxy*, as in httpd): the
    virtual host that defines the member's balancer, else the main server."""
    name = spec.balancer
    if name is not None and name not in config.main.balancers:
        for host in config.vhosts:
            if name in host.balancers:
                return host
    return config.main


def _resolve_expr(name: str, config: ServerConfig) -> tuple[Any, str | None]:
    """The compiled ProxyHCExpr called ``name`` (None, None without hcexpr)."""
    if not name:
        return None, None
    exprs = getattr(config, "hc_exprs", None) or {}
    entry = exprs.get(name)
    if entry is None:
        entry = exprs.get(name.lower())      # ProxyHCExpr names are case-insensitive
    if entry is None:
        return None, f"hcexpr {name!r} is not defined (ProxyHCExpr)"
    compiled = getattr(entry, "expr", None)
    if compiled is not None:
        return compiled, None
    text = getattr(entry, "text", entry if isinstance(entry, str) else None)
    try:
        from portico.expr import compile_expr
    except ImportError:
        return None, f"hcexpr {name!r}: expressions are not available"
    try:
        return compile_expr(text), None
    except ValueError as exc:
        return None, f"hcexpr {name!r}: {exc}"


async def probe(target: ProbeTarget) -> ProbeResult:
    """Run one check (see the module docstring); never raises for a failed check."""
    start = time.monotonic()
    try:
        async with asyncio.timeout(target.timeout):
            status, headers, body = await _exchange(target, start)
    except TimeoutError:
        return _result(target, start, False, f"timed out after {target.timeout:g} s")
    except (OSError, ssl.SSLError) as exc:
        return _result(target, start, False, _os_reason(exc))
    except _BadResponse as exc:
        return _result(target, start, False, f"bad response: {exc}")
    except _BadCertificate as exc:
        return _result(target, start, False, f"TLS check failed: {exc}")
    if status is None:
        return _result(target, start, True, "connected")
    if target.expr_error is not None:
        return _result(target, start, False, f"{status} ({target.expr_error})", status)
    if target.expr is None:
        return _result(target, start, 200 <= status <= 399, str(status), status)
    return _evaluate(target, start, status, headers, body)


def _evaluate(target: ProbeTarget, start: float, status: int, headers: dict[str, str],
              body: bytes) -> ProbeResult:
    from portico.expr import EvalContext
    verb, _, uri = target.describe.partition(" ")
    ctx = EvalContext(status=status, headers=headers, body=body, method=verb, uri=uri)
    try:
        explain = getattr(target.expr, "explain", None)
        if explain is not None:
            ok, why = explain(ctx)
        else:
            ok, why = bool(target.expr.evaluate(ctx)), None
    except (ValueError, TypeError, LookupError, ArithmeticError) as exc:
        ok, why = False, str(exc)
    if why is not None:
        # An evaluation error counts as a failure (§10.3).
        return _result(target, start, False, f"{status} (hcexpr error: {why})", status)
    return _result(target, start, ok, f"{status}, hcexpr {'true' if ok else 'false'}", status)


def _result(target: ProbeTarget, start: float, ok: bool, what: str,
            status: int | None = None) -> ProbeResult:
    latency = (time.monotonic() - start) * 1000.0
    return ProbeResult(ok, latency, f"{target.describe} → {what}", status)


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class _BadResponse(Exception):
    """The member's answer is not an HTTP/1.x response we can read."""


class _BadCertificate(Exception):
    """The member's certificate fails mod_ssl's own checks (upstream/peercert.py)."""


def _check_certificate(target: ProbeTarget, writer: asyncio.StreamWriter) -> None:
    """Checks see the certificate as requests do (upstream/peercert.py)."""
    tls = target.tls_settings
    if tls is None:
        return
    problem = tls_problem(writer.get_extra_info("ssl_object"),
                          target.server_hostname or target.host, tls, time.time())
    if problem is not None:
        raise _BadCertificate(problem)


async def _exchange(target: ProbeTarget, start: float
                    ) -> tuple[int | None, dict[str, str], bytes]:
    """Connect (and for HTTP checks send the request and read the answer)."""
    async with asyncio.timeout(target.connect_timeout):
        reader, writer = await asyncio.open_connection(
            target.host, target.port, ssl=target.tls, server_hostname=target.server_hostname)
    try:
        _check_certificate(target, writer)
        if not target.request:
            return None, {}, b""
        writer.write(target.request)
        await writer.drain()
        return await _read_response(reader, target.read_body)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


class _Collector:
    """httptools callbacks: the status, the headers and (for GET) the body."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.head_done = False
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, chunk: bytes) -> None:
        room = BODY_LIMIT - len(self.body)
        if room > 0:
            self.body += chunk[:room]

    def on_message_complete(self) -> None:
        self.done = True


async def _read_response(reader: asyncio.StreamReader, read_body: bool
                         ) -> tuple[int, dict[str, str], bytes]:
    sink = _Collector()
    parser = httptools.HttpResponseParser(sink)
    seen = 0
    while True:
        data = await reader.read(65536)
        if not data:
            if sink.head_done and read_body:
                with contextlib.suppress(httptools.HttpParserError):
                    parser.feed_data(b"")  # EOF ends a body without framing
                return parser.get_status_code(), sink.headers, bytes(sink.body)
            raise _BadResponse("connection closed before the response was complete")
        seen += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            sink.head_done = True
        except httptools.HttpParserError as exc:
            if not sink.done:  # bytes after a complete answer are the member's problem
                raise _BadResponse(str(exc) or "unparsable response") from None
        if not sink.head_done and seen > _HEAD_LIMIT:
            raise _BadResponse(f"response head longer than {_HEAD_LIMIT} bytes")
        if sink.done or (sink.head_done and (not read_body or len(sink.body) >= BODY_LIMIT)):
            return parser.get_status_code(), sink.headers, bytes(sink.body)
