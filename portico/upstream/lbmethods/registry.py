"""lbmethods by name: the built-ins plus third-party ones from entry points.

Entry points of the group ``portico.lbmethods`` are read once, the first time a name is not
found among the registered methods (so importing this module does nothing). A plugin that
fails to load is reported when its name is asked for, not before, and never hides a
built-in: a plugin entry with a built-in's name is ignored.
"""

from __future__ import annotations

__all__ = ["ENTRY_POINT_GROUP", "LBMethodFactory", "Registry", "UnknownLBMethod",
           "default_registry"]

import functools
from collections.abc import Callable
from importlib.metadata import entry_points

from portico.upstream.lbmethods.base import LBMethod
from portico.upstream.lbmethods.bybusyness import ByBusyness
from portico.upstream.lbmethods.byrequests import ByRequests
from portico.upstream.lbmethods.bytraffic import ByTraffic
from portico.upstream.lbmethods.p2c import PowerOfTwo

ENTRY_POINT_GROUP = "portico.lbmethods"

#: Anything that makes a fresh method instance when called without arguments.
LBMethodFactory = Callable[[], LBMethod]

_BUILTINS: tuple[type[LBMethod], ...] = (ByRequests, ByTraffic, ByBusyness, PowerOfTwo)


class UnknownLBMethod(LookupError):
    """No method has that name (config: "unknown lbmethod"), or its plugin failed to load."""


class Registry:
    """Method factories by name (names compared case-insensitively, as httpd does)."""

    def __init__(self, *, builtins: bool = True, plugins: bool = True) -> None:
        self._factories: dict[str, LBMethodFactory] = {}
        self._builtin: set[str] = set()
        self._broken: dict[str, str] = {}
        self._plugins_pending = plugins
        if builtins:
            for cls in _BUILTINS:
                self.register(cls.name, cls)
                self._builtin.add(cls.name)

    def register(self, name: str, factory: LBMethodFactory) -> None:
        """Add a method; ValueError when the name is taken or empty."""
        key = name.lower()
        if not key:
            raise ValueError("an lbmethod needs a name")
        if key in self._factories:
            raise ValueError(f"lbmethod {name!r} is already registered")
        self._factories[key] = factory

    def names(self) -> list[str]:
        """Every known method name (entry points included), sorted."""
        self._load_plugins()
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._lookup(name) is not None

    def create(self, name: str) -> LBMethod:
        """A new instance of the method ``name``; `UnknownLBMethod` when there is none."""
        factory = self._lookup(name)
        if factory is None:
            why = self._broken.get(name.lower())
            raise UnknownLBMethod(f"unknown lbmethod {name!r}" + (f" ({why})" if why else ""))
        method = factory()
        if not isinstance(method, LBMethod):
            raise UnknownLBMethod(f"lbmethod {name!r} did not produce an LBMethod")
        return method

    def _lookup(self, name: str) -> LBMethodFactory | None:
        factory = self._factories.get(name.lower())
        if factory is None and self._plugins_pending:
            self._load_plugins()
            factory = self._factories.get(name.lower())
        return factory

    def _load_plugins(self) -> None:
        if not self._plugins_pending:
            return
        self._plugins_pending = False
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            key = ep.name.lower()
            if key in self._builtin or key in self._factories:
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                self._broken[key] = f"entry point {ep.value} failed to load: {exc!r}"
                continue
            if not callable(obj):
                self._broken[key] = f"entry point {ep.value} is not callable"
                continue
            self._factories[key] = obj


@functools.cache
def default_registry() -> Registry:
    """The process's registry (built-ins, then entry points on first miss); built once."""
    return Registry()
