"""httpd-syntax configuration: ``load_config`` reads a config into the frozen model."""

from __future__ import annotations

__all__ = ["ConfigError", "load_config"]

from portico.config.load import load_config
from portico.errors import ConfigError
