"""Require and <RequireAll|Any|None> (§19): compiled at load, 403 over real sockets, and
config errors with file:line (messages as httpd 2.4's own, where it has one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from portico.admin.access import AccessError, parse_ip_rule
from portico.config import ConfigError, load_config
from tests.support.idservers import IdServers
from tests.support.lbclient import fetch
from tests.support.lbconf import start_balanced
from tests.support.proxy import server_kind


def _rule(tmp_path: Path, body: str):
    conf = tmp_path / "a.conf"
    conf.write_text(f"<Location /x>\n{body}\n</Location>\n")
    (loc,) = load_config(str(conf)).main.locations
    return loc.overrides["access"]


@pytest.mark.parametrize(("body", "allowed", "denied"), [
    ("Require all granted", ["10.0.0.1", "::1"], []),
    ("Require all denied", [], ["127.0.0.1"]),
    ("Require ip 10.0.0.0/8 192.168", ["10.9.8.7", "192.168.44.1", "::ffff:10.1.1.1"],
     ["11.0.0.1", "192.169.0.1", "", "not-an-ip"]),
    ("Require ip 2001:db8::/32", ["2001:db8::5"], ["2001:db9::5", "10.0.0.1"]),
    ("Require local", ["127.0.0.1", "127.3.4.5", "::1"], ["10.0.0.1"]),
    ("Require ip 10.1\nRequire ip 10.2", ["10.1.0.9", "10.2.3.4"], ["10.3.0.1"]),
    ("<RequireAll>\nRequire ip 10.0.0.0/8\nRequire not ip 10.6\n</RequireAll>",
     ["10.5.0.1"], ["10.6.0.1", "11.0.0.1"]),
    ("<RequireAll>\nRequire all granted\n<RequireNone>\nRequire ip 10.6\nRequire ip 10.7\n"
     "</RequireNone>\n</RequireAll>", ["10.5.0.1"], ["10.6.0.1", "10.7.0.1"]),
    ("<RequireAny>\n<RequireAll>\nRequire ip 10.0.0.0/8\nRequire not ip 10.6\n</RequireAll>\n"
     "Require local\n</RequireAny>", ["10.5.0.1", "127.0.0.1"], ["10.6.0.1"]),
])
def test_rules(tmp_path: Path, body: str, allowed: list[str], denied: list[str]) -> None:
    rule = _rule(tmp_path, body)
    for ip in allowed:
        assert rule.allows(ip, "192.0.2.1"), ip
    for ip in denied:
        assert not rule.allows(ip, "192.0.2.1"), ip


def test_local_includes_the_servers_own_address(tmp_path: Path) -> None:
    rule = _rule(tmp_path, "Require local")
    assert rule.allows("192.0.2.7", "192.0.2.7")
    assert not rule.allows("192.0.2.7", "192.0.2.8")


def test_ip_forms() -> None:
    assert str(parse_ip_rule("10.1")) == "10.1.0.0/16"
    assert str(parse_ip_rule("172.")) == "172.0.0.0/8"
    assert str(parse_ip_rule("10.1.2.3/255.255.0.0")) == "10.1.0.0/16"
    for bad in ("10.256", "foo", "10.1/33", "1.2.3.4.5"):
        with pytest.raises(AccessError, match="appears to be invalid"):
            parse_ip_rule(bad)


# (Location body, line of the error counted from the file start, directive, message words)
ERRORS = [
    ("Require not ip 10.0.0.1", 2, "Require",
     "negative Require directive has no effect in <RequireAny> directive"),
    ("<RequireNone>\nRequire ip 10.1\n</RequireNone>", 2, "<RequireNone>",
     "<RequireNone> directive has no effect in <RequireAny> directive"),
    ("<RequireAll>\nRequire not ip 10.1\n</RequireAll>", 2, "<RequireAll>",
     "contains only negative authorization directives"),
    ("<RequireAll>\nRequire all granted\nRequire ip 10.300\n</RequireAll>", 4, "Require",
     "appears to be invalid"),
    ("<RequireAll>\nProxyPass http://a/\n</RequireAll>", 3, "ProxyPass",
     "only Require lines"),
    ("<RequireAny>\n</RequireAny>", 2, "<RequireAny>", "no authorization directives"),
    ("Require host", 2, "Require", "'Require host' needs at least one"),
    ("Require forward-dns example.com", 2, "Require", "'Require forward-dns' is not supported"),
    ("Require group staff", 2, "Require", "is not supported"),
    ("Require ip", 2, "Require", "needs at least one address"),
    ("Require lunar phase", 2, "Require", "unknown authorization provider"),
    ("Require env", 2, "Require", "'Require env' needs at least one variable name"),
    ("Require method", 2, "Require", "'Require method' needs at least one method"),
    ("Require expr \"%{NO_SUCH_THING} == 'x'\"", 2, "Require", "'Require expr':"),
    ("AuthType Digest", 2, "AuthType", "not supported"),
]


@pytest.mark.parametrize(("body", "line", "directive", "words"), ERRORS)
def test_config_errors(tmp_path: Path, body: str, line: int, directive: str,
                       words: str) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text(f"ServerName x\n<Location /x>\n{body}\n</Location>\n".replace(
        "<Location /x>\n", "<Location /x>\n", 1))
    with pytest.raises(ConfigError) as info:
        load_config(str(conf))
    err = info.value
    assert (err.file, err.line, err.directive) == (str(conf), line + 1, directive), str(err)
    assert words in err.message


def test_require_outside_location_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("<Proxy balancer://b>\nRequire ip 10.1\n</Proxy>\n")
    with pytest.raises(ConfigError, match="outside <Location>") as info:
        load_config(str(conf))
    assert info.value.line == 2


# -------------------------------------------------------------------------- real sockets

ACCESS_CONF = """\
<Location "/open">
    Require local
</Location>
<Location "/closed">
    Require ip 10.0.0.0/8
</Location>
<Location "/both">
    <RequireAll>
        Require local
        Require not ip 127.0.0.2
    </RequireAll>
</Location>
<Location "/either">
    <RequireAny>
        Require ip 10.0.0.0/8
        <RequireAll>
            Require ip 127.0.0.0/8
            Require not ip 127.0.0.1
        </RequireAll>
    </RequireAny>
</Location>
<Location "/both/inner">
    Require all denied
</Location>
<Location "/status">
    SetHandler server-status
    Require ip 10.0.0.0/8
</Location>
ProxyPass "/status" !
ProxyPass "/" "{{a}}/"
"""


@pytest.mark.skipif(server_kind() != "portico", reason="reads portico's listener")
def test_require_over_sockets(tmp_path: Path) -> None:
    with IdServers(["a"]) as servers:
        with start_balanced(ACCESS_CONF, tmp_path, servers) as proxy:
            got = {path: fetch(proxy.port, path).status
                   for path in ("/open/x", "/closed/x", "/both/x", "/either/x",
                                "/both/inner/x", "/status", "/status?auto", "/elsewhere")}
        hits = [h.target for h in servers.hits]
    assert got == {"/open/x": 200, "/closed/x": 403, "/both/x": 200, "/either/x": 403,
                   "/both/inner/x": 403, "/status": 403, "/status?auto": 403,
                   "/elsewhere": 200}
    # Denied requests never reached the backend.
    assert sorted(hits) == ["/both/x", "/elsewhere", "/open/x"]
