"""SetEnvIf*, SetEnvIfExpr and SetEnv/UnsetEnv/PassEnv: loading (merge order) and evaluation
against request facts (portico.proxy.environment)."""

from __future__ import annotations

import textwrap

import pytest

from portico.proxy.environment import RequestFacts, apply_sets, run_conditions


def facts(uri: str = "/", headers=(), method: bytes = b"GET", peer: str = "192.0.2.7",
          local: str = "127.0.0.1") -> RequestFacts:
    return RequestFacts(peer, local, method, b"1.1",
                        uri, [(n.encode(), v.encode()) for n, v in headers])


def env_after(load, rules: str, request: RequestFacts, where: str = "early") -> dict[str, str]:
    config = load("Listen 80\nServerName t\n" + textwrap.dedent(rules).strip() + "\n")
    settings = config.main.settings
    env: dict[str, str] = {}
    run_conditions(getattr(settings, f"env_{where}"), env, request)
    apply_sets(settings.env_fixed, env)
    return env


def test_named_attributes(load) -> None:
    env = env_after(load, """
        SetEnvIf Remote_Addr ^192\\.0\\.2\\. lan
        SetEnvIf Remote_Host ^192 host_is_address
        SetEnvIf Server_Addr ^127 local
        SetEnvIf Request_Method ^POST$ post
        SetEnvIf Request_Protocol ^HTTP/1\\.1$ v11
        SetEnvIf Request_URI ^/shop/(\\w+)/?(\\d+)? item=$1:$2 escaped=\\$1
        SetEnvIf request_uri ^/shop any_case_name
    """, facts("/shop/cart", method=b"POST"))
    assert env == {"lan": "1", "host_is_address": "1", "local": "1", "post": "1", "v11": "1",
                   "item": "cart:", "escaped": "$1", "any_case_name": "1"}


def test_headers_case_repeats_and_absence(load) -> None:
    env = env_after(load, """
        SetEnvIf user-agent ^Mozilla moz
        SetEnvIfNoCase X-Tag "^ALPHA, beta$" both_tags
        SetEnvIf X-Tag ^alpha$ only_first
        SetEnvIf X-Absent ^$ absent
        SetEnvIf X-Absent . present
    """, facts(headers=[("User-Agent", "Mozilla/5.0"), ("x-tag", "alpha"),
                        ("X-TAG", "beta")]))
    # repeated fields are tested joined, as httpd merges them
    assert env == {"moz": "1", "both_tags": "1", "absent": "1"}


def test_header_name_regex_and_variables_set_earlier(load) -> None:
    env = env_after(load, """
        SetEnvIf ^X-Trace-.*$ ^on$ traced
        SetEnvIf Request_URI ^/(a|b) first=$1
        SetEnvIf first ^a$ second=yes !first
        SetEnvIf first ^$ first_gone
    """, facts("/a", headers=[("X-Trace-Id", "off"), ("X-Trace-On", "on")]))
    assert env == {"traced": "1", "second": "yes", "first_gone": "1"}


def test_a_header_wins_over_a_variable_of_the_same_name(load) -> None:
    env = env_after(load, """
        SetEnvIf Request_URI . mode=var
        SetEnvIf mode ^hdr$ saw_header
        SetEnvIf mode ^var$ saw_variable
    """, facts(headers=[("Mode", "hdr")]))
    assert "saw_header" in env and "saw_variable" not in env


def test_browser_match_and_expr(load) -> None:
    env = env_after(load, """
        BrowserMatch "^Wget/(\\S+)" wget=$1
        BrowserMatchNoCase ^WGET nocase
        SetEnvIfExpr "req('Accept') =~ /json/ && -R '192.0.2.0/24'" wants_json
        SetEnvIfExpr "%{HTTP_USER_AGENT} =~ /^Curl/" never
        SetEnvIfExpr "reqenv('wget') == '1.21'" exact_version
    """, facts(headers=[("User-Agent", "Wget/1.21"), ("Accept", "application/json")]))
    assert env == {"wget": "1.21", "nocase": "1", "wants_json": "1", "exact_version": "1"}


def test_setenv_unsetenv_passenv_in_order(load, monkeypatch) -> None:
    monkeypatch.setenv("PORTICO_TEST_PASSED", "from-os")
    monkeypatch.delenv("PORTICO_TEST_MISSING", raising=False)
    env = env_after(load, """
        SetEnv a 1
        SetEnv empty
        SetEnv b 2
        UnsetEnv a c
        PassEnv PORTICO_TEST_PASSED PORTICO_TEST_MISSING
    """, facts())
    assert env == {"empty": "", "b": "2", "PORTICO_TEST_PASSED": "from-os"}


def test_vhost_adds_to_the_main_servers_rules_and_locations_keep_their_own(load) -> None:
    config = load("""
        Listen 80
        ServerName t
        SetEnvIf Request_URI . main_rule
        SetEnv from_main 1
        <VirtualHost *:80>
            ServerName v
            SetEnvIf Request_URI . vhost_rule
            SetEnv from_vhost 1
            <Location /x>
                SetEnvIf Request_URI . location_rule
                UnsetEnv from_main
            </Location>
        </VirtualHost>
    """)
    (vhost,) = config.vhosts
    early = vhost.settings.env_early
    assert [rule.sets[0].name for rule in early] == ["main_rule", "vhost_rule"]
    assert [item.name for item in vhost.settings.env_fixed] == ["from_main", "from_vhost"]
    assert [rule.sets[0].name for rule in config.main.settings.env_early] == ["main_rule"]
    location = next(loc for loc in vhost.locations if loc.path == "/x")
    assert [rule.sets[0].name for rule in location.env_late] == ["location_rule"]
    assert [(item.name, item.value) for item in location.env_fixed] == [("from_main", None)]
    assert vhost.settings.env_late == ()


@pytest.mark.parametrize("module", ["mod_setenvif.c", "setenvif_module", "mod_env.c"])
def test_ifmodule_knows_the_environment_modules(load, module) -> None:
    config = load(f"""
        Listen 80
        ServerName t
        <IfModule {module}>
            SetEnv inside 1
        </IfModule>
    """)
    assert [item.name for item in config.main.settings.env_fixed] == ["inside"]
