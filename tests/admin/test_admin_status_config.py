"""ExtendedStatus and ProxyStatus: values, inheritance into virtual hosts, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from portico.config import ConfigError, load_config


def _load(tmp_path: Path, text: str):
    conf = tmp_path / "s.conf"
    conf.write_text(text)
    return load_config(str(conf))


def test_defaults(tmp_path: Path) -> None:
    config = _load(tmp_path, "ServerName x\n")
    assert config.core.extended_status is True
    assert config.main.settings.proxy_status is False


def test_values_and_vhost_inheritance(tmp_path: Path) -> None:
    config = _load(tmp_path, "ExtendedStatus Off\nProxyStatus Full\n"
                   "<VirtualHost *:80>\nServerName a\n</VirtualHost>\n"
                   "<VirtualHost *:80>\nServerName b\nProxyStatus Off\n</VirtualHost>\n")
    assert config.core.extended_status is False
    assert config.main.settings.proxy_status is True
    assert [v.settings.proxy_status for v in config.vhosts] == [True, False]


@pytest.mark.parametrize(("text", "line", "directive", "words"), [
    ("ProxyStatus Maybe\n", 1, "ProxyStatus", "On, Off or Full"),
    ("ExtendedStatus 1\n", 1, "ExtendedStatus", "On"),
    ("<VirtualHost *:80>\nExtendedStatus On\n</VirtualHost>\n", 2, "ExtendedStatus",
     "not allowed in <VirtualHost>"),
    ("<Location /s>\nProxyStatus On\n</Location>\n", 2, "ProxyStatus",
     "not allowed in <Location>"),
])
def test_errors(tmp_path: Path, text: str, line: int, directive: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert (info.value.line, info.value.directive) == (line, directive)
    assert words in info.value.message
