"""``load_config``: files → tree → walk through the registry → frozen ``ServerConfig``.

Merging follows httpd: a virtual host inherits every setting it does not set; its routes are
the main server's first, then its own (unless ProxyPassInherit Off, which portico honours as
the manual documents); reverse and cookie rules always inherit, main server first; main-server
<Location>s apply to every virtual host, before the host's own; a host with no access log of
its own uses the main server's.
"""

from __future__ import annotations

__all__ = ["load_config"]

import dataclasses
import logging
import os
import socket
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from portico.config.balancers import host_balancer_fields
from portico.config.build import BuildState, LocationScope, PendingLog, ServerScope, walk
from portico.config.directives.hcheck import hcheck_fields
from portico.config.directives.log import DEFAULT_FORMAT, PREDEFINED_FORMATS
from portico.config.model import (
    AccessLogSpec,
    CoreSettings,
    LocationSpec,
    ProxySettings,
    ServerConfig,
    Source,
    VirtualHost,
)
from portico.config.preprocess import preprocess
from portico.config.registry import default_registry, module_is_implemented

_log = logging.getLogger("portico.config")


def load_config(
    path: str, defines: Iterable[str] = (), server_root: str | None = None,
) -> ServerConfig:
    """Load the httpd-syntax config at ``path`` (and everything it includes).

    ``defines`` are ``-D`` names (``NAME`` or ``NAME=value``); ``server_root`` defaults to
    the directory of ``path``. Raises ConfigError naming file:line and the directive.
    """
    registry = default_registry()
    tree = preprocess(path, defines, server_root, module_known=module_is_implemented,
                      directive_known=registry.knows)
    root = os.path.abspath(server_root or os.path.dirname(os.path.abspath(path)))
    state = BuildState(source_file=path, server_root=root, defines=tree.defines,
                       main=ServerScope(Source(path, 1), is_main=True))
    walk(registry, state, tree.nodes, state.main)
    return _finish(state)


def _finish(state: BuildState) -> ServerConfig:
    main = state.main
    main_formats = {**PREDEFINED_FORMATS, **main.log_formats}
    main_default = main.default_format or DEFAULT_FORMAT
    main_settings = _merge_settings(ProxySettings(), main)
    main_core = dataclasses.replace(CoreSettings(), **main.core)  # type: ignore[arg-type]
    main_logs = _resolve_logs(main.logs, main_formats, main_default)
    main_name = main.server_name or _default_server_name()
    main_host = VirtualHost(
        server_name=main_name, source=main.source, port=main.port,
        routes=tuple(main.routes), reverse=tuple(main.reverse),
        cookie_domains=tuple(main.cookie_domains), cookie_paths=tuple(main.cookie_paths),
        locations=_locations(main.locations, main_settings), settings=main_settings,
        access_logs=main_logs, error_log=_main_error_log(state), core=main_core,
        **host_balancer_fields(state.balancers, main.source, main.balancer),  # type: ignore[arg-type]
    )
    vhosts = tuple(
        _vhost(state, vhost, main_name, main_settings, main_core, main_formats, main_default,
               main_logs)
        for vhost in state.vhosts
    )
    return ServerConfig(
        source_file=state.source_file,
        main=main_host,
        listens=tuple(state.listens),
        vhosts=vhosts,
        **hcheck_fields(state, state.workers.freeze()),
        core=main_core,
        log_formats=MappingProxyType(main_formats),
        error_log=_main_error_log(state),
        error_log_source=main.error_log_source,
        log_level=state.log_level,
        module_log_levels=MappingProxyType(dict(state.module_log_levels)),
        pid_file=state.pid_file,
        server_root=state.server_root,
        proxy_requests=main_settings.proxy_requests,
        defines=MappingProxyType({k: v or "" for k, v in state.defines.items()}),
        balancers=state.balancers.freeze(),
        runtime_dir=state.socket_dir,
    )


