"""ProxyPass ``mapping=encoded`` and ``mapping=servlet`` (reference §1.1, §2.1.3), on Routers
built from config text.

The expected backend paths are what Apache httpd 2.4.71 sent for the same config and
request (checked with tests/e2e/test_e2e_mapping.py under PORTICO_E2E_SERVER=httpd).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from portico.config import load_config
from portico.config.model import EncodedSlashes
from portico.proxy.routing import Router
from portico.proxy.uri import encoded_path, parse_target


def router_for(tmp_path: Path, text: str) -> Router:
    conf = tmp_path / "mapping.conf"
    conf.write_text(textwrap.dedent(text))
    config = load_config(str(conf))
    return Router(config.main, config.workers)


def backend(router: Router, target: str,
            slashes: EncodedSlashes = EncodedSlashes.OFF) -> str | None:
    """The request-target the backend would get (None: not proxied), as the pipeline asks."""
    parsed = parse_target(target.encode("latin-1"), slashes)
    match = router.route(parsed, router.locations_for(parsed.path))
    return None if match is None else match.path


SERVLET = """
ProxyPass /s/ http://b/back/ mapping=servlet
ProxyPass /t http://b/tb mapping=servlet
ProxyPass /u/v http://b/uv mapping=servlet
ProxyPass /s/ http://b/plain-s/
"""


@pytest.mark.parametrize(("target", "expected"), [
    ("/s/a;jsessionid=1", "/back/a;jsessionid=1"),   # the remainder keeps its ;params
    ("/s;p/a;x/b;y?q=1", "/back/a;x/b;y?q=1"),       # the alias's own ;p is ignored
    ("/s/a/..;x/b", "/back/b"),                      # "..;x" is a ".." for servlets
    ("/s//a//b", "/back/a/b"),
    ("/s/;x/y", "/back/;x/y"),                       # a skipped "/;x/" goes on with "y"
    ("/s/a/.;x/b", "/back/a/.;x/b"),                 # after the alias the text is as sent
    ("/t;x/y", "/tb;x/y"),                           # alias without '/': its ;params kept
    ("/t;x", "/tb"),                                 # ... unless nothing follows
    ("/t;x/", "/tb/"),
    ("/t/;x", "/tb"),
    ("/t/a;b=1;c", "/tb/a;b=1;c"),
    ("/u;a/v;b/w;c", "/uv;b/w;c"),
    ("/u;a/v;b", "/uv"),
    ("/u/w;q/..;q/v;r/z;s", "/uv;r/z;s"),
    ("/u/v/a/;y/b", "/uv/a/;y/b"),
    ("/u/w/..;q/v/z", "/uv/z"),
    ("/u/v;x/a;y/..;z/b", "/uv;x/a;y/..;z/b"),
    ("/s/a%e9", "/back/a%e9"),                       # matched and sent still encoded
    # a ".." that climbs above the root: no match for the servlet rule, the next rule takes it
    ("/s/..;x/..;y/z", "/plain-s/..;x/..;y/z"),
    ("/s;x", None),
    ("/u/vw", None),
    ("/u/v/..;y", None),
])
def test_servlet_mapping_table(tmp_path, target, expected):
    assert backend(router_for(tmp_path, SERVLET), target) == expected


ENCODED = """
ProxyPass /order/ http://b/plain-first/
ProxyPass /e/ http://b/enc/ mapping=encoded
ProxyPass /a%20b/ http://b/sp/ mapping=encoded
ProxyPass /order/ http://b/enc-second/ mapping=encoded
ProxyPass /x/ !
ProxyPass /x/ http://b/xenc/ mapping=encoded
ProxyPass /y/ ! mapping=encoded
ProxyPass /y/ http://b/y-plain/
ProxyPass /y/ http://b/y-enc-after-exclusion/ mapping=encoded
ProxyPassMatch ^/m/(.*)$ http://b/m/$1 mapping=encoded
ProxyPassMatch ^/n/ http://b/nn mapping=encoded
ProxyPass /p/ http://b/plain/
"""


@pytest.mark.parametrize(("target", "expected"), [
    ("/e/a%20b?q=%20x", "/enc/a%20b?q=%20x"),
    ("/e/a%e9", "/enc/a%e9"),            # escapes keep their case ...
    ("/p/a%e9", "/plain/a%E9"),          # ... where an unmapped rule re-encodes
    ("/e/%7Efoo", "/enc/~foo"),          # unreserved characters are decoded first
    ("/e/./a/../b", "/enc/b"),           # dot segments are resolved first
    ("/e/a/%2e%2e/b", "/enc/b"),
    ("/e/a;b%3Bc", "/enc/a;b%3Bc"),
    ("/a%20b/x", "/sp/x"),               # the path is compared encoded
    ("/order/x", "/enc-second/x"),       # mapped rules go before all others
    ("/x/y", "/xenc/y"),                 # an unmapped ! does not stop them
    ("/y/a", "/y-plain/a"),              # a mapped ! ends only the mapped rules
    ("/m/a%20b/c%3Fd?z", "/m/a%20b/c%3Fd?z"),
    ("/n/a%20b", "/nn/n/a%20b"),         # no $n: the whole encoded path is appended
    ("/n/a%e9", "/nn/n/a%e9"),
    ("/m/a%e9?x", "/m/a%e9?x"),
])
def test_encoded_mapping_table(tmp_path, target, expected):
    assert backend(router_for(tmp_path, ENCODED), target) == expected


def test_encoded_slash_kept_with_nodecode(tmp_path):
    r = router_for(tmp_path, ENCODED)
    assert backend(r, "/e/x%2Fy", EncodedSlashes.NO_DECODE) == "/enc/x%2Fy"
    assert backend(r, "/e/x%2fy", EncodedSlashes.ON) == "/enc/x%2fy"


LOCATIONS = """
ProxyPass /s/ http://b/back/ mapping=servlet
<Location /le>
    ProxyPass http://b/le mapping=encoded
