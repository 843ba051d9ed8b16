"""Glue between served requests and the access logs (CustomLog / TransferLog).

Formats are compiled once per configuration; a virtual host without CustomLog lines of its
own logs to the main server's, like httpd. A record is only built when some log wants it.
"""

from __future__ import annotations

__all__ = ["AccessLogs", "build_access_logs"]

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from portico.config.model import AccessLogSpec, ServerConfig
from portico.errors import ConfigError
from portico.expr import Expr, compile_expr
from portico.logs.format import compile_format
from portico.logs.record import AccessRecord
from portico.logs.writer import AccessLog, WriterPool
from portico.proxy.environment import RequestFacts, expr_context

if TYPE_CHECKING:
    from portico.proxy.exchange import RequestContext
    from portico.server.front import FrontConnection

class VhostAccessLogs:
    """The access logs one virtual host writes to."""

    __slots__ = ("_entries",)

    def __init__(self, entries: list[AccessLog]) -> None:
        self._entries = entries

    def log(self, front: FrontConnection, ctx: RequestContext) -> None:
        record = _record(front, ctx)
        for entry in self._entries:
            entry.log(record)

    def log_rejected(self, front: FrontConnection, status: int, size: int) -> None:
        record = _bare_record(front, status, size)
        for entry in self._entries:
            entry.log(record)


class AccessLogs:
    """All access logs of one configuration: ``by_vhost`` maps id(VirtualHost) → logs."""

    def __init__(self, by_vhost: dict[int, VhostAccessLogs], pool: WriterPool | None) -> None:
        self.by_vhost = by_vhost
        self._pool = pool

    def flush(self) -> None:
        if self._pool is not None:
            self._pool.flush()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


def build_access_logs(config: ServerConfig, open_files: bool = True) -> AccessLogs:
    """Compile every CustomLog format (errors name file:line) and open the writers."""
    pool = WriterPool(config.server_root) if open_files else None
    by_vhost: dict[int, VhostAccessLogs] = {}
    main_entries = _entries(config.main.access_logs, pool)
    if main_entries:
        by_vhost[id(config.main)] = VhostAccessLogs(main_entries)
    for vh in config.vhosts:
        own = _entries(vh.access_logs, pool) if vh.access_logs else main_entries
        if own:
            by_vhost[id(vh)] = VhostAccessLogs(own)
    return AccessLogs(by_vhost, pool)


def _entries(specs: tuple[AccessLogSpec, ...], pool: WriterPool | None) -> list[AccessLog]:
    out: list[AccessLog] = []
    for spec in specs:
        try:
            fmt = compile_format(spec.format)
        except ValueError as exc:
            raise ConfigError(str(exc), spec.source.file, spec.source.line, "CustomLog") from None
        if pool is None:
            continue
        try:
            writer = pool.get(spec.target)
        except OSError as exc:
            raise ConfigError(f"could not open the log {spec.target}: {exc}",
                              spec.source.file, spec.source.line, "CustomLog") from None
        predicate = None
        if spec.expr_condition:
            expr = compile_expr(spec.expr_condition, spec.source.file, spec.source.line)
            predicate = _holds(expr)
        out.append(AccessLog(fmt, writer, env_condition=spec.env_condition,
                             predicate=predicate))
    return out


def _holds(expr: Expr) -> Callable[[AccessRecord], bool]:
    """CustomLog expr=: evaluated on the finished request (status, both header sets, env)."""

    def holds(record: AccessRecord) -> bool:
        facts = RequestFacts(
            record.remote_ip, record.local_ip, record.method,
            record.protocol.removeprefix(b"HTTP/"), record.path.decode("latin-1"),
            record.request_headers, record.query.decode("latin-1") if record.query else None)
        context = expr_context(facts, record.env, record.status, record.response_headers)
        variables = context.variables
        assert isinstance(variables, dict)
        variables["SERVER_NAME"] = record.server_name
        variables["SERVER_PORT"] = str(record.server_port)
        variables["HTTP_HOST"] = record.host
        variables["THE_REQUEST"] = record.request_line.decode("latin-1")
        return expr.evaluate(context)

    return holds


_PID = os.getpid


def _record(front: FrontConnection, ctx: RequestContext) -> AccessRecord:
    head = ctx.head
    vhost = ctx.vhost
    notes = ctx.notes if ctx.notes is not None else {}
    if ctx.backend_status:
        notes.setdefault("proxy-status", str(ctx.backend_status))
    env = ctx.env if ctx.env is not None else {}
    server_name = vhost.server_name if vhost is not None else ""
    return AccessRecord(
        remote_ip=front.peer_ip, remote_port=front.peer_port, peer_ip=front.peer_ip,
        local_ip=front.local_ip, local_port=front.local_port,
        server_name=server_name, server_port=front.local_port,
        host=(ctx.host.rsplit(":", 1)[0] if ctx.host else server_name),
        request_line=b"%s %s HTTP/%s" % (head.method, head.target, head.version),
        method=head.method, path=ctx.path.encode("latin-1"),
        query=(ctx.query or "").encode("latin-1"), protocol=b"HTTP/" + head.version,
        status=ctx.status, original_status=ctx.status, body_bytes=ctx.body_bytes,
        bytes_in=ctx.bytes_in, bytes_out=ctx.bytes_to_client + ctx.body_bytes,
        start_ns=ctx.start_ns, end_ns=ctx.end_ns, request_headers=head.headers,
        response_headers=ctx.response_headers, request_trailers=ctx.request_trailers,
        response_trailers=ctx.response_trailers, env=env, notes=notes,
        keepalive_count=front.requests_served,
        conn_status="X" if ctx.aborted else ("+" if ctx.keep_alive else "-"),
        handler="proxy-server" if ctx.match is not None else "",
        filename=f"proxy:{ctx.match.url}" if ctx.match is not None else "",
    )


def _bare_record(front: FrontConnection, status: int, size: int) -> AccessRecord:
    import time
    now = time.time_ns()
    return AccessRecord(
        remote_ip=front.peer_ip, remote_port=front.peer_port, peer_ip=front.peer_ip,
        local_ip=front.local_ip, local_port=front.local_port, server_name="",
        server_port=front.local_port, host="", request_line=b"-", method=b"-", path=b"-",
        query=b"", protocol=b"-", status=status, original_status=status, body_bytes=size,
        bytes_in=front.rx_pending, bytes_out=size, start_ns=now, end_ns=now, request_headers=[],
        response_headers=[], conn_status="-")
