"""The manager's ``?xml=1`` view (httpd's ``<httpd:manager>`` document, §13.3) and its
read-only health-check columns (§13.1), over real sockets against a running portico."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from tests.admin.managerkit import MANAGER_ROUTES
from tests.support.idservers import IdServers
from tests.support.lbconf import start_balanced
from tests.support.proxy import server_kind

pytestmark = pytest.mark.skipif(server_kind() != "portico", reason="portico's own handlers")

CONF = """\
<Proxy "balancer://lb">
    BalancerMember {{a}} route=ra connectiontimeout=3
    BalancerMember {{b}} route=r<b>&amp hcmethod=GET hcuri=/health hcinterval=2 hcpasses=2 hcfails=3
    ProxySet growth=1 stickysession=JSESSIONID maxattempts=1
</Proxy>
""" + MANAGER_ROUTES
NS = {"httpd": "http://httpd.apache.org"}


def test_xml_view_is_httpds_document(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        url = proxy.url + "/balancer-manager"
        nonce = httpx.get(url + "/api/balancers/lb").json()["nonce"]
        r = httpx.get(url, params={"xml": "1"}, headers={"Referer": url}, timeout=10)
        # without a Referer naming this server httpd ignores xml=1: the HTML page
        plain = httpx.get(url, params={"xml": "1"}, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    assert plain.headers["content-type"].startswith("text/html")
    root = ET.fromstring(r.content)
    assert root.tag == "{http://httpd.apache.org}manager"
    (balancer,) = root.findall("httpd:balancers/httpd:balancer", NS)

    def text(node: ET.Element, name: str) -> str | None:
        return node.findtext(f"httpd:{name}", namespaces=NS)

    assert [text(balancer, k) for k in ("name", "nonce", "stickysession", "nofailover",
                                         "timeout", "maxattempts", "lbmethod",
                                         "scolonpathdelim")] == [
        "balancer://lb", nonce, "JSESSIONID", "Off", "0", "1", "byrequests", "Off"]
    workers = balancer.findall("httpd:workers/httpd:worker", NS)
    assert [text(w, "name") for w in workers] == [servers.url("a"), servers.url("b")]
    first, second = workers
    assert [child.tag.split("}")[1] for child in first][:9] == [
        "name", "scheme", "hostname", "loadfactor", "port", "min", "smax", "max", "ttl"]
    assert (text(first, "scheme"), text(first, "hostname"), text(first, "port")) == (
        "http", "127.0.0.1", str(servers.port("a")))
    assert text(first, "loadfactor") == "1.00" and text(first, "route") == "ra"
    assert text(first, "status") == "Init Ok"
    assert text(first, "connectiontimeout") == "3000"   # set in the config: shown
    assert first.find("httpd:timeout", NS) is None       # not set: left out, as in httpd
    assert text(second, "route") == "r<b>&amp"           # escaped, so it parses back


def test_health_check_settings_shown_read_only(tmp_path: Path) -> None:
    with IdServers(["a", "b"]) as servers, start_balanced(CONF, tmp_path, servers) as proxy:
        url = proxy.url + "/balancer-manager"
        page = httpx.get(url, timeout=10).text
        nonce = httpx.get(url + "/api/balancers/lb").json()["nonce"]
        # httpd's hcheck edit fields are accepted but change nothing: the scoreboard has no
        # room for them, the config's values stay
        r = httpx.post(url, data={"b": "balancer://lb", "w": servers.url("b"), "nonce": nonce,
                                  "w_hi": "500", "w_hp": "7", "w_hm": "HEAD"},
                       headers={"Referer": url}, timeout=10)
        after = httpx.get(url, timeout=10).text
    for header in ("HC Method", "HC Interval (ms)", "Passes", "Fails", "HC uri", "HC Expr"):
        assert f"<th>{header}</th>" in page
    # the live counts in brackets may move if a check already ran: match any number
    checked = r"<td>GET</td><td>2000</td><td>2 \(\d+\)</td><td>3 \(\d+\)</td><td>/health</td>"
    assert re.search(checked, page)
    assert "<td>NONE</td><td>30000</td><td>1 (0)</td><td>1 (0)</td><td>-</td>" in page
    assert "not editable here" in page
    assert r.status_code == 200
    assert re.search(checked, after)
