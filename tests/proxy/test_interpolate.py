"""``interpolate`` on ProxyPass, ProxyPassMatch and the ProxyPassReverse* rules (§2.1.5): the
substitution itself, routing with a request environment, and reverse mappers per request."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from portico.config import load_config
from portico.config.model import EncodedSlashes, ReverseRule, Source
from portico.proxy.interpolate import has_variables, interpolate
from portico.proxy.reverse import ReverseMapper
from portico.proxy.routing import Match, Router
from portico.proxy.uri import BadTarget, parse_target

SRC = Source("test.conf", 1)


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("/a/${X}/b", {"X": "x"}, "/a/x/b"),
    ("${X}${Y}", {"X": "1", "Y": "2"}, "12"),
    ("/a/${UNSET}/b", {}, "/a//b"),                      # unset: empty
    ("/a/${X", {"X": "x"}, "/a/${X"),                    # unterminated: as written
    ("${X}/${Y", {"X": "x", "Y": "y"}, "x/${Y"),
    ("/no/variables", {"X": "x"}, "/no/variables"),
    ("${X}", {"X": "${Y}", "Y": "deep"}, "${Y}"),        # a value is not read again
    ("${A${B}}", {"A${B": "odd"}, "odd}"),               # the name runs to the first }
    ("$X {X} $ {", {"X": "x"}, "$X {X} $ {"),
])
def test_interpolate(text, env, expected):
    assert interpolate(text, env) == expected


def test_interpolate_escape_applies_to_values_only():
    assert interpolate("/${X}/$1", {"X": "$2"}, lambda v: v.upper() + "!") == "/$2!/$1"


@pytest.mark.parametrize(("text", "expected"), [
    ("${X}", True), ("a${X}b", True), ("${X", False), ("$X", False), ("", False), (None, False),
])
def test_has_variables(text, expected):
    assert has_variables(text) is expected


# -- routing ------------------------------------------------------------------------------

CONF = """
ProxyPassInterpolateEnv On
ProxyPass /i/${V}/ http://b/got/${W}/ interpolate
ProxyPass /lit/${V}/ http://b/lit/${W}/
ProxyPass /h/ http://${HOST}:${PORT}/app/ interpolate
ProxyPass /hp/ http://${HOSTPORT}/app/ interpolate
ProxyPass /open/ http://b/k${W/ interpolate
ProxyPassMatch ^/m/(.*)$ http://b/m/${W}/$1 interpolate
ProxyPassMatch ^/n${W}/(.*)$ http://b/n/$1 interpolate
ProxyPassMatch ^/whole/ http://b/whole${W} interpolate
ProxyPass /bal/ balancer://pool/${W}/ interpolate
<Proxy balancer://pool>
    BalancerMember http://b1
</Proxy>
<Location /loc>
    ProxyPass http://b/loc/${W} interpolate
