"""Debian's stock apache2.conf tree loads (when this machine has one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from portico.config import ConfigError, load_config

STOCK = Path("/etc/apache2/apache2.conf")

pytestmark = pytest.mark.skipif(not STOCK.exists(), reason="no Debian apache2 config here")


def test_stock_config_stops_only_at_access_control(tmp_path) -> None:
    tree = tmp_path / "apache2"
    shutil.copytree(STOCK.parent, tree, symlinks=False)
    status = tree / "mods-enabled" / "status.conf"
    if status.exists():
        # mod_status's "Require local" is access control, which portico refuses for now.
        with pytest.raises(ConfigError, match="access control") as info:
            load_config(str(tree / "apache2.conf"))
        assert info.value.file is not None and info.value.file.endswith("status.conf")
        for name in ("status.conf", "status.load"):
            (tree / "mods-enabled" / name).unlink(missing_ok=True)
    config = load_config(str(tree / "apache2.conf"))
    assert {listen.port for listen in config.listens} >= {80}
    assert config.vhosts and config.vhosts[0].addresses == (("*", 80),)
    assert config.core.timeout == 300.0
