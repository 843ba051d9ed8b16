"""The mutable state a config walk fills in, and the walker that dispatches through the registry.

Directive handlers receive a ``BuildContext``: the node being handled, the scope it sits in
(main server, a virtual host, a <Location>, a <Proxy>) and the config-wide state. Nothing
here knows any particular directive; ``finish`` (in load.py) turns the state into the frozen
model.
"""

from __future__ import annotations

__all__ = [
    "BuildContext",
    "BuildState",
    "LocationScope",
    "PendingLog",
    "ProxyScope",
    "Scope",
    "ServerScope",
]

import os
import re
from dataclasses import dataclass, field

from portico.config.balancers import BalancerTable, HostBalancerSettings
from portico.config.model import ListenSpec, ReverseRule, Route, Source
from portico.config.registry import Context, Registry
from portico.config.tree import Node
from portico.config.workers import WorkerTable
from portico.errors import ConfigError


@dataclass
class PendingLog:
    """A CustomLog/TransferLog whose format is resolved once every LogFormat is known."""

    target: str
    format: str | None          # nickname or format string; None = the scope's default
    source: Source
    env_condition: str | None = None
    expr_condition: str | None = None


@dataclass
class ServerScope:
    """The main server or one <VirtualHost> while it is being read."""

    source: Source
    is_main: bool
    addresses: tuple[tuple[str, int | None], ...] = ()
    server_name: str | None = None
    port: int | None = None
    aliases: list[str] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    reverse: list[ReverseRule] = field(default_factory=list)
    cookie_domains: list[ReverseRule] = field(default_factory=list)
    cookie_paths: list[ReverseRule] = field(default_factory=list)
    locations: list[LocationScope] = field(default_factory=list)
    settings: dict[str, object] = field(default_factory=dict)   # explicit ProxySettings
    tls: dict[str, object] = field(default_factory=dict)        # explicit TLSClientSettings
    error_documents: dict[int, str] = field(default_factory=dict)
    core: dict[str, object] = field(default_factory=dict)       # explicit CoreSettings
    logs: list[PendingLog] = field(default_factory=list)
    log_formats: dict[str, str] = field(default_factory=dict)
    default_format: str | None = None
    error_log: str | None = None
    error_log_source: Source | None = None   # where ErrorLog was set
    log_level: str | None = None                # a <VirtualHost>'s own LogLevel
    module_log_levels: dict[str, str] = field(default_factory=dict)
    proxy_pass_inherit: bool | None = None
    balancer: HostBalancerSettings = field(default_factory=HostBalancerSettings)

    @property
    def kind(self) -> Context:
        return Context.SERVER if self.is_main else Context.VHOST

    @property
    def server(self) -> ServerScope:
        return self


@dataclass
class LocationScope:
    """A <Location>/<LocationMatch> while it is being read."""

    path: str
    source: Source
    pattern: re.Pattern[str] | None
    server: ServerScope
    proxy_pass: Route | None = None
    reverse: list[ReverseRule] = field(default_factory=list)
    cookie_domains: list[ReverseRule] = field(default_factory=list)
    cookie_paths: list[ReverseRule] = field(default_factory=list)
    handler: str | None = None
    overrides: dict[str, object] = field(default_factory=dict)
    error_documents: dict[int, str] = field(default_factory=dict)

    kind = Context.LOCATION


@dataclass
class ProxyScope:
    """A <Proxy>/<ProxyMatch>: only ProxySet (and harmless directives) act inside it."""

    url: str
    source: Source
    server: ServerScope
    regex: bool
    wildcard: bool

    kind = Context.PROXY


Scope = ServerScope | LocationScope | ProxyScope


@dataclass
class BuildState:
    """Config-wide state: what is not per virtual host."""

    source_file: str
    server_root: str
    defines: dict[str, str | None]
    main: ServerScope
    vhosts: list[ServerScope] = field(default_factory=list)
    listens: list[ListenSpec] = field(default_factory=list)
    workers: WorkerTable = field(default_factory=WorkerTable)
    balancers: BalancerTable = field(default_factory=BalancerTable)
    runtime_dir: str | None = None
    pid_file: str | None = None
    log_level: str = "warn"
    module_log_levels: dict[str, str] = field(default_factory=dict)

    def resolve(self, path: str) -> str:
        """A file name relative to ServerRoot, as httpd's ap_server_root_relative."""
        return path if os.path.isabs(path) else os.path.join(self.server_root, path)

    @property
    def socket_dir(self) -> str:
        """Where relative unix: socket paths live: DefaultRuntimeDir, else ServerRoot."""
        return self.runtime_dir or self.server_root


class BuildContext:
    """What a directive handler sees: its node, its scope and the config-wide state."""

    def __init__(self, registry: Registry, state: BuildState, scope: Scope, node: Node) -> None:
        self.registry = registry
        self.state = state
        self.scope = scope
        self.node = node

    @property
    def source(self) -> Source:
        return Source(self.node.file, self.node.line)

    @property
    def server(self) -> ServerScope:
        return self.scope.server

    @property
    def location(self) -> LocationScope | None:
        return self.scope if isinstance(self.scope, LocationScope) else None

    @property
    def directive(self) -> str:
        return f"<{self.node.name}>" if self.node.is_section else self.node.name

    def error(self, message: str) -> ConfigError:
        """A ConfigError located at this node (raise it)."""
        return ConfigError(message, self.node.file, self.node.line, self.directive)

    def set_setting(self, name: str, value: object) -> None:
        """Set a ProxySettings field in this scope (a Location records it as an override)."""
        if isinstance(self.scope, LocationScope):
            self.scope.overrides[name] = value
        else:
            self.server.settings[name] = value

    def walk(self, nodes: tuple[Node, ...], scope: Scope) -> None:
        """Handle ``nodes`` in ``scope``: look each up, check context and arity, dispatch."""
        walk(self.registry, self.state, nodes, scope)


def walk(registry: Registry, state: BuildState, nodes: tuple[Node, ...], scope: Scope) -> None:
    """Dispatch every node through the registry, in order."""
    for node in nodes:
        spec = registry.lookup(node.name, node.is_section)
        if spec is None:
            if node.is_section:
                raise ConfigError(
                    f"Invalid section '<{node.name}>': not a section portico knows "
                    "(misspelled, or from a module portico does not implement)",
                    node.file, node.line, f"<{node.name}>")
            raise ConfigError(
                f"Invalid command '{node.name}': not a directive portico knows "
                "(misspelled, or from a module portico does not implement)",
                node.file, node.line, node.name)
        spec.check_context(node, scope.kind)
        spec.check_args(node)
        context = BuildContext(registry, state, scope, node)
        try:
            spec.handler(context, node)
        except ConfigError as exc:
            if exc.file is None or exc.directive is None:
                raise ConfigError(exc.message, exc.file or node.file,
                                  exc.line if exc.file else node.line,
                                  exc.directive or context.directive) from None
            raise
