"""Worker parameters (§6.2) and status flags (§6.3)."""

from __future__ import annotations

import pytest

from portico.config.model import Source, WorkerParams
from portico.config.params import parse_status, parse_worker_params
from portico.errors import ConfigError

SRC = Source("x.conf", 7)


def parse(**pairs: str) -> WorkerParams:
    return parse_worker_params(list(pairs.items()), SRC)


@pytest.mark.parametrize(("pairs", "expected"), [
    ({"min": "1", "max": "5", "smax": "3"}, {"min": 1, "max": 5, "smax": 3}),
    ({"timeout": "7"}, {"timeout": 7.0}),
    ({"TTL": "9"}, {"ttl": 9.0}),
    ({"acquire": "250"}, {"acquire": 0.25}),
    ({"acquire": "2s"}, {"acquire": 2.0}),
    ({"connectiontimeout": "3"}, {"connectiontimeout": 3.0}),
    ({"connectiontimeout": "1500ms"}, {"connectiontimeout": 1.5}),
    ({"ping": "1min"}, {"ping": 60.0}),
    ({"disablereuse": "ON"}, {"enablereuse": False}),
    ({"enablereuse": "off"}, {"enablereuse": False}),
    ({"keepalive": "On"}, {"keepalive": True}),
    ({"flushpackets": "Auto", "flushwait": "0"}, {"flushpackets": "auto", "flushwait": 0.01}),
    ({"flushwait": "250"}, {"flushwait": 0.25}),
    ({"iobuffersize": "0"}, {"iobuffersize": 8192}),
    ({"iobuffersize": "65536", "receivebuffersize": "1024"},
     {"iobuffersize": 65536, "receivebuffersize": 1024}),
    ({"responsefieldsize": "0"}, {"responsefieldsize": 8192}),
    ({"lbset": "99"}, {"lbset": 99}),
    ({"loadfactor": "1.255"}, {"loadfactor": 125}),
    ({"loadfactor": "100"}, {"loadfactor": 10000}),
    ({"retry": "0"}, {"retry": 0.0}),
    ({"route": "n1", "redirect": "n2", "secret": "s"},
     {"route": "n1", "redirect": "n2", "secret": "s"}),
    ({"upgrade": "ANY"}, {"upgrade": "*"}),
    ({"upgrade": "websocket"}, {"upgrade": "websocket"}),
    ({"mapping": "Servlet"}, {"mapping": "servlet"}),
    ({"addressttl": "-1"}, {"addressttl": -1.0}),
    ({"addressttl": "2min"}, {"addressttl": 120.0}),
    ({"flusher": "fd"}, {"flusher": "fd"}),
    ({"hcmethod": "get11", "hcuri": "/health", "hcinterval": "500ms", "hcpasses": "2",
      "hcfails": "3", "hcexpr": "ok", "hctemplate": "t"},
     {"hcmethod": "GET11", "hcuri": "/health", "hcinterval": 0.5, "hcpasses": 2,
      "hcfails": 3, "hcexpr": "ok", "hctemplate": "t"}),
])
def test_valid_parameters(pairs, expected) -> None:
    params = parse(**pairs)
    for name, value in expected.items():
        assert getattr(params, name) == value, name
    assert params.explicit == {key.lower() for key in pairs}


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("timeout", "0", "below the minimum 1"),
    ("timeout", "5s", "whole number"),
    ("ttl", "0", "below the minimum"),
    ("acquire", "0", "at least 1 ms"),
    ("connectiontimeout", "1.5", "whole number"),
    ("ping", "x", "whole number"),
    ("min", "-1", "below the minimum"),
    ("max", "ten", "whole number"),
    ("keepalive", "yes", "expected On or Off"),
    ("flushpackets", "maybe", "on, off, auto"),
    ("flushwait", "1001", "above the maximum"),
    ("iobuffersize", "100", "at least 512"),
    ("receivebuffersize", "511", "at least 512"),
    ("lbset", "100", "above the maximum 99"),
    ("loadfactor", "0.5", "between 1 and 100"),
    ("loadfactor", "101", "between 1 and 100"),
    ("loadfactor", "abc", "decimal"),
    ("retry", "-1", "below the minimum 0"),
    ("route", "r" * 64, "shorter than 64"),
    ("upgrade", "a" * 16, "shorter than 16"),
    ("mapping", "raw", "encoded or servlet"),
    ("addressttl", "-2", "must be -1"),
    ("hcmethod", "CPING", "not (yet) implemented"),
    ("hcmethod", "PUT", "must be one of"),
    ("hcinterval", "50ms", "at least 100 ms"),
    ("hcexpr", "x" * 16, "shorter than 16"),
    ("status", "X", "unknown status flag"),
])
def test_invalid_values_name_key_and_location(key, value, reason) -> None:
    with pytest.raises(ConfigError) as info:
        parse_worker_params([(key, value)], SRC)
    assert (info.value.file, info.value.line) == ("x.conf", 7)
    assert f"{key}={value}" in info.value.message
    assert reason in info.value.message


def test_unknown_key() -> None:
    for key in ("weight", "hostname", "hmax"):
        with pytest.raises(ConfigError, match=f"unknown Worker parameter '{key}'"):
            parse_worker_params([(key, "1")], SRC)


def test_status_modes() -> None:
    assert parse_status("S-E") == ("S", "E")
    assert parse_status("-DE") == ("", "DE")
    assert parse_status("+h-e+N") == ("HN", "E")
    assert parse_status("D", "", "D") == ("D", "")
    assert parse_status("-D", "DH", "") == ("H", "D")


def test_base_is_merged() -> None:
    base = parse_worker_params([("timeout", "5"), ("status", "D")], SRC)
    merged = parse_worker_params([("ttl", "3"), ("status", "-D+I")], SRC, base=base)
    assert (merged.timeout, merged.ttl) == (5.0, 3.0)
    assert (merged.status_set, merged.status_clear) == ("I", "D")
    assert merged.explicit == {"timeout", "ttl", "status"}
    assert base.ttl is None  # the base is not changed
