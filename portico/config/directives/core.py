"""httpd core directives: listeners, names, virtual hosts, locations, limits, timeouts."""

from __future__ import annotations

__all__ = ["TABLE", "parse_host_port"]

import logging
import os
import re

from portico.config.build import BuildContext, LocationScope, ServerScope
from portico.config.directives.common import duration, flag, integer
from portico.config.model import EncodedSlashes, ListenSpec
from portico.config.registry import Context, DirectiveTable
from portico.config.tree import Node

_log = logging.getLogger("portico.config")

TABLE = DirectiveTable("core")

S = Context.SERVER
SV = Context.SERVER | Context.VHOST
SVL = SV | Context.LOCATION

_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]*))(?::(?P<port>[^:]*))?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def parse_host_port(text: str) -> tuple[str, str | None]:
    """Split ``host[:port]`` / ``[v6][:port]``; raises ValueError. Port is returned as text."""
    match = _HOST_PORT.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not host[:port] (write IPv6 addresses in brackets)")
    host = match.group("v6") if match.group("v6") is not None else match.group("host")
    return host, match.group("port")


def _port(ctx: BuildContext, text: str) -> int:
    return integer(ctx, text, 1, 65535)


# -- listeners and names --------------------------------------------------------------------

@TABLE.directive("Listen", S, args=(1, 2))
def _listen(ctx: BuildContext, node: Node) -> None:
    spec = node.args[0]
    if spec.isdigit():
        host, port_text = None, spec
    else:
        try:
            host, port_text = parse_host_port(spec)
        except ValueError as exc:
            raise ctx.error(str(exc)) from None
        if port_text is None:
            raise ctx.error(f"{spec!r} has no port number")
        if host in ("", "*"):
            host = None
    port = _port(ctx, port_text)
    for earlier in ctx.state.listens:
        if earlier.host == host and earlier.port == port:
            raise ctx.error(f"{spec} is already listened on (first Listen at {earlier.source})")
    protocol = node.args[1].lower() if len(node.args) > 1 else None
    ctx.state.listens.append(ListenSpec(host, port, protocol, ctx.source))


@TABLE.directive("ServerName", SV)
def _server_name(ctx: BuildContext, node: Node) -> None:
    text = _SCHEME.sub("", node.args[0]).rstrip("/")
    try:
        host, port_text = parse_host_port(text)
    except ValueError as exc:
        raise ctx.error(str(exc)) from None
    if not host:
        raise ctx.error("needs a host name")
    server = ctx.server
    server.server_name = host.lower()
    server.port = _port(ctx, port_text) if port_text else None


@TABLE.directive("ServerAlias", Context.VHOST, args=(1, None))
def _server_alias(ctx: BuildContext, node: Node) -> None:
    ctx.server.aliases.extend(alias.lower() for alias in node.args)


@TABLE.directive("ServerRoot", S)
def _server_root(ctx: BuildContext, node: Node) -> None:
    path = os.path.abspath(node.args[0])
    if not os.path.isdir(path):
        raise ctx.error(f"{path} is not a directory")
    ctx.state.server_root = path
    _log.debug("%s: ServerRoot %s (used for relative paths only)", ctx.source, path)


@TABLE.directive("DefaultRuntimeDir", S)
def _runtime_dir(ctx: BuildContext, node: Node) -> None:
    ctx.state.runtime_dir = ctx.state.resolve(node.args[0])
    _log.debug("%s: DefaultRuntimeDir %s (used for relative unix: socket paths only)",
               ctx.source, ctx.state.runtime_dir)


@TABLE.directive("PidFile", S)
def _pid_file(ctx: BuildContext, node: Node) -> None:
    ctx.state.pid_file = ctx.state.resolve(node.args[0])


# -- sections ---------------------------------------------------------------------------------

def _vhost_address(ctx: BuildContext, word: str) -> tuple[str, int | None]:
    try:
        host, port_text = parse_host_port(word)
    except ValueError as exc:
        raise ctx.error(str(exc)) from None
    if not host:
        raise ctx.error(f"{word!r} has no address (use * for any)")
    if port_text in (None, "*"):
        return host.lower(), None
    return host.lower(), _port(ctx, port_text)


@TABLE.section("VirtualHost", S, args=(1, None))
def _virtual_host(ctx: BuildContext, node: Node) -> None:
    addresses = tuple(_vhost_address(ctx, word) for word in node.args)
    scope = ServerScope(ctx.source, is_main=False, addresses=addresses)
    ctx.state.vhosts.append(scope)
    ctx.walk(node.children or (), scope)


