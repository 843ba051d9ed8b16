"""URL mapping end to end: ProxyPass prefix rules (§2.1.1), ordering (§2.1.2), exclusions,
`<Location>`, ProxyPassMatch (§2.2), query strings and %-encoding (§2.1.6).

Every assertion is on what the origin received (its raw request target) or on the status
the client got when nothing should have been proxied.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.helpers import client, echoed, raw_get, seen_target
from tests.support.origin import Origin
from tests.support.proxy import Portico

CONF = """
ProxyPass /a {{o}}
ProxyPass /b/ {{o}}/
ProxyPass /c {{o}}/
ProxyPass /d/ http://e2e-nowhere.invalid

ProxyPass /first {{o}}/one
ProxyPass /first/deeper {{o}}/two

ProxyPass /ex/private !
ProxyPass /ex {{o}}/ex
ProxyPass /late {{o}}/late
ProxyPass /late/private !

ProxyPass /loc/private !
ProxyPass /loc {{o}}/server
<Location /loc>
    ProxyPass {{o}}/location
</Location>

ProxyPassMatch ^/m/(.*)\\.json$ {{o}}/json/$1
ProxyPassMatch ^/n/.*\\.txt$ {{o}}/base
ProxyPassMatch ^/opt/(a)?(b)$ {{o}}/opt/$1-$2
ProxyPassMatch ^/esc/(.*)$ {{o}}/esc/\\$1/$1
ProxyPassMatch ^/pm/private !
ProxyPassMatch ^/pm/(.*)$ {{o}}/pm/$1

<VirtualHost *:{{port}}>
    ServerName proxy.test
</VirtualHost>
<VirtualHost *:{{port}}>
    ServerName nodecode.test
    AllowEncodedSlashes NoDecode
</VirtualHost>
"""


@pytest.fixture(scope="module")
def proxy(module_origin: Origin, module_proxy_factory) -> Portico:
    return module_proxy_factory(CONF, o=module_origin.url)


@pytest.fixture
def http(proxy: Portico) -> Iterator:
    with client(proxy) as c:
        yield c


# §2.1.1, every row of the observed table ------------------------------------------------

@pytest.mark.parametrize(("target", "expected"), [
    ("/a", "/"),                               # empty remainder becomes "/"
    ("/a/x", "/x"),
    ("/c/x", "//x"),                           # url ends in / and remainder starts with /
    ("/a//x", "/x"),                           # slashes merged before matching
    ("/a/%7Efoo?x=%20y", "/~foo?x=%20y"),      # unreserved decoded, query verbatim
])
def test_prefix_table_forwarded(proxy, morigin, target, expected):
    assert seen_target(proxy, morigin, target) == expected


@pytest.mark.parametrize("target", ["/ax", "/b", "/a/x%2Fy"])
def test_prefix_table_not_proxied(proxy, morigin, target):
    # /ax and /b do not match on a segment boundary; %2F is refused (AllowEncodedSlashes Off).
    assert raw_get(proxy, target) == 404
    assert morigin.requests == []


def test_prefix_without_slash_glues_remainder_to_host(proxy, morigin):
    # "ProxyPass /d/ http://h" + "/d/x" gives http://hx: a name that cannot resolve -> 500.
    assert raw_get(proxy, "/d/x") == 500
    assert morigin.requests == []


def test_unmatched_path_is_404_from_proxy(proxy, morigin):
    assert raw_get(proxy, "/nowhere/at/all") == 404
    assert morigin.requests == []


def test_dot_segments_are_resolved_before_matching(proxy, morigin):
    assert seen_target(proxy, morigin, "/a/y/../x") == "/x"


# §2.1.2 ordering ------------------------------------------------------------------------

def test_first_matching_rule_wins_even_if_a_later_one_is_longer(proxy, morigin):
    assert seen_target(proxy, morigin, "/first/deeper/x") == "/one/deeper/x"


def test_exclusion_before_the_general_rule_stops_proxying(proxy, morigin):
    assert raw_get(proxy, "/ex/private/y") == 404
    assert morigin.requests == []
    assert seen_target(proxy, morigin, "/ex/public") == "/ex/public"


def test_exclusion_after_the_general_rule_has_no_effect(proxy, morigin):
    assert seen_target(proxy, morigin, "/late/private") == "/late/private"


def test_location_proxypass_is_tried_before_server_rules(proxy, morigin):
    # The server-level "/loc" rule and the "/loc/private !" exclusion both come first in the
    # file, yet the Location's ProxyPass wins for every URI under /loc.
    assert seen_target(proxy, morigin, "/loc/x") == "/location/x"
    morigin.reset()
    assert seen_target(proxy, morigin, "/loc/private") == "/location/private"


# §2.2 ProxyPassMatch ----------------------------------------------------------------------

def test_match_substitutes_groups_and_appends_query(proxy, morigin):
    assert seen_target(proxy, morigin, "/m/foo/bar.json?q=1") == "/json/foo/bar?q=1"


def test_match_without_groups_appends_whole_path(proxy, morigin):
    assert seen_target(proxy, morigin, "/n/x/y.txt?q=2") == "/base/n/x/y.txt?q=2"


def test_match_group_that_did_not_participate_is_empty(proxy, morigin):
    assert seen_target(proxy, morigin, "/opt/b") == "/opt/-b"


def test_match_backslash_escapes_dollar_and_is_removed(proxy, morigin):
    assert seen_target(proxy, morigin, "/esc/z") == "/esc/$1/z"


def test_match_exclusion(proxy, morigin):
    assert raw_get(proxy, "/pm/private") == 404
    assert seen_target(proxy, morigin, "/pm/other") == "/pm/other"
    assert morigin.requests[0].target == "/pm/other"


# Query strings and encoding --------------------------------------------------------------

def test_query_string_is_passed_verbatim(proxy, morigin):
    target = "/a/q?b=1&c=%20&d=%2F&e=a+b&&f"
    assert seen_target(proxy, morigin, target) == "/q?b=1&c=%20&d=%2F&e=a+b&&f"


def test_reserved_characters_stay_encoded(proxy, morigin):
    # %3F is "?" and %23 is "#": decoding them would change the meaning of the URL.
    assert seen_target(proxy, morigin, "/a/p%3Fq%23r") == "/p%3Fq%23r"


def test_encoded_space_is_reencoded(proxy, morigin):
    assert seen_target(proxy, morigin, "/a/sp%20ace") == "/sp%20ace"


def test_encoded_slash_kept_with_nodecode(proxy, morigin):
    assert seen_target(proxy, morigin, "/a/x%2Fy", host="nodecode.test") == "/x%2Fy"


def test_httpx_request_reaches_origin(http, morigin):
    echo = echoed(http.get("/a/plain", params={"k": "v"}))
    assert echo["target"] == "/plain?k=v"
    assert echo["method"] == "GET"
