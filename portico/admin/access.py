"""Compiled access rules: ``Require`` and ``<RequireAll|Any|None>`` (mod_authz_core, §19).

The config loader compiles a Location's Require lines once into an ``AccessRule``; the
pipeline asks ``rule.decide(client_ip, local_ip, ...)`` for each request under it. This module
imports nothing from portico but the expression compiler (``Require expr``), so
``portico.config`` may build rules without depending on the rest of ``admin``.

How it works (httpd's three-valued logic)
-----------------------------------------
Every check answers GRANTED, DENIED or NEUTRAL. ``Require not X`` turns GRANTED into DENIED
and DENIED into NEUTRAL: a negation can refuse but never grant. A section combines its
children in order, skipping NEUTRAL ones:

* any (``<RequireAny>``, and several Require lines directly in a Location): the first
  GRANTED wins; otherwise the first non-neutral answer stands.
* all (``<RequireAll>``): the first DENIED wins; otherwise the first non-neutral answer.
* none (``<RequireNone>``): "any", negated as above, so it can only refuse.

``Require valid-user`` and ``Require user a b`` look at the authenticated user. Without one
they answer DENIED_NO_USER ("a user might change this"), which sections carry up as httpd
does: in an "all" a plain DENIED beats it, in an "any" it beats a plain DENIED. ``decide``
evaluates without a user first; only a DENIED_NO_USER answer makes the caller authenticate
and ask again with the user (``allows(..., user=name)``). That is httpd 2.4's lazy
authentication: ``<RequireAny>`` with ``Require ip`` and ``Require valid-user`` lets a listed
address in without credentials, and ``<RequireAll>`` whose ``Require ip`` already failed
refuses (403) without asking for any.

The request is allowed only when the outermost answer is GRANTED (NEUTRAL refuses, as it
does in httpd when nobody granted). ``check_section`` enforces httpd's load-time rules: a
negative child inside an "any" has no effect and is an error, and so is an "all" section
made only of negative children.
"""

from __future__ import annotations

__all__ = [
    "AccessError", "AccessRule", "Check", "Result", "Section", "check_section",
    "compile_require", "parse_ip_rule",
]

import enum
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from portico.expr import ExprError, compile_expr

_NO_ENV: Mapping[str, str] = MappingProxyType({})

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class AccessError(ValueError):
    """A Require line or section that cannot be compiled (the loader adds file:line)."""


class Result(enum.Enum):
    GRANTED = "granted"
    DENIED = "denied"
    NEUTRAL = "neutral"
    DENIED_NO_USER = "denied-no-user"   # a user check with nobody authenticated yet


@dataclass(frozen=True, slots=True)
class Peer:
    """The addresses of one request, parsed once for every check of a rule."""

    client: IPAddress | None
    local: IPAddress | None
    user: str | None = None
    hostname: str | None = None   # double-reverse-verified client name, for Require host
    method: str = ""              # Require method
    env: Mapping[str, str] = field(default_factory=lambda: _NO_ENV)  # for Require env
    # the request as an expression context (built only if a Require expr asks)
    context: Callable[[], Any] | None = None


@dataclass(frozen=True, slots=True)
class Check:
    """One ``Require [not] provider args…`` line.

    ``kind`` is ``all`` (``granted`` says which), ``ip`` (``networks``), ``local``,
    ``valid-user`` or ``user`` (``users``).
    """

    kind: str
    negate: bool = False
    granted: bool = False
    networks: tuple[IPNetwork, ...] = ()
    text: str = ""
    users: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()     # Require host: names or domains, lowercased
    names: tuple[str, ...] = ()     # Require env: variables; Require method: methods
    expr: Any = None                # Require expr: the compiled expression

    def evaluate(self, peer: Peer) -> Result:
        if self.kind in ("valid-user", "user") and peer.user is None:
            return Result.DENIED_NO_USER   # negated or not: only a user can settle it
        if self.kind == "all":
            hit = self.granted
        elif self.kind == "valid-user":
            hit = True   # a user is authenticated (checked above)
        elif self.kind == "user":
            hit = peer.user in self.users
        elif self.kind == "host":
            name = peer.hostname
            hit = name is not None and any(
                name == host or name.endswith("." + host.lstrip(".")) for host in self.hosts)
        elif self.kind == "env":
            hit = any(name in peer.env for name in self.names)
        elif self.kind == "method":
            hit = peer.method in self.names
        elif self.kind == "expr":
            hit = peer.context is not None and self.expr.evaluate(peer.context())
        elif self.kind == "local":
            hit = peer.client is not None and (
                _in(peer.client, _LOOPBACK) or peer.client == peer.local)
        else:
            hit = peer.client is not None and _in(peer.client, self.networks)
        # A provider that does not match denies (mod_authz_host), so `not` makes it neutral.
        result = Result.GRANTED if hit else Result.DENIED
        return _negate(result) if self.negate else result

    @property
    def negative(self) -> bool:
        return self.negate

    @property
    def needs_user(self) -> bool:
        return self.kind in ("valid-user", "user")

    @property
    def needs_host(self) -> bool:
        return self.kind == "host"