def _compile(ctx: BuildContext, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ctx.error(f"bad regular expression {pattern!r}: {exc}") from None


@TABLE.section("Location", SV, args=(1, 2))
def _location(ctx: BuildContext, node: Node) -> None:
    if len(node.args) == 2:
        if node.args[0] != "~":
            raise ctx.error("takes a path, or ~ and a regular expression")
        _open_location(ctx, node, node.args[1], regex=True)
    else:
        _open_location(ctx, node, node.args[0], regex=False)


@TABLE.section("LocationMatch", SV)
def _location_match(ctx: BuildContext, node: Node) -> None:
    _open_location(ctx, node, node.args[0], regex=True)


def _open_location(ctx: BuildContext, node: Node, path: str, regex: bool) -> None:
    pattern = _compile(ctx, path) if regex else None
    scope = LocationScope(path, ctx.source, pattern, ctx.server)
    ctx.server.locations.append(scope)
    ctx.walk(node.children or (), scope)


# -- connection handling and limits (CoreSettings) ---------------------------------------------

def _core(ctx: BuildContext, name: str, value: object) -> None:
    ctx.server.core[name] = value


@TABLE.directive("Timeout", SV)
def _timeout(ctx: BuildContext, node: Node) -> None:
    _core(ctx, "timeout", duration(ctx, node.args[0]))


@TABLE.directive("KeepAlive", SV)
def _keepalive(ctx: BuildContext, node: Node) -> None:
    _core(ctx, "keepalive", flag(ctx, node.args[0]))


@TABLE.directive("KeepAliveTimeout", SV)
def _keepalive_timeout(ctx: BuildContext, node: Node) -> None:
    _core(ctx, "keepalive_timeout", duration(ctx, node.args[0]))


@TABLE.directive("MaxKeepAliveRequests", SV)
def _max_keepalive_requests(ctx: BuildContext, node: Node) -> None:
    _core(ctx, "max_keepalive_requests", integer(ctx, node.args[0], 0))


@TABLE.directive("LimitRequestLine", SV)
def _limit_request_line(ctx: BuildContext, node: Node) -> None:
    _core(ctx, "limit_request_line", integer(ctx, node.args[0], 0))


@TABLE.directive("LimitRequestFieldSize", SV)
def _limit_request_field_size(ctx: BuildContext, node: Node) -> None:
    _core(ctx, "limit_request_field_size", integer(ctx, node.args[0], 0))


@TABLE.directive("LimitRequestFields", SV)
def _limit_request_fields(ctx: BuildContext, node: Node) -> None:
    _core(ctx, "limit_request_fields", integer(ctx, node.args[0], 0))


@TABLE.directive("LimitRequestBody", SVL)
def _limit_request_body(ctx: BuildContext, node: Node) -> None:
    # Enforced per request after routing (a <Location> may set its own limit).
    ctx.set_setting("limit_request_body", integer(ctx, node.args[0], 0, 2**63 - 1))


@TABLE.directive("GracefulShutdownTimeout", S)
def _graceful_shutdown_timeout(ctx: BuildContext, node: Node) -> None:
    _core(ctx, "graceful_shutdown_timeout", float(integer(ctx, node.args[0], 0)))


@TABLE.directive("Workers", S)
def _workers(ctx: BuildContext, node: Node) -> None:
    # portico's own: how many worker processes the master runs (``-w N`` overrides it;
    # without either, one per CPU). httpd's StartServers/ServerLimit stay ignored because
    # their meaning is tied to httpd's MPMs.
    _core(ctx, "workers", integer(ctx, node.args[0], 1, 1024))


@TABLE.directive("ProxySplice", S)
def _proxy_splice(ctx: BuildContext, node: Node) -> None:
    # portico's own: large Content-Length bodies go from the backend's socket to the
    # client's through splice(2), never through Python (server/splice.py). Off keeps every
    # byte in user space, as HAProxy's option splice-response does when not set.
    _core(ctx, "splice", flag(ctx, node.args[0]))


# -- per-request behaviour -----------------------------------------------------------------------

@TABLE.directive("AllowEncodedSlashes", SV)
def _allow_encoded_slashes(ctx: BuildContext, node: Node) -> None:
    word = node.args[0].lower()
    values = {member.value: member for member in EncodedSlashes}
    if word not in values:
        raise ctx.error(f"expects On, Off or NoDecode, got {node.args[0]!r}")
    ctx.set_setting("allow_encoded_slashes", values[word])


@TABLE.directive("ErrorDocument", SVL, args=(2, 2))
def _error_document(ctx: BuildContext, node: Node) -> None:
    code = integer(ctx, node.args[0], 400, 599)
    message = node.args[1]
    # httpd's heuristic: a space makes it text; else a leading '/' is a local path, a URL
    # is a redirect, anything else is text (stored with a leading '"' marker, like httpd).
    if message.lower() == "default":
        value = "default"
    elif " " in message or not (message.startswith("/") or _SCHEME.match(message)):
        value = '"' + message
    else:
        value = message
    if code == 401 and _SCHEME.match(value):
        _log.warning("%s: ErrorDocument 401 cannot be a full URL; ignored (as httpd)",
                     ctx.source)
        return
    location = ctx.location
    target = location.error_documents if location is not None else ctx.server.error_documents
    target[code] = value


@TABLE.directive("SetHandler", Context.LOCATION)
def _set_handler(ctx: BuildContext, node: Node) -> None:
    location = ctx.location
    assert location is not None  # the registry only allows <Location>
    value = node.args[0]
    location.handler = None if value.lower() == "none" else value
