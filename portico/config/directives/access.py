"""Access control directives (mod_authz_core / mod_authz_host, §19).

``Require`` lines and ``<RequireAll>``/``<RequireAny>``/``<RequireNone>`` sections inside a
``<Location>`` compile into one ``portico.admin.access.AccessRule`` per Location, stored as
the Location's ``access`` setting: it replaces the rule inherited from an earlier matching
Location (httpd's default ``AuthMerging Off``). Several Require lines and sections directly
in a Location combine like ``<RequireAny>``. httpd's load-time checks are kept (a negative
Require in an "any" has no effect and is an error, and so on), with the file:line of the line.

Basic authentication (mod_auth_basic + mod_authn_file): ``AuthType Basic|None``,
``AuthName realm``, ``AuthBasicProvider file`` and ``AuthUserFile path`` set the Location (or
server / virtual host) settings ``auth_type``, ``auth_name`` and ``auth_user_file``; they are
used only when a ``Require user|valid-user`` needs a user. The user file is read at load (a
missing file is a config error here) and again whenever it changes.

Outside a Location only ``Require all granted`` is accepted (it changes nothing for a proxy
that allows everything); ``<Proxy>`` rules, ``Require host``, group files and the
mod_access_compat directives are refused with a message that says so.
"""

from __future__ import annotations

__all__ = ["TABLE"]

from portico.admin.access import (
    AccessError,
    AccessRule,
    Check,
    Section,
    check_section,
    compile_require,
)
from portico.admin.htpasswd import HtpasswdError, HtpasswdFile
from portico.config.build import BuildContext, LocationScope
from portico.config.registry import ALL_CONTEXTS, Context, DirectiveTable
from portico.config.tree import Node
from portico.errors import ConfigError

TABLE = DirectiveTable("access")

_ONLY_IN_LOCATION = ("access control is not supported yet outside <Location> and "
                     "<LocationMatch> (only 'Require all granted' is accepted elsewhere); "
                     "put the rule inside a <Location>")

_SECTIONS = {"requireall": ("all", False, "RequireAll"),
             "requireany": ("any", False, "RequireAny"),
             "requirenone": ("any", True, "RequireNone")}


@TABLE.directive("Require", ALL_CONTEXTS, args=(1, None))
def _require(ctx: BuildContext, node: Node) -> None:
    location = ctx.location
    if location is None:
        if [word.lower() for word in node.args] == ["all", "granted"]:
            return
        raise ctx.error(_ONLY_IN_LOCATION)
    try:
        check = compile_require(node.args)
    except AccessError as exc:
        raise ctx.error(str(exc)) from None
    _add(ctx, location, check)


def _section(ctx: BuildContext, node: Node) -> None:
    location = ctx.location
    if location is None:
        raise ctx.error(_ONLY_IN_LOCATION)
    _add(ctx, location, _compile_section(node))


for _name in ("RequireAll", "RequireAny", "RequireNone"):
    TABLE.section(_name, ALL_CONTEXTS, args=(0, 0))(_section)


def _add(ctx: BuildContext, location: LocationScope, child: Check | Section) -> None:
    """Put ``child`` into the Location's implicit "any" (creating the rule on first use)."""
    current = location.overrides.get("access")
    try:
        if isinstance(current, AccessRule):
            rule = current.extended(child)
        else:
            root = Section("any", (child,))
            check_section(root)
            rule = AccessRule(root, str(ctx.source))
    except AccessError as exc:
        raise ctx.error(str(exc)) from None
    ctx.set_setting("access", rule)


def _compile_section(node: Node) -> Section:
    """A <Require…> section and everything nested in it; ConfigError names the bad line."""
    op, negate, name = _SECTIONS[node.name.lower()]
    children: list[Check | Section] = []
    for child in node.children or ():
        key = child.name.lower()
        if child.is_section and key in _SECTIONS:
            children.append(_compile_section(child))
        elif not child.is_section and key == "require":
            try:
                children.append(compile_require(child.args))
            except AccessError as exc:
                raise ConfigError(str(exc), child.file, child.line, child.name) from None
        else:
            shown = f"<{child.name}>" if child.is_section else child.name
            raise ConfigError(f"only Require lines and <Require…> sections may appear in "
                              f"<{name}>", child.file, child.line, shown)
    if not children:
        raise ConfigError(f"<{name}> contains no authorization directives", node.file,
                          node.line, f"<{node.name}>")
    section = Section(op, tuple(children), negate, name)
    try:
        check_section(section)
    except AccessError as exc:
        raise ConfigError(str(exc), node.file, node.line, f"<{node.name}>") from None
    return section


def _refuse_compat(ctx: BuildContext, node: Node) -> None:
    raise ctx.error(f"access control with {node.name} (mod_access_compat) is not "
                    "supported; use Require inside a <Location>")


for _name in ("Order", "Allow", "Deny", "Satisfy"):
    TABLE.directive(_name, ALL_CONTEXTS, args=(0, None))(_refuse_compat)


@TABLE.directive("AuthType", ALL_CONTEXTS, args=(1, 1))
def _auth_type(ctx: BuildContext, node: Node) -> None:
    kind = node.args[0].lower()
    if kind not in ("basic", "none"):
        raise ctx.error(f"AuthType {node.args[0]} is not supported (supported: Basic, None)")
    ctx.set_setting("auth_type", None if kind == "none" else kind)


@TABLE.directive("AuthName", ALL_CONTEXTS, args=(1, 1))
def _auth_name(ctx: BuildContext, node: Node) -> None:
    ctx.set_setting("auth_name", node.args[0])


@TABLE.directive("AuthBasicProvider", ALL_CONTEXTS, args=(1, None))
def _auth_basic_provider(ctx: BuildContext, node: Node) -> None:
    unknown = [word for word in node.args if word.lower() != "file"]
    if unknown:
        raise ctx.error(f"authentication provider {unknown[0]!r} is not supported "
                        "(supported: file)")


@TABLE.directive("AuthUserFile", ALL_CONTEXTS, args=(1, 1))
def _auth_user_file(ctx: BuildContext, node: Node) -> None:
    try:
        users = HtpasswdFile(ctx.state.resolve(node.args[0]))
    except HtpasswdError as exc:
        raise ctx.error(str(exc)) from None
    ctx.set_setting("auth_user_file", users)


def _refuse_auth(ctx: BuildContext, node: Node) -> None:
    raise ctx.error(f"{node.name} is not supported (Basic auth with AuthUserFile is)")


for _name in ("AuthGroupFile", "AuthBasicAuthoritative", "AuthzSendForbiddenOnFailure"):
    TABLE.directive(_name, ALL_CONTEXTS, args=(0, None))(_refuse_auth)


@TABLE.directive("AuthMerging", Context.LOCATION)
def _auth_merging(ctx: BuildContext, node: Node) -> None:
    if node.args[0].lower() != "off":
        raise ctx.error("only 'AuthMerging Off' (the default: a Location's rules replace the "
                        "inherited ones) is supported")