</Location>
ProxyPass /le http://b/server-enc-le mapping=encoded
<Location /lp>
    ProxyPass http://b/lp
</Location>
ProxyPass /lp http://b/lp-server-enc mapping=encoded
<Location /s/ploc>
    ProxyPass http://b/ploc
</Location>
<Location /ls>
    ProxyPass http://b/ls mapping=servlet
</Location>
<LocationMatch ^/lm/>
    ProxyPassMatch http://b/lmenc mapping=encoded
</LocationMatch>
<Location /s/deny/b>
    ProxyPassReverse http://b/deny
</Location>
<Location /ls/deny>
    ProxyPassReverse http://b/lsdeny
</Location>
"""


@pytest.mark.parametrize(("target", "expected"), [
    ("/le/x%e9", "/le/x%e9"),            # a Location's mapped rule goes first
    ("/lp/x", "/lp-server-enc/x"),       # a host's mapped rule beats a Location's unmapped one
    ("/s/ploc/y", "/back/ploc/y"),
    ("/s/ploc;x/y", "/back/ploc;x/y"),
    ("/ls/a;x/..;y/b", "/ls/b"),
    ("/ls;x/a", None),                   # the Location itself does not match /ls;x
    ("/lm/x%e9", "/lmenc/lm/x%e9"),
])
def test_mapped_rules_in_locations(tmp_path, target, expected):
    assert backend(router_for(tmp_path, LOCATIONS), target) == expected


@pytest.mark.parametrize(("path", "location"), [
    ("/s/deny;x/b", "/s/deny/b"),
    ("/s/deny/b;y", "/s/deny/b"),
    ("/s/a;q/..;r/deny;x/b", "/s/deny/b"),
    ("/ls/a/..;x/deny/z", "/ls/deny"),
])
def test_servlet_rule_shows_locations_its_normalised_path(tmp_path, path, location):
    r = router_for(tmp_path, LOCATIONS)
    assert location in [loc.path for loc, _ in r.locations_for(path)]


def test_locations_keep_the_path_when_no_servlet_rule_takes_it(tmp_path):
    r = router_for(tmp_path, LOCATIONS + "ProxyPass /o/ http://b/o/\n")
    assert [loc.path for loc, _ in r.locations_for("/ls;x/deny")] == []
    # the first mapped rule that matches decides, and it is not a servlet rule here
    r = router_for(tmp_path, "ProxyPass /s/ http://b/e/ mapping=encoded\n" + LOCATIONS)
    assert [loc.path for loc, _ in r.locations_for("/s/deny;x/b")] == []
    # a servlet exclusion renames nothing
    r = router_for(tmp_path, "ProxyPass /s/ ! mapping=servlet\n" + LOCATIONS)
    assert [loc.path for loc, _ in r.locations_for("/s/deny;x/b")] == []


@pytest.mark.parametrize(("raw", "expected"), [
    ("/a%20b/%7e%41", "/a%20b/~A"),
    ("/a%e9%2F%2f", "/a%e9%2F%2f"),
    ("//a///b/", "/a/b/"),
    ("/a/./b/%2E%2e/c", "/a/c"),
    ("/a;x/../b", "/b"),
])
def test_encoded_path(raw, expected):
    assert encoded_path(raw) == expected
