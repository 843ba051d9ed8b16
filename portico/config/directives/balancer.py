"""mod_proxy_balancer directives (BalancerMember, BalancerGrowth, BalancerInherit,
BalancerPersist) and the balancer side of ProxyPass / ProxySet / <Proxy balancer://…> (§7).

proxy.py hands every ``balancer://`` URL to the helpers here, so the rules for naming,
creating and parametrising a balancer live in one module.
"""

from __future__ import annotations

__all__ = ["TABLE", "balancer_params", "name_of", "route_to_balancer"]

from collections.abc import Sequence

from portico.config.build import BuildContext, ProxyScope
from portico.config.directives.common import flag, integer, key_value_pairs
from portico.config.model import Source
from portico.config.registry import Context, DirectiveTable
from portico.config.tree import Node
from portico.config.urls import balancer_name, is_balancer_url, parse_backend_url

TABLE = DirectiveTable("balancer")

SV = Context.SERVER | Context.VHOST


def name_of(ctx: BuildContext, url: str) -> str:
    """``balancer://Name/path`` → ``balancer://name``, or a located ConfigError."""
    try:
        return balancer_name(url)
    except ValueError as exc:
        raise ctx.error(str(exc)) from None


def _naming_source(ctx: BuildContext) -> Source:
    # Inside <Proxy balancer://x> the section is where the balancer is written down.
    return ctx.scope.source if isinstance(ctx.scope, ProxyScope) else ctx.source


def route_to_balancer(ctx: BuildContext, url: str, pairs: Sequence[tuple[str, str]],
                      frontend: str) -> str:
    """ProxyPass/ProxyPassMatch to ``url``: create the balancer if new, apply the balancer
    parameters given on the directive, record ``frontend`` (the local path); its name."""
    name = name_of(ctx, url)
    table = ctx.state.balancers
    table.name(name, ctx.server.source, ctx.source)
    if pairs:
        table.set_params(name, pairs, ctx.source)
    table.add_frontend(name, frontend)
    return name


def balancer_params(ctx: BuildContext, url: str, pairs: Sequence[tuple[str, str]],
                    create: bool) -> None:
    """ProxySet (or <Proxy balancer://x k=v>) on a balancer URL.

    ``create`` is true inside a <Proxy> section; outside one, httpd requires the balancer to
    exist already ("ProxySet can not find ... Balancer") and so does portico.
    """
    name = name_of(ctx, url)
    table = ctx.state.balancers
    if not create and not table.exists(name):
        raise ctx.error(f"can not find balancer '{name}' (define it first, with "
                        "<Proxy balancer://…>, BalancerMember or ProxyPass)")
    table.name(name, ctx.server.source, _naming_source(ctx))
    table.set_params(name, pairs, ctx.source)


def _section_balancer(ctx: BuildContext, scope: ProxyScope) -> str:
    if scope.regex or scope.wildcard or not is_balancer_url(scope.url):
        kind = "<ProxyMatch>" if scope.regex else f"<Proxy {scope.url}>"
        raise ctx.error(f"BalancerMember belongs in <Proxy balancer://name>, not in {kind}")
    return name_of(ctx, scope.url)


@TABLE.directive("BalancerMember", SV | Context.PROXY, args=(1, None))
def _balancer_member(ctx: BuildContext, node: Node) -> None:
    words = list(node.args)
    scope = ctx.scope
    if isinstance(scope, ProxyScope):
        if is_balancer_url(words[0]):
            raise ctx.error("can not have a balancer name when defined in a <Proxy> section")
        name = _section_balancer(ctx, scope)
    else:
        if not is_balancer_url(words[0]):
            raise ctx.error("outside <Proxy balancer://…> the first argument must be the "
                            "balancer URL")
        if len(words) < 2:
            raise ctx.error("needs the member's URL after the balancer URL")
        name = name_of(ctx, words.pop(0))
    url_text, pairs = words[0], key_value_pairs(ctx, tuple(words[1:]))
    if is_balancer_url(url_text):
        raise ctx.error("a balancer member must be a backend URL, not a balancer")
    try:
        url = parse_backend_url(url_text, ctx.state.socket_dir)
    except ValueError as exc:
        raise ctx.error(str(exc)) from None
    table = ctx.state.balancers
    table.name(name, ctx.server.source, _naming_source(ctx))
    worker = ctx.state.workers.for_member(name, url, pairs, ctx.source)
    table.add_member(name, worker.name, ctx.server.source, ctx.source)


@TABLE.directive("BalancerGrowth", SV)
def _balancer_growth(ctx: BuildContext, node: Node) -> None:
    ctx.server.balancer.growth = integer(ctx, node.args[0], 0, 1000)


@TABLE.directive("BalancerInherit", SV)
def _balancer_inherit(ctx: BuildContext, node: Node) -> None:
    ctx.server.balancer.inherit = flag(ctx, node.args[0])


@TABLE.directive("BalancerPersist", SV)
def _balancer_persist(ctx: BuildContext, node: Node) -> None:
    ctx.server.balancer.persist = flag(ctx, node.args[0])
