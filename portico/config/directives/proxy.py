"""mod_proxy directives: URL mapping, reverse mapping, workers and the proxy switches."""

from __future__ import annotations

__all__ = ["TABLE"]

import ipaddress
import logging
import re

from portico.config.build import BuildContext, ProxyScope
from portico.config.directives.balancer import balancer_params, route_to_balancer
from portico.config.directives.common import flag, integer, key_value_pairs
from portico.config.model import BadHeader, ProxyVia, ReverseRule, Route, RouteKind
from portico.config.registry import Context, DirectiveTable
from portico.config.tree import Node
from portico.config.urls import BackendURL, is_balancer_url, parse_backend_url

_log = logging.getLogger("portico.config")

TABLE = DirectiveTable("proxy")

SV = Context.SERVER | Context.VHOST
SVL = SV | Context.LOCATION

_KEYWORDS = ("nocanon", "noquery", "interpolate")
_PLACEHOLDER = re.compile(r"(?<!\\)\$\d")
_WILDCARD = re.compile(r"[*?\[\]]")


def _backend(ctx: BuildContext, url: str, placeholders: bool = False) -> BackendURL:
    """A plain backend URL (callers send balancer:// URLs to directives/balancer.py)."""
    try:
        return parse_backend_url(url, ctx.state.socket_dir, placeholders)
    except ValueError as exc:
        raise ctx.error(str(exc)) from None


