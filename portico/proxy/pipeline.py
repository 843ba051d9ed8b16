"""The request pipeline: the only module that knows the order of the stages (DESIGN).

For each request head: parse and decode the target → choose the virtual host → merge the
matching <Location> settings → Max-Forwards → route to a worker → build the backend request
head → hand over to the scheme handler. Local answers (404, 400, OPTIONS *) are sent from here.
A ``Pipeline`` is built once per configuration generation; all per-config work (routers,
reverse mappers, compiled log formats, runtime workers) happens in ``__init__``.
"""

from __future__ import annotations

__all__ = ["Pipeline"]

import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from portico.admin.basicauth import authorize
from portico.admin.hostnames import MISSING, HostNames
from portico.config.model import (
    EncodedSlashes,
    ProxySettings,
    ServerConfig,
    Source,
    VirtualHost,
    WorkerParams,
    WorkerSpec,
)
from portico.config.urls import parse_backend_url
from portico.errors import ConfigError
from portico.protocols.events import BodyKind, RequestHead
from portico.protocols.http1 import RequestLimits
from portico.proxy.environment import RequestFacts, apply_sets, expr_context, run_conditions
from portico.proxy.exchange import RequestContext, proxy_switches
from portico.proxy.headers import BackendRequest, build_request_head, max_forwards_action
from portico.proxy.local import LocalExchange, lookup
from portico.proxy.reverse import ReverseMapper
from portico.proxy.routing import Match, Router, VhostSelector
from portico.proxy.uri import BadTarget, EncodedSlashRefused, ParsedTarget, parse_target
from portico.schemes.http import HttpExchange
from portico.state.scoreboard import Scoreboard, WorkerSlot
from portico.upstream.balancer import Balancer
from portico.upstream.lbmethods.registry import UnknownLBMethod
from portico.upstream.shared import scoreboard_for
from portico.upstream.worker import Worker

if TYPE_CHECKING:
    from portico.server.accesslog import VhostAccessLogs
    from portico.server.front import FrontConnection

log = logging.getLogger("portico.proxy")

_HTTP_SCHEMES = frozenset({"http", "https"})
_CHUNKED = BodyKind.CHUNKED
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _VhostRuntime:
    """Per-virtual-host things computed once: router, reverse mapper, names, access logs,
    and the host's connection handling (its core settings in the form the front reads)."""

    __slots__ = ("access_logs", "core", "decisions", "keepalive_header", "keepalive_timeout",
                 "limits", "location_mappers", "mapper", "reuse_limit", "router",
                 "server_name", "timeout", "vhost")

    def __init__(self, vhost: VirtualHost, router: Router, access_logs: VhostAccessLogs | None,
                 default_port: int, balancers: Mapping[str, Sequence[str]],
                 main_limits: RequestLimits | None = None) -> None:
        self.vhost = vhost
        self.router = router
        self.server_name = vhost.server_name or "localhost"
        core = self.core = vhost.core
        self.timeout = core.timeout
        self.keepalive_timeout = core.keepalive_timeout
        # A connection that has served this many requests is not kept alive after the next
        # one: 0 for KeepAlive Off, so the front compares once per request. httpd's
        # MaxKeepAliveRequests counts reuses, so N allows N + 1 requests.
        if not core.keepalive:
            self.reuse_limit = 0
        else:
            self.reuse_limit = core.max_keepalive_requests or sys.maxsize
        self.keepalive_header = (f"timeout={core.keepalive_timeout:g}, "
                                 f"max={core.max_keepalive_requests}").encode()
        limits = RequestLimits(
            max_line=core.limit_request_line, max_field_size=core.limit_request_field_size,
            max_fields=core.limit_request_fields, max_body=0)  # LimitRequestBody: per request
        if main_limits is not None and _same_limits(limits, main_limits):
            limits = main_limits   # the front compares by identity
        self.limits = limits
        self.mapper = _mapper(vhost.reverse, vhost.cookie_domains, vhost.cookie_paths,
                              balancers)
        self.location_mappers = {
            id(loc): _mapper(loc.reverse + vhost.reverse, loc.cookie_domains
                             + vhost.cookie_domains, loc.cookie_paths + vhost.cookie_paths,
                             balancers)
            for loc in vhost.locations}
        self.access_logs = access_logs
        self.decisions: dict[bytes, _Decision] = {}


# Routing is a pure function of the configuration and the request-target: its outcome is
# remembered per virtual host and raw target, so a repeated target costs one dict lookup
# instead of decoding, Location matching and the rule walk. Bounded: a flood of distinct
# targets empties the table now and then.
_MAX_DECISIONS = 4096