</Location>
ProxyPass / http://b/fallback/
"""


@pytest.fixture
def router(tmp_path: Path) -> Router:
    conf = tmp_path / "interpolate.conf"
    conf.write_text(textwrap.dedent(CONF))
    config = load_config(str(conf))
    return Router(config.main, config.workers)


def route(router: Router, target: str, env: dict[str, str] | None) -> Match | None:
    parsed = parse_target(target.encode("latin-1"), EncodedSlashes.OFF)
    return router.route(parsed, router.locations_for(parsed.path), env)


def path(router: Router, target: str, env: dict[str, str] | None) -> str | None:
    match = route(router, target, env)
    return None if match is None else match.path


ENV = {"V": "vv", "W": "ww", "HOST": "127.0.0.2", "PORT": "8081", "HOSTPORT": "Example:9"}


def test_router_knows_it_interpolates(router, tmp_path):
    assert router.interpolates
    conf = tmp_path / "plain.conf"
    conf.write_text("ProxyPass /a/ http://b/ interpolate\nProxyPass /${X}/ http://b/\n")
    config = load_config(str(conf))
    assert not Router(config.main, config.workers).interpolates


@pytest.mark.parametrize(("target", "expected"), [
    ("/i/vv/a?q=1", "/got/ww/a?q=1"),      # path and URL both interpolated
    ("/i/%24%7BV%7D/a", "/fallback/i/$%7BV%7D/a"),   # the literal form no longer matches
    ("/lit/%24%7BV%7D/a", "/lit/$%7BW%7D/a"),  # not flagged: literal (and encoded)
    ("/open/a", "/k$%7BW/a"),                  # unterminated: as written (and encoded)
    ("/m/a", "/m/ww/a"),
    ("/nww/a", "/fallback/nww/a"),         # a regex is not interpolated (compiled at load)
    ("/whole/x", "/wholeww/whole/x"),      # no $n: the whole path is appended
    ("/loc/x", "/loc/ww/x"),
    ("/bal/x", "/ww/x"),
])
def test_route_with_environment(router, target, expected):
    assert path(router, target, ENV) == expected


@pytest.mark.parametrize(("target", "expected"), [
    ("/i/%24%7BV%7D/a", "/got/$%7BW%7D/a"),    # the rule's text is taken literally
    ("/i/vv/a", "/fallback/i/vv/a"),
    ("/m/a", "/m/$%7BW%7D/a"),
    ("/loc/x", "/loc/$%7BW%7D/x"),
])
def test_route_without_environment_is_literal(router, target, expected):
    assert path(router, target, None) == expected


def test_unset_variable_is_empty(router):
    assert path(router, "/i//a", {}) == "/got//a"
    assert path(router, "/i/a", {}) == "/got//a"   # "/i//" merges to "/i/"


def test_host_and_port_from_the_environment(router):
    match = route(router, "/h/x?y", ENV)
    assert match is not None
    assert (match.host, match.port, match.path) == ("127.0.0.2", 8081, "/app/x?y")
    assert match.url == "http://127.0.0.2:8081/app/x"
    assert match.worker == "http://${host}:${PORT}/app/"   # the rule's own worker
    match = route(router, "/hp/x", ENV)
    assert match is not None
    assert (match.host, match.port) == ("example", 9)
    # literal without an environment: the worker's own (unresolvable) host
    match = route(router, "/h/x", None)
    assert match is not None and match.host == "${host}"


def test_host_worker_has_placeholders(tmp_path):
    conf = tmp_path / "w.conf"
    conf.write_text("ProxyPass /h/ http://${H}:${P}/app/ interpolate\n"
                    "ProxyPass /g/ http://${H}/app/ interpolate enablereuse=on\n"
                    "ProxyPass /p/ http://b/${P}/ interpolate\n")
    workers = load_config(str(conf)).workers
    assert workers["http://${h}:${P}/app/"].has_placeholders
    assert not workers["http://${h}:${P}/app/"].params.enablereuse   # as a $n worker
    assert workers["http://${h}/app/"].params.enablereuse
    assert not workers["http://b/${P}/"].has_placeholders


def test_literal_port_variable_without_interpolate_is_still_an_error(tmp_path):
    conf = tmp_path / "w.conf"
    conf.write_text("ProxyPass /h/ http://b:${P}/app/\n")
    with pytest.raises(Exception, match="not a port number"):
        load_config(str(conf))


def test_interpolated_url_that_does_not_parse_is_500(router):
    with pytest.raises(BadTarget) as info:
        route(router, "/h/x", {"HOST": "b", "PORT": "http"})
    assert info.value.status == 500
    with pytest.raises(BadTarget):
        route(router, "/h/x", {})                  # no host at all


def test_values_are_encoded_and_never_read_as_groups(router):
    assert path(router, "/m/a", {"W": "x y\u00e9"}) == "/m/x%20y%C3%A9/a"
    assert path(router, "/m/a", {"W": "$1\\"}) == "/m/$1%5C/a"   # a raw backslash: encoded
    assert path(router, "/i/vv/a", {"V": "vv", "W": "a b"}) == "/got/a%20b/a"


def test_environment_without_interpolating_rules_changes_nothing(tmp_path):
    conf = tmp_path / "plain.conf"
    conf.write_text("ProxyPass /a/ http://b/${X}/\n")
    config = load_config(str(conf))
    r = Router(config.main, config.workers)
    parsed = parse_target(b"/a/z", EncodedSlashes.OFF)
    assert r.route(parsed, (), {"X": "x"}) == r.route(parsed)


# -- reverse mapping ----------------------------------------------------------------------

def rule(fake: str, real: str, flagged: bool = True) -> ReverseRule:
    return ReverseRule(fake, real, SRC, flagged)


def test_reverse_mapper_with_env():
    mapper = ReverseMapper(
        [rule("/r/${APP}/", "http://${BACK}/app/"), rule("/lit/", "http://${BACK}/", False)],
        [rule("${PUBLIC}", "${INTERNAL}")],
        [rule("/r/${APP}", "/${APP}")])
    assert mapper.interpolates
    env = {"APP": "shop", "BACK": "b:8080", "PUBLIC": "example.org", "INTERNAL": "b.internal"}
    mapped = mapper.with_env(env)
    base = "http://front"
    assert mapped.location("http://b:8080/app/x", base) == "http://front/r/shop/x"
    assert mapped.location("http://${BACK}/y", base) == "http://front/lit/y"
    assert mapped.cookie("s=1; Domain=b.internal; Path=/shop/a") == \
        "s=1; Domain=example.org; Path=/r/shop"
    # the mapper itself is untouched: literal until an environment is given
    assert mapper.location("http://b:8080/app/x", base) == "http://b:8080/app/x"
    assert mapper.location("http://${BACK}/app/x", base) == "http://front/r/${APP}/x"


def test_reverse_mapper_unset_variables_and_no_interpolation():
    mapper = ReverseMapper([rule("/r/", "http://b/${MISSING}")], [], [])
    assert mapper.with_env({}).location("http://b/x", "http://f") == "http://f/r/x"
    plain = ReverseMapper([rule("/r/", "http://b/", flagged=True),
                           rule("/s/", "http://${X}/", flagged=False)], [], [])
    assert not plain.interpolates
    assert plain.with_env({"X": "c"}) is plain


def test_reverse_mapper_with_env_keeps_balancer_members():
    mapper = ReverseMapper([rule("/${P}/", "balancer://pool/")], [], [],
                           {"balancer://pool": ["http://m1:81/", "http://m2:82/"]})
    assert mapper.with_env({"P": "pub"}).location("http://m2:82/z", "http://f") == \
        "http://f/pub/z"
