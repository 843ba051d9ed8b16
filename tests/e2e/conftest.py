"""Fixtures for whole-proxy tests: module-scoped origin + proxy pairs and a per-test factory.

A module declares its config once and shares one proxy across its tests (starting a
process costs ~0.3 s); the ``origin`` seen by each test is reset first, so records never
leak between tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.origin import Origin
from tests.support.proxy import Portico

ProxyFactory = Callable[..., Portico]


@pytest.fixture(scope="module")
def module_origin() -> Iterator[Origin]:
    """One origin for the whole module; tests use `morigin`, which resets it."""
    with Origin() as o:
        yield o


@pytest.fixture
def morigin(module_origin: Origin) -> Origin:
    """The module's origin with its records cleared for this test."""
    module_origin.reset()
    return module_origin


def _factory(base: Path) -> tuple[ProxyFactory, list[Portico]]:
    started: list[Portico] = []
    counter = iter(range(1_000_000))

    def start(template: str, **subs: object) -> Portico:
        workdir = base / f"proxy{next(counter)}"
        p = Portico.start(template, workdir, **subs)
        started.append(p)
        return p

    return start, started


@pytest.fixture(scope="module")
def module_proxy_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyFactory]:
    """Start proxies that live until the end of the module."""
    start, started = _factory(tmp_path_factory.mktemp("proxies"))
    yield start
    for p in started:
        p.stop()


@pytest.fixture
def proxy_factory(tmp_path: Path) -> Iterator[ProxyFactory]:
    """Start proxies that are stopped when the test ends."""
    start, started = _factory(tmp_path)
    yield start
    for p in started:
        p.stop()