class _Decision:
    """What the pipeline decided from one request-target: decoded path and query, the
    matching Locations and merged settings, the route (or its error status), the reverse
    mapper and, for a plain worker route, the worker. Never mutated once stored."""

    __slots__ = ("locations", "mapped_only", "mapper", "match", "path", "query", "route_error",
                 "settings", "target", "uses_env", "worker")

    def __init__(self, target: ParsedTarget, locations: tuple,
                 settings: ProxySettings) -> None:
        self.target = target
        self.path = target.path
        self.query = target.query
        self.uses_env = False   # environment rules run (and may reroute) for each request
        # A %2F under AllowEncodedSlashes Off: only a mapping= rule may take it (else 404).
        self.mapped_only = False
        self.locations = locations
        self.settings = settings
        self.match: Match | None = None
        self.route_error: int | None = None
        self.mapper: ReverseMapper | None = None
        self.worker: Worker | None = None


def _mapper(urls, domains, paths, balancers) -> ReverseMapper | None:
    if not (urls or domains or paths):
        return None
    return ReverseMapper(urls, domains, paths, balancers)


class Pipeline:
    """One configuration generation's request handling (see the module docstring)."""

    def __init__(self, config: ServerConfig, access_logs=None,
                 scoreboard: Scoreboard | None = None) -> None:
        """``access_logs`` maps id(VirtualHost) → an object with ``log(front, ctx)``;
        ``scoreboard`` is this process's board, bound to its lane (None: counters stay
        local, for tools and tests that build a pipeline without a server)."""
        self.config = config
        self.core = config.core
        if scoreboard is None:
            scoreboard = scoreboard_for(config, 1)
            scoreboard.bind(0)
        self.scoreboard = scoreboard
        self.process = scoreboard.process(scoreboard.lane)
        self.workers: dict[str, Worker] = {
            name: Worker(spec, config.main.settings,
                         scoreboard.worker(spec.name, getattr(spec, "balancer", None)))
            for name, spec in config.workers.items()}
        self.balancers: dict[str, Balancer] = {}
        for name, spec in (getattr(config, "balancers", None) or {}).items():
            try:
                self.balancers[name] = Balancer(
                    spec, [self.workers[key] for key in spec.member_keys], scoreboard)
                self.balancers[name].grow = self._grow_member
            except (UnknownLBMethod, ValueError) as exc:
                raise ConfigError(str(exc), spec.source.file, spec.source.line,
                                  "BalancerMember") from None
        default_port = config.listens[0].port if config.listens else 80
        logs = access_logs or {}
        members = {name.lower(): list(spec.members)
                   for name, spec in (getattr(config, "balancers", None) or {}).items()}
        self._main = _VhostRuntime(config.main, Router(config.main, config.workers),
                                   logs.get(id(config.main)), default_port, members)
        # The main server's request limits: what a connection's parser starts with.
        self.limits = self._main.limits
        self._vhosts = [
            _VhostRuntime(vh, Router(vh, config.workers), logs.get(id(vh)), default_port,
                          members, self.limits)
            for vh in config.vhosts]
        self._by_router = {id(v.router): v for v in [self._main, *self._vhosts]}
        self._selector = VhostSelector(self._main.router, [v.router for v in self._vhosts])
        self.connections = 0
        self.requests = 0
        self.hostnames = HostNames()
        self.pid = os.getpid()

    def base_runtime(self, local_ip: str, local_port: int) -> _VhostRuntime:
        """The host whose settings govern a new connection until a request selects one:
        the first <VirtualHost> of the address the client connected to (httpd's base
        server), else the main server."""
        if not self._vhosts:
            return self._main
        return self._by_router[id(self._selector.select(local_ip, local_port, None))]

    # -- connection bookkeeping (server-status counters) ---------------------------------
    def connection_opened(self, front: FrontConnection) -> None:
        self.connections += 1
        process = self.process
        process.conns += 1
        process.conns_total += 1

    def connection_closed(self, front: FrontConnection) -> None:
        self.connections -= 1
        self.process.conns -= 1

    # -- the stages --------------------------------------------------------------------------
    def begin(self, front: FrontConnection, head: RequestHead, start_ns: int):
        """Start serving one request; returns its scheme handler, or None if answered here."""
        self.requests += 1
        ctx = RequestContext(front, head, start_ns)
        front.ctx = ctx
        host = head.host   # the Host field's value, found by the parser
        host_header = host.decode("latin-1") if host is not None else None
        vrt = self._main
        if self._vhosts:
            vrt = self._runtime_for(front, host_header)
            # The selected host's KeepAlive, MaxKeepAliveRequests, Timeout and
            # KeepAliveTimeout govern the connection from here on (httpd: r->server). Without
            # virtual hosts it is the main server's, set when the connection was made.
            front.server_rt = vrt
        if front.requests_served >= vrt.reuse_limit:
            ctx.keep_alive = False
        ctx.vhost = vrt.vhost
        ctx.vhost_runtime = vrt
        ctx.settings = vrt.vhost.settings
        ctx.host = host_header or ""
        decision = vrt.decisions.get(head.target)
        if decision is None:
            target = head.target
            if target == b"*":
                if head.method == b"OPTIONS":
                    front.send_local(ctx, 200, b"", [(b"Allow", b"GET,HEAD,POST,OPTIONS")])
                else:
                    front.local_error(ctx, 400)
                return None
            origin_form = target[0] == 47   # "/..."
            if not origin_form:
                # Absolute-form: its authority is the host. Its decisions are not
                # remembered, so a remembered one never needs this test.
                vrt = self._absolute_form(ctx, front, head)
                host_header = ctx.host or None
            try:
                decision = self._decide(vrt, target, origin_form)
            except BadTarget as exc:
                front.local_error(ctx, exc.status)
                return None
        ctx.path = decision.path
        ctx.query = decision.query
        settings = ctx.settings = decision.settings
        locations = decision.locations
        if decision.uses_env:
            decision = self._environment(ctx, vrt, decision)
        # Access control (§19), before anything else looks at the request: Require rules of
        # the matching Locations, compiled at load (portico.admin.access), with Basic auth
        # only when a rule needs a user (portico.admin.basicauth).
        access = settings.access
        if access is not None:
            refused = self._refused(ctx, access, settings, start_ns)
            if refused is not False:
                return refused   # answered (None), or waiting for the client's host name
        if settings.env_fixed:   # SetEnv and co. run after access control (httpd's fixups)
            apply_sets(settings.env_fixed, ctx.env)  # type: ignore[arg-type]
        limit = settings.limit_request_body
        ctx.body_limit = limit
        if limit and head.content_length is not None and head.content_length > limit:
            front.local_error(ctx, 413)
            return None
        status, max_forwards = max_forwards_action(head.headers, head.method,
                                                   settings.max_forwards)
        if status is not None:
            if status == 200 and head.method == b"TRACE":
                # RFC 9110 §9.3.8: the final recipient reflects the request it received.
                echo = b"".join([b"TRACE ", head.target, b" HTTP/", head.version, b"\r\n",
                                 *(b"%s: %s\r\n" % (n, v) for n, v in head.headers), b"\r\n"])
                front.send_local(ctx, 200, echo, [], content_type=b"message/http")
            elif status == 200:
                front.send_local(ctx, 200, b"", [(b"Allow", b"GET,HEAD,POST,OPTIONS,TRACE")])
            else:
                front.local_error(ctx, status)
            return None
        if decision.route_error is not None:
            front.local_error(ctx, decision.route_error)
            return None
        match = decision.match
        if match is None:
            # Not proxied (no rule, or a `!`): a <Location>'s SetHandler may answer it. As in
            # httpd, a matching ProxyPass wins over SetHandler (hence `ProxyPass /x !`).
            return self._local(ctx, locations)
        mapper = ctx.mapper = decision.mapper
        if mapper is not None:
            ctx.base_url = f"{front.scheme}://{host_header or _server_authority(vrt, front)}"
        ctx.match = match
        if match.balancer is not None:
            balancer = self.balancers.get(match.balancer)
            if balancer is None:
                log.error("no balancer %s for %s", match.balancer, match.url,
                          extra={"vhost": ctx.vhost})
                front.local_error(ctx, 500, proxy_error=True, detail="no such balancer")
                return None
            ctx.balancer = balancer
            ctx.balancer_match = match
            ctx.max_forwards = max_forwards
            wait = balancer.params.timeout
            if not self._assign_member(ctx, answer=wait <= 0):
                if ctx.status:
                    return None  # answered: 503
                return self._wait_for_member(ctx, wait, settings, head)
            match = ctx.match
            worker = self.workers.get(match.worker)
        else:
            worker = decision.worker
        if worker is None or worker.spec.scheme not in _HTTP_SCHEMES:
            log.error("no protocol handler was valid for the URL %s", match.url,
                      extra={"vhost": ctx.vhost})
            front.local_error(ctx, 500, proxy_error=True, detail="no protocol handler was valid")
            return None
        ctx.worker = worker
        self._prepare_backend(ctx, head, vrt, settings, worker, max_forwards)
        exchange = HttpExchange(ctx)
        exchange.start()
        return exchange

    def _refused(self, ctx: RequestContext, access, settings: ProxySettings, start_ns: int):
        """Access control (a separate function: its closure would slow ``begin`` down).
        False: go on; None: refused and answered; else the wait for the host name."""
        front = ctx.front
        head = ctx.head
        hostname = None
        if access.needs_host:  # Require host: the client's verified name (cached)
            found = self.hostnames.cached(front.peer_ip)
            if found is MISSING:
                self.requests -= 1   # counted again when the request is started anew
                return _AwaitingHostName(self, front, head, start_ns)
            hostname = found
        env = ctx.env
        denial = authorize(access, settings, front.peer_ip, front.local_ip, head.headers,
                           hostname, method=head.method.decode("latin-1"), env=env,
                           context=lambda: expr_context(RequestFacts(
                               front.peer_ip, front.local_ip, head.method, head.version,
                               ctx.path, head.headers, ctx.query), env or {}))
        if denial is not None:
            front.local_error(ctx, denial.status, extra=list(denial.headers))
            return None
        return False

    def _runtime_for(self, front: FrontConnection, host_header: str | None) -> _VhostRuntime:
        """The virtual host a request names, among those of the connection's address."""
        return self._by_router[id(self._selector.select(
            front.local_ip, front.local_port, _host_name(host_header)))]

    def _absolute_form(self, ctx: RequestContext, front: FrontConnection,
                       head: RequestHead) -> _VhostRuntime:
        """Choose the virtual host again for an absolute-form target, by its authority."""
        host = _absolute_form_host(head)
        host_header = host.decode("latin-1") if host is not None else None
        vrt = self._runtime_for(front, host_header) if self._vhosts else self._main
        front.server_rt = vrt
        ctx.keep_alive = head.keep_alive and front.requests_served < vrt.reuse_limit
        ctx.vhost = vrt.vhost
        ctx.vhost_runtime = vrt
        ctx.settings = vrt.vhost.settings
        ctx.host = host_header or ""
        return vrt

    def _decide(self, vrt: _VhostRuntime, raw_target: bytes,
                remember: bool = True) -> _Decision:
        """Everything about a request that follows from its target alone (remembered per
        virtual host unless ``remember`` is False, see ``_Decision``); raises BadTarget for a
        target that cannot be parsed."""
        router = vrt.router
        mapped_only = False
        try:
            target = parse_target(raw_target, vrt.vhost.settings.allow_encoded_slashes)
        except EncodedSlashRefused:
            if not router.maps:
                raise
            # httpd's mapped rules see the path before it is decoded (and refused).
            target = parse_target(raw_target, EncodedSlashes.NO_DECODE)
            mapped_only = True
        locations = router.locations_for(target.path) if router.has_locations else ()
        settings = router.settings_for(locations) if locations else vrt.vhost.settings
        if settings is not vrt.vhost.settings and not mapped_only:
            # AllowEncodedSlashes may differ inside a Location
            target = parse_target(raw_target, settings.allow_encoded_slashes)
        if any(loc.env_late or loc.env_fixed for loc, _ in locations):
            # a Location's environment rules add to what is inherited (httpd's merge)
            settings = replace(
                settings,
                env_late=settings.env_late + sum((loc.env_late for loc, _ in locations), ()),
                env_fixed=settings.env_fixed + sum((loc.env_fixed for loc, _ in locations),
                                                   ()))
        decision = _Decision(target, tuple(locations), settings)
        decision.mapped_only = mapped_only
        decision.uses_env = bool(vrt.vhost.settings.env_early or settings.env_late
                                 or settings.env_fixed
                                 or (settings.interpolate_env and router.interpolates))
        self._route(vrt, decision, None)
        if not remember:
            return decision
        decisions = vrt.decisions
        if len(decisions) >= _MAX_DECISIONS:
            decisions.clear()   # many distinct targets: start over rather than track age
        decisions[raw_target] = decision
        return decision

    def _route(self, vrt: _VhostRuntime, decision: _Decision,
               env: dict[str, str] | None) -> None:
        """Fill in the decision's route, reverse mapper and worker (``env``: interpolate)."""
        locations = decision.locations
        try:
            if decision.mapped_only:
                decision.match = vrt.router.route_mapped(decision.target, locations, env)
                if decision.match is None:
                    decision.route_error = 404   # the %2F refusal the mapped rules passed on
            else:
                decision.match = vrt.router.route(decision.target, locations, env)
        except BadTarget as exc:
            decision.route_error = exc.status
        if decision.match is not None:
            mapper = vrt.mapper
            for loc, _ in locations:
                if loc.reverse or loc.cookie_domains or loc.cookie_paths:
                    mapper = vrt.location_mappers[id(loc)]
            if mapper is not None and env is not None and mapper.interpolates:
                mapper = mapper.with_env(env)
            decision.mapper = mapper
            if decision.match.balancer is None:
                decision.worker = self.workers.get(decision.match.worker)

    def _environment(self, ctx: RequestContext, vrt: _VhostRuntime,
                     decision: _Decision) -> _Decision:
        """Run the SetEnvIf* rules around routing (§4.8; httpd's post_read_request and
        header_parser; SetEnv and co. come after access control), for a host or Location
        that has any. Returns the decision to go on with: the cached one, one without a
        route (``no-proxy``), or one routed with this request's variables (``interpolate``)."""
        head = ctx.head
        front = ctx.front
        env = ctx.env if ctx.env is not None else {}
        ctx.env = env
        early = vrt.vhost.settings.env_early
        if early:
            # Before the URI is decoded, as in httpd: Request_URI is the path as sent.
            raw_path, mark, raw_query = head.target.decode("latin-1").partition("?")
            run_conditions(early, env, RequestFacts(front.peer_ip, front.local_ip,
                                                    head.method, head.version, raw_path,
                                                    head.headers, raw_query if mark else None))
        settings = decision.settings
        if "no-proxy" in env:
            # ProxyPass is skipped (§2.1.2); a Location's handler may still answer.
            decision = _Decision(decision.target, decision.locations, settings)
        elif settings.interpolate_env and vrt.router.interpolates:
            routed = _Decision(decision.target, decision.locations, settings)
            self._route(vrt, routed, env)
            decision = routed
        if settings.env_late:
            run_conditions(settings.env_late, env, RequestFacts(
                front.peer_ip, front.local_ip, head.method, head.version, decision.path,
                head.headers, decision.query))
        return decision

    def _grow_member(self, balancer: str, slot: WorkerSlot) -> Worker | None:
        """The Worker of a member the manager added at run time (default parameters)."""
        try:
            url = parse_backend_url(slot.name, self.config.runtime_dir)
        except ValueError as exc:
            log.error("member %s added to %s cannot be used: %s", slot.name, balancer, exc)
            return None
        spec = WorkerSpec(name=url.name, scheme=url.scheme, host=url.host, port=url.port,
                          path=url.path, params=WorkerParams(), unix_path=url.unix_path,
                          source=Source("balancer-manager", 0), balancer=balancer)
        if spec.scheme not in _HTTP_SCHEMES:
            log.error("member %s added to %s: scheme %s is not served", slot.name, balancer,
                      spec.scheme)
            return None
        worker = Worker(spec, self.config.main.settings, slot)
        self.workers[spec.key] = worker
        log.info("member %s added to %s by the balancer-manager is now routed to",
                 spec.name, balancer)
        return worker

    def _local(self, ctx: RequestContext, locations) -> LocalExchange | None:
        """Answer with the SetHandler of the last matching Location that sets one, or 404."""
        name = location = None
        for loc, _ in locations:
            if loc.handler is not None:
                name, location = loc.handler, loc.path
        func = lookup(name) if name is not None else None
        if func is None:
            if name is not None:
                log.error("no handler %r for %s (Location %s)", name, ctx.path, location,
                          extra={"vhost": ctx.vhost})
            ctx.front.local_error(ctx, 404)
            return None
        exchange = LocalExchange(ctx, func, location or "")
        exchange.start()
        return exchange

    def _assign_member(self, ctx: RequestContext, exclude: frozenset[int] = frozenset(),
                       answer: bool = True) -> bool:
        """Let the balancer pick a member for ``ctx`` (§7.4); False when there is none (then
        a 503 has been sent, unless ``answer`` is False and the balancer may still wait).

        Sets ``ctx.match`` to the member's target: the member URL followed by everything
        after ``balancer://name`` in the balancer URL.
        """
        balancer = ctx.balancer
        bmatch = ctx.balancer_match
        cookie = _header(ctx.head, b"cookie")
        choice = balancer.choose(bmatch.url, cookie, exclude)
        if choice.index is None and not answer and not choice.refused:
            return False
        if choice.index is None:
            why = ("the session's member is not available (nofailover)" if choice.refused
                   else "all members of the balancer are unavailable")
            log.error("%s: %s", balancer.name, why, extra={"vhost": ctx.vhost})
            ctx.front.local_error(ctx, 503, proxy_error=True, detail=why)
            return False
        member = balancer.members[choice.index]
        spec = member.spec
        path = spec.path + bmatch.path  # concatenated as written, like httpd (§7.4)
        ctx.member_index = choice.index
        ctx.member_view = balancer.view   # the index is a position in this view
        ctx.match = Match(bmatch.route, spec.key, spec.name + bmatch.path,
                          spec.host, spec.port, path or "/", balancer.name)
        env = ctx.env if ctx.env is not None else {}
        env["BALANCER_NAME"] = balancer.name
        env["BALANCER_WORKER_NAME"] = spec.name
        env["BALANCER_WORKER_ROUTE"] = spec.params.route
        sticky = choice.sticky
        if sticky is not None and sticky.route is not None:
            env["BALANCER_SESSION_STICKY"] = sticky.source
            env["BALANCER_SESSION_ROUTE"] = sticky.route
        if balancer.sticky is not None and (sticky is None or sticky.changed
                                            or sticky.index is None):
            env["BALANCER_ROUTE_CHANGED"] = "1"
        ctx.env = env
        return True

    def _wait_for_member(self, ctx: RequestContext, wait: float, settings: ProxySettings,
                         head: RequestHead) -> HttpExchange:
        """Balancer ``timeout``: look for a usable member every wait/100 s, up to ``wait``
        (§7.4); the request body meanwhile waits in the exchange (bounded as usual)."""
        exchange = HttpExchange(ctx)

        async def poll() -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            step = max(wait / 100, 0.01)
            while True:
                await asyncio.sleep(step)
                if exchange.finished:  # the client went away
                    return
                last = loop.time() >= deadline
                if self._assign_member(ctx, answer=last):
                    break
                if last:
                    exchange.abandon()
                    return
            worker = self.workers[ctx.match.worker]
            ctx.worker = worker
            self._prepare_backend(ctx, head, ctx.vhost_runtime, settings, worker,
                                  ctx.max_forwards)
            exchange.start()

        exchange.waiting = asyncio.get_running_loop().create_task(poll())
        return exchange

    def failover(self, ctx: RequestContext) -> bool | None:
        """Choose another member after a connection failure (§7.5).

        True: ``ctx`` now targets another member; False: give up (the caller answers);
        None: no member was left and the 503 has been sent.
        """
        balancer = ctx.balancer
        if balancer is None or ctx.attempts >= balancer.params.maxattempts:
            return False
        if balancer.usable(ctx.member_view, ctx.member_index):
            return False  # httpd retries only while the failed member is unusable
        ctx.attempts += 1
        if not self._assign_member(ctx):
            return None
        worker = self.workers[ctx.match.worker]
        ctx.worker = worker
        self._prepare_backend(ctx, ctx.head, ctx.vhost_runtime, ctx.settings, worker,
                              ctx.max_forwards)
        return True

    def _prepare_backend(self, ctx: RequestContext, head: RequestHead, vrt: _VhostRuntime,
                         settings: ProxySettings, worker: Worker,
                         max_forwards: bytes | None) -> None:
        match = ctx.match
        assert match is not None
        spec = worker.spec
        # Keyed by the settings scope alone: every scope belongs to one virtual host (the
        # config builds a host's settings anew, and Location scopes derive from them), so
        # the host's Timeout, the default of the backend timeouts, is fixed by it too.
        plan = worker.plans.get(id(settings))
        if plan is None or plan.settings is not settings:
            plan = worker.plans[id(settings)] = _BackendPlan(worker, settings, vrt.core)
        if settings.preserve_host:
            if ctx.host:
                host_value = ctx.host.encode("latin-1")
                ctx.sni = _host_name(ctx.host)
            else:
                # HTTP/1.0 without Host: the ServerName stands in for it (httpd warns too).
                log.warning("ProxyPreserveHost: the request has no Host, sending the "
                            "ServerName %s (client %s)", vrt.server_name, ctx.front.peer_ip,
                            extra={"vhost": ctx.vhost})
                host_value = vrt.server_name.encode("latin-1")
                ctx.sni = vrt.server_name
        elif match.host == spec.host and match.port == spec.port:
            host_value = plan.host_value
            ctx.sni = plan.sni
        else:  # a $n target: another host than the worker's own
            host_value = _host_header(spec.scheme, match.host, match.port)
            ctx.sni = None if spec.unix_path else match.host
        ctx.plan = plan
        ctx.worker = plan.worker   # the twin whose connector and pools fit this scope
        via_name = ctx.via_name = _via_name(vrt, ctx.host) if plan.via else ""
        close = ctx.close_backend = plan.close_backend
        body_kind = head.body_kind
        forward_expect = False
        add_expect = False
        env = ctx.env
        switches = None
        if env:
            switches = ctx.switches = proxy_switches(env, not ctx.front.requests_served)
            if switches is not None:
                close = ctx.close_backend = close or switches.close
        # proxy-sendcl / force-proxy-request-1.0 with a chunked body: the body is spooled
        # whole and goes with a Content-Length (HttpExchange, see _spooled_head).
        spooled = (body_kind == _CHUNKED and switches is not None and switches.send_length)
        if head.expect_continue:
            if (settings.proxy_100_continue and (switches is None or not switches.http10)
                    and not spooled):
                forward_expect = True
            else:   # a spooled body is needed before the backend hears of the request
                ctx.front.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                ctx.sent_continue = True
        if body_kind:   # BodyKind.NONE is 0
            chunked = ctx.request_chunked = body_kind == _CHUNKED
            # ping= (§4.5): on requests with a body, ask the backend for a 100 Continue first
            # and give up (503, which fails over) if none comes within `ping` seconds.
            if switches is None or not switches.http10:
                ctx.ping = plan.ping
                add_expect = bool(plan.ping) and not forward_expect
            if spooled:
                assert switches is not None
                chunked = ctx.request_chunked = False
                switches.spool_head = _spooled_head(ctx, head, host_value, vrt.server_name,
                                                    via_name, close, max_forwards, settings,
                                                    switches.http10, add_expect)
        else:
            chunked = False
        request = BackendRequest(
            head.method, match.path.encode("latin-1"), host_value, ctx.front.peer_ip,
            vrt.server_name, via_name, head.version,
            None if chunked else head.content_length, chunked, close, forward_expect,
            max_forwards, add_expect)
        backend_head = build_request_head(request, head.headers, settings)
        if switches is not None:
            if switches.http10:
                backend_head = _as_http10(backend_head)
            if switches.extra_crlf and not body_kind:
                backend_head += b"\r\n"   # with a body, the exchange sends it after the body
        ctx.backend_head = backend_head

    # -- logging --------------------------------------------------------------------------
    def log_request(self, front: FrontConnection, ctx: RequestContext) -> None:
        bytes_in = ctx.bytes_in = front.rx_pending   # %I: the reads since the last log line
        front.rx_pending = 0
        self.process.add_request(bytes_in, ctx.bytes_to_client + ctx.body_bytes)
        vrt = ctx.vhost_runtime or self._main
        if vrt.access_logs is not None:
            vrt.access_logs.log(front, ctx)

    def log_rejected(self, front: FrontConnection, status: int, size: int) -> None:
        if self._main.access_logs is not None:
            self._main.access_logs.log_rejected(front, status, size)

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()


