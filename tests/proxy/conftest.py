"""Config-loading fixtures for tests here that start from config text."""

from tests.config.conftest import load, write  # noqa: F401  (fixtures)
