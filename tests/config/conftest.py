"""Helpers for config tests: write a config into a temporary directory and load it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from portico.config import ConfigError, load_config
from portico.config.model import ServerConfig

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write(text, name="main.conf") → path of a dedented file under tmp_path."""
    def _write(text: str, name: str = "main.conf") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path
    return _write


@pytest.fixture
def load(write: Callable[..., Path]) -> Callable[..., ServerConfig]:
    """load(text, defines=()) → ServerConfig of that text as main.conf."""
    def _load(text: str, defines: tuple[str, ...] = ()) -> ServerConfig:
        return load_config(str(write(text)), defines)
    return _load


@pytest.fixture
def fails(write: Callable[..., Path]) -> Callable[..., ConfigError]:
    """fails(text, line, directive) → the ConfigError, checked to name main.conf:line."""
    def _fails(text: str, line: int, directive: str, name: str = "main.conf") -> ConfigError:
        path = write(text)
        with pytest.raises(ConfigError) as info:
            load_config(str(path))
        error = info.value
        assert error.file is not None and error.file.endswith(name), str(error)
        assert error.line == line, str(error)
        assert error.directive == directive, str(error)
        assert f"{name}:{line}: {directive}: " in str(error)
        return error
    return _fails