def _as_http10(head: bytes) -> bytes:
    """The request line says HTTP/1.0 (the target holds no spaces, so the first match is it)."""
    return head.replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1)


def _spooled_head(ctx: RequestContext, head: RequestHead, host_value: bytes,
                  server_name: str, via_name: str, close: bool,
                  max_forwards: bytes | None, settings: ProxySettings, http10: bool,
                  add_expect: bool):
    """The head to send once a spooled body's length is known (with ``Expect:
    100-continue`` when ping= waits for the backend's 100 before the body goes)."""
    assert ctx.match is not None
    target = ctx.match.path.encode("latin-1")
    peer_ip = ctx.front.peer_ip

    def build(length: int) -> bytes:
        request = BackendRequest(head.method, target, host_value, peer_ip, server_name,
                                 via_name, head.version, length, False, close, False,
                                 max_forwards, add_expect)
        built = build_request_head(request, head.headers, settings)
        return _as_http10(built) if http10 else built

    return build


class _AwaitingHostName:
    """A request whose access rule needs the client's host name, not cached yet: the body is
    held (bounded as a local handler's) while the name is looked up, then the request is
    started anew with the name in the cache, and what was held is handed over."""

    __slots__ = ("events", "front", "gone", "task")

    def __init__(self, pipeline: Pipeline, front: FrontConnection, head: RequestHead,
                 start_ns: int) -> None:
        self.front = front
        self.events: list[tuple[bool, object]] = []
        self.gone = False
        self.task = asyncio.get_running_loop().create_task(
            self._resolve(pipeline, head, start_ns))

    async def _resolve(self, pipeline: Pipeline, head: RequestHead, start_ns: int) -> None:
        await pipeline.hostnames.resolve(self.front.peer_ip)
        if self.gone:
            return
        front = self.front
        try:
            handler = pipeline.begin(front, head, start_ns)
        except Exception:
            log.exception("internal error while starting a request")
            ctx = front.ctx
            if ctx is not None:
                ctx.keep_alive = False
                front.local_error(ctx, 500)
            return
        if front.handler is self:
            front.handler = handler
        if handler is None:
            return
        for is_end, value in self.events:
            if is_end:
                handler.on_request_end(value)
            else:
                handler.on_request_data(value)

    def on_request_data(self, data: bytes) -> None:
        if sum(len(v) for e, v in self.events if not e) + len(data) <= 1 << 20:  # type: ignore[arg-type]
            self.events.append((False, data))

    def on_request_end(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self.events.append((True, trailers))

    def pause_source(self) -> None:
        """The client stopped reading: nothing here reads from elsewhere meanwhile."""

    def resume_source(self) -> None:
        """The client reads again."""

    def client_gone(self) -> None:
        self.gone = True
        self.task.cancel()


def _header(head: RequestHead, name: bytes) -> str | None:
    """All values of one request header joined with "; " (Cookie merging), or None."""
    values = [v for n, v in head.headers if len(n) == len(name) and n.lower() == name]
    if not values:
        return None
    return "; ".join(v.decode("latin-1") for v in values)


def _absolute_form_host(head: RequestHead) -> bytes | None:
    """The Host an absolute-form request stands for: its target's authority (userinfo
    dropped), which replaces any Host field, as RFC 9112 §3.2.2 asks and httpd does (it
    rewrites the Host header, so X-Forwarded-Host and ProxyPreserveHost see the new value
    too). Other targets ("*") keep the Host field's value."""
    target = head.target
    start = target.find(b"://")
    if start <= 0:
        return head.host
    end = len(target)
    for mark in (b"/", b"?", b"#"):
        at = target.find(mark, start + 3)
        if 0 <= at < end:
            end = at
    authority = target[start + 3:end].rpartition(b"@")[2]
    if not authority:
        return head.host
    if authority != head.host:
        fields = [field for field in head.headers if field[0].lower() != b"host"]
        fields.insert(0, (b"Host", authority))
        head.headers = fields
        head.host = authority
    return authority


def _host_name(host: str | None) -> str | None:
    """The name part of a Host value (no port; IPv6 brackets removed)."""
    if not host:
        return None
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    return host.rsplit(":", 1)[0] if ":" in host else host


def _same_limits(a: RequestLimits, b: RequestLimits) -> bool:
    return (a.max_line, a.max_field_size, a.max_fields) == (
        b.max_line, b.max_field_size, b.max_fields)


class _BackendPlan:
    """What a request to one worker under one settings scope always gets (cached per pair)."""

    __slots__ = ("acquire_wait", "bad_header", "close_backend", "connect_timeout",
                 "host_value", "io_buffer_size", "ping", "response_field_size", "settings",
                 "sni", "timeout", "via", "worker")

    def __init__(self, worker: Worker, settings: ProxySettings, core) -> None:
        spec = worker.spec
        self.settings = settings
        self.worker = worker.for_settings(settings)   # SSLProxy* etc. of this scope
        self.host_value = _host_header(spec.scheme, spec.host, spec.port)
        self.sni = None if spec.unix_path else spec.host
        self.timeout = worker.timeout_for(settings, core)
        self.connect_timeout = worker.connect_timeout_for(settings, core)
        self.acquire_wait = worker.acquire_wait(settings, core)
        self.response_field_size = spec.params.responsefieldsize or 8192
        # iobuffersize= if the worker sets it, else ProxyIOBufferSize; at most what one
        # read buffer holds (schemes/http.py)
        io_size = (spec.params.iobuffersize if "iobuffersize" in spec.params.explicit
                   else settings.iobuffersize)
        self.io_buffer_size = min(io_size, 256 * 1024)
        self.bad_header = settings.bad_header.value
        self.via = settings.via.value in ("on", "full")
        self.close_backend = not spec.params.enablereuse
        self.ping = spec.params.ping or 0.0


def _host_header(scheme: str, host: str, port: int) -> bytes:
    """Host for the backend: the URL's host, with the port unless it is the default (§4.1)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    default = _DEFAULT_PORTS.get(scheme)
    return (host if port == default or port == 80 else f"{host}:{port}").encode("latin-1")


def _via_name(vrt: _VhostRuntime, host: str) -> str:
    """ServerName plus the port the client addressed, when it is not the default (§4.3)."""
    if host and not host.endswith("]") and ":" in host:
        port = host.rsplit(":", 1)[1]
        if port and port != "80":
            return f"{vrt.server_name}:{port}"
    return vrt.server_name


def _server_authority(vrt: _VhostRuntime, front: FrontConnection) -> str:
    port = front.local_port
    default = 443 if front.scheme == "https" else 80
    return vrt.server_name if port == default else f"{vrt.server_name}:{port}"