@dataclass(frozen=True, slots=True)
class Section:
    """``<RequireAll>`` (op ``all``), ``<RequireAny>`` (``any``) or ``<RequireNone>``
    (``any`` with ``negate``); also the implicit "any" around a Location's Require lines."""

    op: str
    children: tuple[Check | Section, ...]
    negate: bool = False
    name: str = "RequireAny"

    def evaluate(self, peer: Peer) -> Result:
        result = Result.NEUTRAL
        for child in self.children:
            answer = child.evaluate(peer)
            if answer is Result.NEUTRAL:
                continue
            no_user = answer is Result.DENIED_NO_USER
            if self.op == "all":
                if answer is Result.DENIED:
                    result = answer
                    break
                if result is Result.NEUTRAL or (no_user and result is not Result.DENIED):
                    result = answer
            else:
                if answer is Result.GRANTED:
                    result = answer
                    break
                if result is Result.NEUTRAL or (no_user and result is Result.DENIED):
                    result = answer
        return _negate(result) if self.negate else result

    @property
    def negative(self) -> bool:
        return self.negate

    @property
    def needs_user(self) -> bool:
        return any(child.needs_user for child in self.children)

    @property
    def needs_host(self) -> bool:
        return any(child.needs_host for child in self.children)


@dataclass(frozen=True, slots=True)
class AccessRule:
    """A compiled rule: the implicit "any" section of one Location, and where it was written.

    Promise: ``allows`` never raises for any client address string (an address that does not
    parse, e.g. a unix-socket peer, matches no ``ip`` check and is not ``local``).
    """

    root: Section
    source: str = ""
    #: True if some check looks at the client's host name (a DNS lookup is needed).
    #: Worked out once here: the pipeline reads it for every request under the rule.
    needs_host: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "needs_host", self.root.needs_host)

    def allows(self, client_ip: str, local_ip: str = "", user: str | None = None,
               hostname: str | None = None, **request: Any) -> bool:
        """True if the rule grants this request; ``user`` is the authenticated user name
        (None: nobody authenticated, so user checks deny); ``hostname`` the client's verified
        name (None: unknown, so host checks deny); ``request`` as for ``decide``."""
        return self.decide(client_ip, local_ip, user, hostname, **request) is Result.GRANTED

    @property
    def needs_user(self) -> bool:
        """True if some check looks at the user (the rule may ever ask for credentials)."""
        return self.root.needs_user

    def decide(self, client_ip: str, local_ip: str = "", user: str | None = None,
               hostname: str | None = None, method: str = "",
               env: Mapping[str, str] | None = None,
               context: Callable[[], Any] | None = None) -> Result:
        """The rule's answer: GRANTED allows; DENIED_NO_USER (only when ``user`` is None)
        means authenticating could change it; anything else refuses. ``method``, ``env`` and
        ``context`` (a maker of the request's expression context) serve Require method, env
        and expr; absent, those checks deny."""
        return self.root.evaluate(
            Peer(_address(client_ip), _address(local_ip), user, hostname, method,
                 env if env is not None else _NO_ENV, context))

    def extended(self, child: Check | Section) -> AccessRule:
        """This rule with one more Require line or section in its implicit "any"."""
        root = Section("any", (*self.root.children, child), name=self.root.name)
        check_section(root)
        return AccessRule(root, self.source)


