"""Shared fixtures for the health-check tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.health.backend import HealthBackends


@pytest.fixture
def backends() -> Iterator[HealthBackends]:
    with HealthBackends(["a", "b"]) as servers:
        yield servers