def _compile(ctx: BuildContext, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ctx.error(f"bad regular expression {pattern!r}: {exc}") from None


# -- ProxyPass / ProxyPassMatch ------------------------------------------------------------------

@TABLE.directive("ProxyPass", SVL, args=(1, None))
def _proxy_pass(ctx: BuildContext, node: Node) -> None:
    _add_pass(ctx, node, regex=False)


@TABLE.directive("ProxyPassMatch", SVL, args=(1, None))
def _proxy_pass_match(ctx: BuildContext, node: Node) -> None:
    _add_pass(ctx, node, regex=True)


def _add_pass(ctx: BuildContext, node: Node, regex: bool) -> None:
    words = list(node.args)
    location = ctx.location
    if location is None:
        if words[0] == "~":
            regex = True
            words.pop(0)
        if len(words) < 2:
            raise ctx.error("needs a path and a URL (or !)")
        path, target, rest = words[0], words[1], words[2:]
        pattern = _compile(ctx, path) if regex else None
    else:
        target, rest = words[0], words[1:]
        if target == "~" or (rest and target.startswith("/") and "=" not in rest[0]
                             and rest[0].lower() not in _KEYWORDS):
            raise ctx.error("can not have a path when defined in a location")
        path = location.path
        if location.pattern is not None:
            regex, pattern = True, location.pattern
        else:
            pattern = _compile(ctx, path) if regex else None
    route_flags: dict[str, bool] = {}
    mapping = ""
    worker_pairs: list[tuple[str, str]] = []
    for word in rest:
        if word.lower() in _KEYWORDS:
            route_flags[word.lower()] = True
        elif "=" in word:
            key, value = key_value_pairs(ctx, (word,))[0]
            if key.lower() == "mapping":
                if value.lower() not in ("encoded", "servlet"):
                    raise ctx.error(f"mapping={value}: must be encoded or servlet")
                mapping = value.lower()
            else:
                worker_pairs.append((key, value))
        else:
            raise ctx.error(f"parameter {word!r} is neither key=value nor one of "
                            f"{', '.join(_KEYWORDS)}")
    kind = RouteKind.REGEX if regex else RouteKind.PREFIX
    worker_name = None
    if target == "!":
        if worker_pairs:
            _log.warning("%s: %s: worker parameters on an exclusion (!) are ignored",
                         ctx.source, ctx.directive)
        route_target = None
    elif is_balancer_url(target):
        worker_name = route_to_balancer(ctx, target, worker_pairs, path)
        route_target = target
    else:
        placeholders = ((regex and bool(_PLACEHOLDER.search(target)))
                        or (route_flags.get("interpolate", False)
                            and _variable_in_authority(target)))
        url = _backend(ctx, target, placeholders)
        worker = ctx.state.workers.for_pass(url, worker_pairs, ctx.source, placeholders)
        worker_name = worker.name
        route_target = target
    route = Route(kind, path, route_target, ctx.source, pattern=pattern, worker=worker_name,
                  nocanon=route_flags.get("nocanon", False),
                  noquery=route_flags.get("noquery", False),
                  interpolate=route_flags.get("interpolate", False), mapping=mapping)
    if location is not None:
        if location.proxy_pass is not None:
            raise ctx.error(f"a <Location> holds only one ProxyPass (the first is at "
                            f"{location.proxy_pass.source})")
        location.proxy_pass = route
    else:
        ctx.server.routes.append(route)


def _variable_in_authority(url: str) -> bool:
    """Whether an ``interpolate`` URL has a ``${VAR}`` in its host or port: its worker then
    connects wherever each request's URL says, as a ProxyPassMatch ``$n`` worker does."""
    nominal = url.split("|", 1)[1] if url[:5].lower() == "unix:" and "|" in url else url
    authority = nominal.partition("://")[2].partition("/")[0]
    return "${" in authority


# -- reverse mapping ----------------------------------------------------------------------------

def _interpolate_flag(ctx: BuildContext, words: list[str]) -> bool:
    if words and words[-1].lower() == "interpolate":
        words.pop()
        return True
    return False


def _rules(ctx: BuildContext, attribute: str) -> list[ReverseRule]:
    location = ctx.location
    holder = location if location is not None else ctx.server
    return getattr(holder, attribute)


@TABLE.directive("ProxyPassReverse", SVL, args=(1, 3))
def _proxy_pass_reverse(ctx: BuildContext, node: Node) -> None:
    words = list(node.args)
    interpolate = _interpolate_flag(ctx, words)
    location = ctx.location
    if location is not None:
        if len(words) != 1:
            raise ctx.error("can not have a path when defined in a location")
        fake, real = location.path, words[0]
    else:
        if len(words) != 2:
            raise ctx.error("needs a path and a URL")
        fake, real = words
    _rules(ctx, "reverse").append(ReverseRule(fake, real, ctx.source, interpolate))


def _cookie_rule(ctx: BuildContext, node: Node, attribute: str) -> None:
    words = list(node.args)
    interpolate = _interpolate_flag(ctx, words)
    if len(words) != 2:
        raise ctx.error("needs an internal and a public value")
    internal, public = words
    _rules(ctx, attribute).append(ReverseRule(public, internal, ctx.source, interpolate))


@TABLE.directive("ProxyPassReverseCookieDomain", SVL, args=(2, 3))
def _cookie_domain(ctx: BuildContext, node: Node) -> None:
    _cookie_rule(ctx, node, "cookie_domains")


@TABLE.directive("ProxyPassReverseCookiePath", SVL, args=(2, 3))
def _cookie_path(ctx: BuildContext, node: Node) -> None:
    _cookie_rule(ctx, node, "cookie_paths")


@TABLE.directive("ProxyPassInherit", SV)
def _proxy_pass_inherit(ctx: BuildContext, node: Node) -> None:
    ctx.server.proxy_pass_inherit = flag(ctx, node.args[0])


# -- switches (ProxySettings) -------------------------------------------------------------------

def _flag_setting(name: str, field: str, contexts: Context) -> None:
    @TABLE.directive(name, contexts)
    def handler(ctx: BuildContext, node: Node) -> None:
        ctx.set_setting(field, flag(ctx, node.args[0]))


_flag_setting("ProxyPreserveHost", "preserve_host", SVL)
_flag_setting("ProxyAddHeaders", "add_headers", SVL)
_flag_setting("Proxy100Continue", "proxy_100_continue", SVL)
_flag_setting("ProxyPassInterpolateEnv", "interpolate_env", SVL)


@TABLE.directive("ProxyRequests", SV)
def _proxy_requests(ctx: BuildContext, node: Node) -> None:
    enabled = flag(ctx, node.args[0])
    if enabled:
        # Said at load, so nobody counts on a forward proxy that is not there.
        _log.warning("%s: ProxyRequests On: portico does not forward-proxy (absolute-form "
                     "requests for other hosts are routed like any other request)",
                     ctx.source)
    ctx.set_setting("proxy_requests", enabled)


@TABLE.directive("ProxyErrorOverride", SVL, args=(1, None))
def _error_override(ctx: BuildContext, node: Node) -> None:
    enabled = flag(ctx, node.args[0])
    codes = frozenset(integer(ctx, word, 400, 599) for word in node.args[1:])
    if codes and not enabled:
        raise ctx.error("status codes are only meaningful with On")
    ctx.set_setting("error_override", enabled)
    ctx.set_setting("error_override_codes", codes)


def _enum_setting(ctx: BuildContext, field: str, word: str, enum_type: type) -> None:
    values = {member.value: member for member in enum_type}
    member = values.get(word.lower())
    if member is None:
        names = ", ".join(value.capitalize() for value in values)
        raise ctx.error(f"expects one of {names}, got {word!r}")
    ctx.set_setting(field, member)


@TABLE.directive("ProxyVia", SV)
def _proxy_via(ctx: BuildContext, node: Node) -> None:
    _enum_setting(ctx, "via", node.args[0], ProxyVia)


@TABLE.directive("ProxyBadHeader", SV)
def _proxy_bad_header(ctx: BuildContext, node: Node) -> None:
    _enum_setting(ctx, "bad_header", node.args[0], BadHeader)


@TABLE.directive("ProxyTimeout", SV)
def _proxy_timeout(ctx: BuildContext, node: Node) -> None:
    ctx.set_setting("timeout", float(integer(ctx, node.args[0], 1)))


def _buffer_size(ctx: BuildContext, word: str) -> int:
    value = integer(ctx, word, 0)
    if 0 < value < 512:
        raise ctx.error("must be at least 512 bytes, or 0 for the default")
    return value


@TABLE.directive("ProxyIOBufferSize", SV)
def _io_buffer_size(ctx: BuildContext, node: Node) -> None:
    ctx.set_setting("iobuffersize", _buffer_size(ctx, node.args[0]) or 8192)


@TABLE.directive("ProxyReceiveBufferSize", SV)
def _receive_buffer_size(ctx: BuildContext, node: Node) -> None:
    ctx.set_setting("receivebuffersize", _buffer_size(ctx, node.args[0]))


@TABLE.directive("ProxyMaxForwards", SV)
def _max_forwards(ctx: BuildContext, node: Node) -> None:
    ctx.set_setting("max_forwards", integer(ctx, node.args[0]))


@TABLE.directive("ProxySourceAddress", SV)
def _source_address(ctx: BuildContext, node: Node) -> None:
    try:
        address = str(ipaddress.ip_address(node.args[0]))
    except ValueError:
        raise ctx.error(f"{node.args[0]!r} is not an IP address") from None
    ctx.set_setting("source_address", address)


# -- workers: ProxySet, <Proxy>, <ProxyMatch> ---------------------------------------------------

@TABLE.directive("ProxySet", SVL | Context.PROXY, args=(1, None))
def _proxy_set(ctx: BuildContext, node: Node) -> None:
    scope = ctx.scope
    if isinstance(scope, ProxyScope):
        if "=" not in node.args[0]:
            raise ctx.error("inside <Proxy> the URL comes from the section; give only "
                            "key=value parameters")
        if scope.regex or scope.wildcard:
            raise ctx.error("inside <ProxyMatch> or a wildcard <Proxy> is not supported yet")
        url_text, words = scope.url, node.args
    else:
        if len(node.args) < 2:
            raise ctx.error("needs a URL and at least one key=value parameter")
        url_text, words = node.args[0], node.args[1:]
    pairs = key_value_pairs(ctx, words)
    if is_balancer_url(url_text):
        balancer_params(ctx, url_text, pairs, create=isinstance(scope, ProxyScope))
        return
    ctx.state.workers.set_params(_backend(ctx, url_text), pairs, ctx.source)


@TABLE.section("Proxy", SV, args=(1, None))
def _proxy_section(ctx: BuildContext, node: Node) -> None:
    url = node.args[0]
    wildcard = bool(_WILDCARD.search(url))
    if len(node.args) > 1:
        if wildcard:
            raise ctx.error("worker parameters need a URL without wildcards")
        pairs = key_value_pairs(ctx, node.args[1:])
        if is_balancer_url(url):
            balancer_params(ctx, url, pairs, create=True)
        else:
            ctx.state.workers.set_params(_backend(ctx, url), pairs, ctx.source)
    scope = ProxyScope(url, ctx.source, ctx.server, regex=False, wildcard=wildcard)
    ctx.walk(node.children or (), scope)


@TABLE.section("ProxyMatch", SV)
def _proxy_match_section(ctx: BuildContext, node: Node) -> None:
    _compile(ctx, node.args[0])
    scope = ProxyScope(node.args[0], ctx.source, ctx.server, regex=True, wildcard=False)
    ctx.walk(node.children or (), scope)