def _vhost(
    state: BuildState, scope: ServerScope, main_name: str, main_settings: ProxySettings,
    main_core: CoreSettings, main_formats: Mapping[str, str], main_default: str,
    main_logs: tuple[AccessLogSpec, ...],
) -> VirtualHost:
    main = state.main
    settings = _merge_settings(main_settings, scope)
    inherit = scope.proxy_pass_inherit
    if inherit is None:
        inherit = main.proxy_pass_inherit if main.proxy_pass_inherit is not None else True
    routes = (*main.routes, *scope.routes) if inherit else tuple(scope.routes)
    formats = {**main_formats, **scope.log_formats}
    logs = (_resolve_logs(scope.logs, formats, scope.default_format or main_default)
            if scope.logs else main_logs)
    return VirtualHost(
        server_name=scope.server_name or main_name,
        source=scope.source,
        addresses=scope.addresses,
        server_aliases=tuple(scope.aliases),
        port=scope.port,
        routes=routes,
        reverse=(*main.reverse, *scope.reverse),
        cookie_domains=(*main.cookie_domains, *scope.cookie_domains),
        cookie_paths=(*main.cookie_paths, *scope.cookie_paths),
        locations=_locations([*main.locations, *scope.locations], settings),
        settings=settings,
        access_logs=logs,
        error_log=scope.error_log,
        error_log_source=scope.error_log_source,
        log_level=scope.log_level,
        module_log_levels=MappingProxyType(dict(scope.module_log_levels)),
        core=dataclasses.replace(main_core, **scope.core),  # type: ignore[arg-type]
        **host_balancer_fields(state.balancers, main.source, main.balancer,  # type: ignore[arg-type]
                               scope.source, scope.balancer, inherit),
    )


# Settings a virtual host adds to the main server's instead of replacing them (httpd merges
# mod_setenvif's and mod_env's server configs that way).
_APPENDED = ("env_early", "env_fixed")


def _merge_settings(base: ProxySettings, scope: ServerScope) -> ProxySettings:
    tls = dataclasses.replace(base.tls, **scope.tls)  # type: ignore[arg-type]
    documents = _merge_documents(base.error_documents, scope.error_documents)
    own = dict(scope.settings)
    for name in _APPENDED:
        if name in own:
            own[name] = (*getattr(base, name), *own[name])  # type: ignore[misc]
    return dataclasses.replace(base, **own, tls=tls,  # type: ignore[arg-type]
                               error_documents=documents)


def _merge_documents(base: Mapping[int, str], own: Mapping[int, str]) -> Mapping[int, str]:
    """Per-code merge; ``ErrorDocument N default`` removes an inherited entry."""
    merged = {**base, **own}
    return MappingProxyType({code: value for code, value in merged.items()
                             if value != "default"})


def _locations(scopes: list[LocationScope], settings: ProxySettings) -> tuple[LocationSpec, ...]:
    specs = []
    for scope in scopes:
        overrides = dict(scope.overrides)
        env_late = tuple(overrides.pop("env_late", ()))  # type: ignore[arg-type]
        env_fixed = tuple(overrides.pop("env_fixed", ()))  # type: ignore[arg-type]
        if scope.error_documents:
            # Stored complete (host's documents merged with the Location's) so applying the
            # override replaces the field without losing the host's other codes.
            overrides["error_documents"] = _merge_documents(settings.error_documents,
                                                            scope.error_documents)
        specs.append(LocationSpec(
            path=scope.path, source=scope.source, pattern=scope.pattern,
            proxy_pass=scope.proxy_pass, reverse=tuple(scope.reverse),
            cookie_domains=tuple(scope.cookie_domains), cookie_paths=tuple(scope.cookie_paths),
            handler=scope.handler, overrides=MappingProxyType(overrides),
            env_late=env_late, env_fixed=env_fixed,
        ))
    return tuple(specs)


def _resolve_logs(
    pending: list[PendingLog], formats: Mapping[str, str], default: str,
) -> tuple[AccessLogSpec, ...]:
    specs = []
    for entry in pending:
        if entry.format is None:
            fmt = default
        elif entry.format in formats:
            fmt = formats[entry.format]
        else:
            fmt = entry.format
            if "%" not in fmt:
                _log.warning("%s: log format %r is not a known nickname and has no %% "
                             "directive; it is logged literally", entry.source, fmt)
        specs.append(AccessLogSpec(entry.target, fmt, entry.source, entry.env_condition,
                                   entry.expr_condition))
    return tuple(specs)


def _main_error_log(state: BuildState) -> str:
    return state.main.error_log or state.resolve("logs/error_log")


def _default_server_name() -> str:
    """httpd falls back to the machine's name; so do we (without a DNS lookup)."""
    name = socket.gethostname().lower() or "localhost"
    _log.debug("no ServerName in the main server; using %s", name)
    return name