def compile_require(words: list[str] | tuple[str, ...]) -> Check:
    """A ``Require`` line's words (after the directive name) → a Check.

    AccessError for a provider portico does not implement or a bad argument; the message says
    what to use instead.
    """
    args = list(words)
    negate = bool(args) and args[0].lower() == "not"
    if negate:
        args = args[1:]
    if not args:
        raise AccessError("needs a provider (all, ip, local, …)")
    provider, rest = args[0].lower(), args[1:]
    text = " ".join(words)
    if provider == "all":
        if len(rest) != 1 or rest[0].lower() not in ("granted", "denied"):
            raise AccessError("'Require all' takes 'granted' or 'denied'")
        return Check("all", negate, rest[0].lower() == "granted", text=text)
    if provider == "ip":
        if not rest:
            raise AccessError("'Require ip' needs at least one address or network")
        return Check("ip", negate, networks=tuple(parse_ip_rule(w) for w in rest), text=text)
    if provider == "local":
        if rest:
            raise AccessError("'Require local' takes no arguments")
        return Check("local", negate, text=text)
    if provider == "valid-user":
        if rest:
            raise AccessError("'Require valid-user' takes no arguments")
        return Check("valid-user", negate, text=text)
    if provider == "user":
        if not rest:
            raise AccessError("'Require user' needs at least one user name")
        return Check("user", negate, users=tuple(rest), text=text)
    if provider == "host":
        if not rest:
            raise AccessError("'Require host' needs at least one host or domain name")
        return Check("host", negate, hosts=tuple(w.lower().rstrip(".") for w in rest),
                     text=text)
    if provider == "env":
        if not rest:
            raise AccessError("'Require env' needs at least one variable name")
        return Check("env", negate, names=tuple(rest), text=text)
    if provider == "method":
        if not rest:
            raise AccessError("'Require method' needs at least one method")
        return Check("method", negate, names=tuple(w.upper() for w in rest), text=text)
    if provider == "expr":
        if not rest:
            raise AccessError("'Require expr' needs an expression")
        try:
            expr = compile_expr(" ".join(rest))
        except ExprError as exc:
            raise AccessError(f"'Require expr': {exc.message}") from None
        return Check("expr", negate, expr=expr, text=text)
    if provider == "forward-dns":
        raise AccessError("'Require forward-dns' is not supported (use 'Require host' or "
                          "'Require ip')")
    if provider in ("group", "file-owner", "file-group"):
        raise AccessError(f"'Require {provider}' is not supported (supported: all, ip, "
                          "local, host, user, valid-user, env, method, expr)")
    raise AccessError(f"unknown authorization provider {args[0]!r} (supported: all, ip, "
                      "local, host, user, valid-user, env, method, expr)")


def parse_ip_rule(word: str) -> IPNetwork:
    """One ``Require ip`` argument → a network, as mod_authz_host reads it.

    Accepts an address (``10.1.2.3``, ``2001:db8::1``), CIDR (``10.0.0.0/8``), an address
    with a dotted netmask (``10.0.0.0/255.0.0.0``) and a partial IPv4 address (``10.1`` is
    10.1.0.0/16). Host bits after the mask are ignored, as httpd masks them off.
    AccessError otherwise.
    """
    try:
        if "/" in word:
            return ipaddress.ip_network(word, strict=False)
        if ":" in word:
            return ipaddress.ip_network(word)
        octets = word.rstrip(".").split(".")
        if not 1 <= len(octets) <= 4 or not all(o.isdigit() and int(o) <= 255
                                               for o in octets):
            raise ValueError(word)
        if len(octets) == 4:
            return ipaddress.ip_network(word)
        padded = ".".join(octets + ["0"] * (4 - len(octets)))
        return ipaddress.ip_network(f"{padded}/{8 * len(octets)}")
    except ValueError:
        raise AccessError(f"ip address {word!r} appears to be invalid") from None


def check_section(section: Section) -> None:
    """httpd's load-time checks of one section (AccessError on failure): a negative child
    in an "any" has no effect; an "all" needs at least one positive child."""
    if section.op == "any" and not section.negate:
        for child in section.children:
            if child.negative:
                what = "<RequireNone>" if isinstance(child, Section) else "negative Require"
                raise AccessError(f"{what} directive has no effect in <{section.name}> "
                                  "directive")
    if section.op == "all" and section.children and all(
            child.negative for child in section.children):
        raise AccessError(f"<{section.name}> directive contains only negative "
                          "authorization directives")


def _negate(result: Result) -> Result:
    if result is Result.GRANTED:
        return Result.DENIED
    if result is Result.DENIED:
        return Result.NEUTRAL
    return result


def _address(text: str) -> IPAddress | None:
    if not text:
        return None
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped   # a v4 client on a dual-stack socket matches v4 rules
    return addr


def _in(addr: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(addr.version == net.version and addr in net for net in networks)
