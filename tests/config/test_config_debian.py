"""Debian's stock apache2.conf tree loads (when this machine has one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from portico.config import load_config

STOCK = Path("/etc/apache2/apache2.conf")

pytestmark = pytest.mark.skipif(not STOCK.exists(), reason="no Debian apache2 config here")


def test_stock_config_loads_with_mod_status(tmp_path) -> None:
    tree = tmp_path / "apache2"
    shutil.copytree(STOCK.parent, tree, symlinks=False)
    config = load_config(str(tree / "apache2.conf"))
    assert {listen.port for listen in config.listens} >= {80}
    assert config.vhosts and config.vhosts[0].addresses == (("*", 80),)
    assert config.core.timeout == 300.0
    if (tree / "mods-enabled" / "status.conf").exists():
        # mod_status's <Location /server-status> with "Require local" is compiled.
        status = [loc for loc in config.main.locations if loc.handler == "server-status"]
        assert status and status[0].overrides["access"].allows("127.0.0.1", "127.0.0.1")
        assert not status[0].overrides["access"].allows("192.0.2.1", "127.0.0.1")
