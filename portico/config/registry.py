"""The directive registry (DESIGN rule 4).

Each area (core, proxy, log, ssl, ...) owns a ``DirectiveTable`` in its module under
``portico.config.directives`` and registers its directives with a decorator stating the name,
the contexts it may appear in and how many arguments it takes. The loader only looks names up
here; it never tests for a particular directive.
"""

from __future__ import annotations

__all__ = [
    "ALL_CONTEXTS",
    "IMPLEMENTED_MODULES",
    "Context",
    "DirectiveSpec",
    "DirectiveTable",
    "Registry",
    "canonical_module_name",
    "default_registry",
    "module_is_implemented",
]

import enum
import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from portico.errors import ConfigError

if TYPE_CHECKING:
    from portico.config.build import BuildContext
    from portico.config.tree import Node

_log = logging.getLogger("portico.config")

#: Modules portico implements, by httpd's short name (``proxy`` for ``mod_proxy.c`` and
#: ``proxy_module``). <IfModule> is true exactly for these. Some are here because portico
#: provides what the module provides (unixd, mpm_event: the process model; version:
#: <IfVersion>), so stock Debian configs take their intended branches.
IMPLEMENTED_MODULES: frozenset[str] = frozenset({
    "core", "http", "proxy", "proxy_http", "log_config", "logio", "ssl", "unixd", "mpm_event",
    "authz_core", "version", "proxy_balancer", "authz_host", "status", "setenvif", "env",
    # implemented as parts of the above: health checks, lbmethods, Basic authentication,
    # and the shared memory and timer services they stand on in httpd
    "proxy_hcheck", "lbmethod_byrequests", "lbmethod_bytraffic", "lbmethod_bybusyness",
    "auth_basic", "authn_core", "authn_file", "authz_user", "slotmem_shm", "watchdog",
})

#: Area modules whose tables make up the default registry.
_AREAS = ("core", "proxy", "balancer", "hcheck", "log", "ssl", "access", "status", "env",
          "ignored", "foreign")


class Context(enum.Flag):
    """Where a directive may appear."""

    SERVER = enum.auto()     # main server config, outside every section
    VHOST = enum.auto()      # inside <VirtualHost>
    LOCATION = enum.auto()   # inside <Location>/<LocationMatch>
    PROXY = enum.auto()      # inside <Proxy>/<ProxyMatch>


ALL_CONTEXTS = Context.SERVER | Context.VHOST | Context.LOCATION | Context.PROXY

CONTEXT_NAMES = {
    Context.SERVER: "server config",
    Context.VHOST: "<VirtualHost>",
    Context.LOCATION: "<Location>",
    Context.PROXY: "<Proxy>",
}

Handler = Callable[["BuildContext", "Node"], None]


@dataclass(frozen=True, slots=True)
class DirectiveSpec:
    """One registered directive or section. ``max_args`` None means no upper bound."""

    name: str
    contexts: Context
    handler: Handler
    section: bool
    min_args: int
    max_args: int | None
    area: str

    def check_args(self, node: Node) -> None:
        """Raise ConfigError when the argument count is out of range."""
        count = len(node.args)
        if count >= self.min_args and (self.max_args is None or count <= self.max_args):
            return
        if self.max_args == self.min_args:
            want = _plural(self.min_args)
        elif self.max_args is None:
            want = f"at least {_plural(self.min_args)}"
        else:
            want = f"{self.min_args} to {self.max_args} arguments"
        raise ConfigError(f"takes {want}, got {count}", node.file, node.line,
                          _display(self, node))

    def check_context(self, node: Node, where: Context) -> None:
        """Raise ConfigError naming the context when the directive may not appear there."""
        if where & self.contexts:
            return
        allowed = ", ".join(name for flag, name in CONTEXT_NAMES.items() if flag & self.contexts)
        raise ConfigError(f"not allowed in {CONTEXT_NAMES[where]} (allowed in: {allowed})",
                          node.file, node.line, _display(self, node))


def _plural(count: int) -> str:
    return "1 argument" if count == 1 else f"{count} arguments"


def _display(spec: DirectiveSpec, node: Node) -> str:
    return f"<{node.name}>" if spec.section else node.name


class DirectiveTable:
    """The directives of one area, filled by decorators when the area module is imported."""

    def __init__(self, area: str) -> None:
        self.area = area
        self._specs: list[DirectiveSpec] = []

    def directive(
        self, name: str, contexts: Context, args: tuple[int, int | None] = (1, 1),
    ) -> Callable[[Handler], Handler]:
        """Register ``name`` (a directive) with its contexts and (min, max) argument count."""
        return self._register(name, contexts, args, section=False)

    def section(
        self, name: str, contexts: Context, args: tuple[int, int | None] = (1, 1),
    ) -> Callable[[Handler], Handler]:
        """Register ``<name>``; the handler decides whether and how to walk the children."""
        return self._register(name, contexts, args, section=True)

    def ignore(self, *names: str, section: bool = False,
               contexts: Context = ALL_CONTEXTS) -> None:
        """Accept httpd-only directives (or whole sections) that have no effect in portico."""
        for name in names:
            self._specs.append(DirectiveSpec(name, contexts, _ignored, section, 0, None,
                                             self.area))

    def _register(self, name: str, contexts: Context, args: tuple[int, int | None],
                  section: bool) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            self._specs.append(DirectiveSpec(name, contexts, handler, section, args[0],
                                             args[1], self.area))
            return handler
        return decorate

    def specs(self) -> tuple[DirectiveSpec, ...]:
        return tuple(self._specs)


def _ignored(ctx: BuildContext, node: Node) -> None:
    kind = "section" if node.is_section else "directive"
    _log.debug("%s:%d: ignoring httpd-only %s %s", node.file, node.line, kind, node.name)


class Registry:
    """Case-insensitive lookup of directives and sections from several tables."""

    def __init__(self, tables: Iterable[DirectiveTable]) -> None:
        self._directives: dict[str, DirectiveSpec] = {}
        self._sections: dict[str, DirectiveSpec] = {}
        for table in tables:
            for spec in table.specs():
                target = self._sections if spec.section else self._directives
                key = spec.name.lower()
                if key in target:
                    raise ValueError(f"{spec.name} registered twice ({target[key].area}, "
                                     f"{spec.area})")
                target[key] = spec

    def lookup(self, name: str, section: bool) -> DirectiveSpec | None:
        table = self._sections if section else self._directives
        return table.get(name.lower())

    def knows(self, name: str, section: bool) -> bool:
        """For <IfDirective>/<IfSection>; the preprocessor's own directives count too."""
        if not section and name.lower() in ("include", "includeoptional", "define", "undefine"):
            return True
        if section and name.lower() in ("ifdefine", "ifmodule", "ifversion", "iffile",
                                        "ifdirective", "ifsection"):
            return True
        return self.lookup(name, section) is not None


def default_registry() -> Registry:
    """The registry of every area portico implements."""
    tables = [importlib.import_module(f"portico.config.directives.{area}").TABLE
              for area in _AREAS]
    return Registry(tables)


def canonical_module_name(word: str) -> str | None:
    """``mod_proxy.c`` and ``proxy_module`` → ``proxy``; any other spelling → None."""
    if word.startswith("mod_") and word.endswith(".c") and len(word) > 6:
        return word[4:-2]
    if word.endswith("_module") and len(word) > 7:
        return word[:-7]
    return None


def module_is_implemented(word: str) -> bool:
    """What <IfModule word> answers (httpd accepts only the two spellings above)."""
    name = canonical_module_name(word)
    return name is not None and name in IMPLEMENTED_MODULES
