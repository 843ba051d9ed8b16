"""Backend transports: https origins with SSLProxy* verification (§15.11) and unix-socket
origins (§15.4)."""

from __future__ import annotations

import datetime
import json
import ssl

import pytest
import trustme

from tests.e2e.rawhttp import RawConn
from tests.support.origin import Origin
from tests.support.proxy import Portico, server_kind

# httpd 2.4.71 answers 500 "Error during SSL Handshake" when backend verification fails;
# portico treats it as any other backend failure, 502 (DESIGN rule 3). See docs/compat.md.
TLS_FAILURE = 500 if server_kind() == "httpd" else 502

TLS_CONF = """
SSLProxyEngine On
SSLProxyVerify require
SSLProxyCACertificateFile {{ca}}
SSLProxyCheckPeerName {{check_name}}
SSLProxyCheckPeerCN {{check_name}}
ProxyPass /tls {{tls}}
"""


def get(proxy: Portico, target: str):
    with RawConn(proxy.port) as conn:
        return conn.request("GET", target)


def start_tls(proxy_factory, origin, ca, check_name: str = "on") -> Portico:
    # By name: certificate name checks are about DNS names (localhost is 127.0.0.1 only here).
    url = f"https://localhost:{origin.port}"
    return proxy_factory(TLS_CONF, tls=url, ca=ca, check_name=check_name)


def test_https_origin_verified_with_the_right_ca(proxy_factory, tls_origin, tls_ca_file):
    p = start_tls(proxy_factory, tls_origin, tls_ca_file)
    resp = get(p, "/tls/echo/secure")
    assert resp.status == 200
    assert json.loads(resp.body)["target"] == "/echo/secure"
    assert tls_origin.requests[0].target == "/echo/secure"


def test_https_origin_with_an_untrusted_ca_fails(proxy_factory, tls_origin, other_ca_file):
    p = start_tls(proxy_factory, tls_origin, other_ca_file)
    assert get(p, "/tls/echo").status == TLS_FAILURE
    assert tls_origin.requests == []


def test_https_origin_with_a_mismatched_name_fails(
        proxy_factory, tls_origin_wrong_name, tls_ca_file):
    p = start_tls(proxy_factory, tls_origin_wrong_name, tls_ca_file)
    assert get(p, "/tls/echo").status == TLS_FAILURE
    assert tls_origin_wrong_name.requests == []


def test_mismatched_name_accepted_when_name_check_is_off(
        proxy_factory, tls_origin_wrong_name, tls_ca_file):
    p = start_tls(proxy_factory, tls_origin_wrong_name, tls_ca_file, check_name="off")
    assert get(p, "/tls/echo").status == 200


def test_unix_socket_origin(proxy_factory, unix_origin):
    p = proxy_factory("ProxyPass /u/ unix:{{sock}}|http://localhost/\n",
                      sock=unix_origin.unix_path)
    resp = get(p, "/u/echo/over-unix?q=1")
    assert resp.status == 200
    (rec,) = unix_origin.wait_for_requests(1)
    assert rec.target == "/echo/over-unix?q=1"
    assert rec.header("Host") == "localhost"  # the nominal host after "|"


PRESERVE_CONF = """
SSLProxyEngine On
SSLProxyVerify require
SSLProxyCACertificateFile {{ca}}
ProxyPreserveHost On
ProxyPass /tls {{tls}}
"""


def test_a_pooled_tls_connection_serves_only_its_own_server_name(
        proxy_factory, tls_origin, tls_ca_file):
    """With ProxyPreserveHost the server name (SNI and the certificate check) follows the
    client's Host: a connection checked for "localhost" must not carry a request for another
    name, whose check would fail (§4.1)."""
    url = f"https://localhost:{tls_origin.port}"
    p = proxy_factory(PRESERVE_CONF, tls=url, ca=tls_ca_file)
    with RawConn(p.port) as conn:
        assert conn.request("GET", "/tls/echo/a", host="localhost").status == 200
    with RawConn(p.port) as conn:   # the pool now holds a connection made for "localhost"
        assert conn.request("GET", "/tls/echo/b", host="evil.example").status == TLS_FAILURE
    with RawConn(p.port) as conn:
        assert conn.request("GET", "/tls/echo/c", host="localhost").status == 200
    assert [r.target for r in tls_origin.requests] == ["/echo/a", "/echo/c"]


# -- mod_ssl's own checks: names and dates, whatever SSLProxyVerify says ---------------------
def tls_origin_with(ca: trustme.CA, *names: str, **kw) -> Origin:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names, **kw).configure_cert(ctx)
    return Origin(ssl_context=ctx)


EXPIRED = {"not_before": datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
           "not_after": datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC)}

UNVERIFIED_CONF = """
SSLProxyEngine On
{{extra}}
ProxyPass /tls {{tls}}
"""


def start_unverified(proxy_factory, origin: Origin, extra: str = "",
                     host: str = "localhost") -> Portico:
    """SSLProxyVerify none (httpd's default): the chain is not verified."""
    return proxy_factory(UNVERIFIED_CONF, tls=f"https://{host}:{origin.port}", extra=extra)


def test_without_verification_the_name_is_still_checked(proxy_factory, tls_ca):
    with tls_origin_with(tls_ca, "wrong.example") as origin:
        p = start_unverified(proxy_factory, origin)
        assert get(p, "/tls/echo").status == TLS_FAILURE
        assert origin.requests == []


def test_without_verification_a_matching_name_passes(proxy_factory, tls_ca):
    with tls_origin_with(tls_ca, "localhost") as origin:
        p = start_unverified(proxy_factory, origin)
        assert get(p, "/tls/echo/ok").status == 200
        assert [r.target for r in origin.requests] == ["/echo/ok"]


def test_without_verification_an_expired_certificate_fails(proxy_factory, tls_ca):
    with tls_origin_with(tls_ca, "localhost", **EXPIRED) as origin:
        p = start_unverified(proxy_factory, origin)
        assert get(p, "/tls/echo").status == TLS_FAILURE
        assert origin.requests == []


def test_check_peer_expire_off_accepts_an_expired_certificate_without_verification(
        proxy_factory, tls_ca):
    with tls_origin_with(tls_ca, "localhost", **EXPIRED) as origin:
        p = start_unverified(proxy_factory, origin, "SSLProxyCheckPeerExpire off")
        assert get(p, "/tls/echo").status == 200


def test_the_common_name_counts_as_well_as_the_alt_names(proxy_factory, tls_ca, tls_ca_file):
    # OpenSSL ignores the CN when there are DNS alt names; mod_ssl compares both.
    with tls_origin_with(tls_ca, "other.example", common_name="localhost") as origin:
        p = start_tls(proxy_factory, origin, tls_ca_file)
        assert get(p, "/tls/echo").status == 200


def test_with_the_name_check_off_only_an_explicit_cn_check_remains(proxy_factory, tls_ca):
    # Checked against httpd 2.4: SSLProxyCheckPeerName off alone checks nothing; with
    # SSLProxyCheckPeerCN on as well, the CN must be the host.
    with tls_origin_with(tls_ca, "localhost", common_name="other.example") as origin:
        p = start_unverified(proxy_factory, origin, "SSLProxyCheckPeerName off")
        assert get(p, "/tls/echo").status == 200
        p = start_unverified(proxy_factory, origin,
                             "SSLProxyCheckPeerName off\nSSLProxyCheckPeerCN on")
        assert get(p, "/tls/echo").status == TLS_FAILURE
    with tls_origin_with(tls_ca, "other.example", common_name="localhost") as origin:
        p = start_unverified(proxy_factory, origin,
                             "SSLProxyCheckPeerName off\nSSLProxyCheckPeerCN on")
        assert get(p, "/tls/echo").status == 200


def test_cn_check_off_alone_turns_the_name_check_off(proxy_factory, tls_ca):
    # The older way to turn checks off still works in httpd 2.4 (checked against it).
    with tls_origin_with(tls_ca, "wrong.example") as origin:
        p = start_unverified(proxy_factory, origin, "SSLProxyCheckPeerCN off")
        assert get(p, "/tls/echo").status == 200


def test_an_ip_address_backend_is_checked_against_the_certificate(proxy_factory, tls_ca):
    with tls_origin_with(tls_ca, "wrong.example") as origin:
        p = start_unverified(proxy_factory, origin, host="127.0.0.1")
        assert get(p, "/tls/echo").status == TLS_FAILURE
    with tls_origin_with(tls_ca, "x.example", common_name="127.0.0.1") as origin:
        p = start_unverified(proxy_factory, origin, host="127.0.0.1")
        assert get(p, "/tls/echo").status == 200


def test_an_ip_address_alt_name_names_an_ip_address_backend(proxy_factory, tls_ca):
    # httpd compares an address only with the DNS names and CN, so it refuses a certificate
    # issued for the address itself; portico accepts it (docs/compat.md).
    with tls_origin_with(tls_ca, "127.0.0.1") as origin:
        p = start_unverified(proxy_factory, origin, host="127.0.0.1")
        assert get(p, "/tls/echo").status == (TLS_FAILURE if server_kind() == "httpd" else 200)


# -- a client certificate issued by an intermediate CA ------------------------------------
CLIENT_CERT_CONF = """
SSLProxyEngine On
SSLProxyMachineCertificateFile {{machine}}
{{chain}}
ProxyPass /tls {{tls}}
"""


def test_the_chain_file_goes_with_the_client_certificate(proxy_factory, tls_ca, tmp_path):
    # The backend trusts only the root CA; the client certificate comes from an
    # intermediate, so the backend can check it only if the proxy sends the intermediate
    # too (SSLProxyMachineCertificateChainFile).
    root = trustme.CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("client.test")
    machine = tmp_path / "client.pem"
    machine.write_bytes(leaf.cert_chain_pems[0].bytes() + leaf.private_key_pem.bytes())
    chain = tmp_path / "chain.pem"
    chain.write_bytes(intermediate.cert_pem.bytes())
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("localhost").configure_cert(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    root.configure_trust(ctx)
    with Origin(ssl_context=ctx) as origin:
        url = f"https://localhost:{origin.port}"
        p = proxy_factory(CLIENT_CERT_CONF, tls=url, machine=machine,
                          chain=f"SSLProxyMachineCertificateChainFile {chain}")
        assert get(p, "/tls/echo/chained").status == 200
        without = proxy_factory(CLIENT_CERT_CONF, tls=url, machine=machine, chain="")
        assert get(without, "/tls/echo/unchained").status == 502   # httpd: 502 too
        assert [r.target for r in origin.requests] == ["/echo/chained"]


# -- SSLProxyVerifyDepth: CA certificates above the backend's, the trust anchor included ----
DEPTH_CONF = """
SSLProxyEngine On
SSLProxyVerify {{verify}}
SSLProxyCACertificateFile {{ca}}
{{depth}}
ProxyPass /tls {{tls}}
"""


@pytest.mark.parametrize(("intermediates", "depth", "verify", "status"), [
    (0, "", "require", 200),                         # the default depth, 1: root → leaf
    (1, "", "require", TLS_FAILURE),                 # root → intermediate → leaf: 2
    (1, "SSLProxyVerifyDepth 2", "require", 200),
    (2, "SSLProxyVerifyDepth 2", "require", TLS_FAILURE),
    (0, "SSLProxyVerifyDepth 0", "require", TLS_FAILURE),
    (2, "", "none", 200),                            # no verification, no depth
])
def test_verify_depth_counts_the_ca_certificates_of_the_chain(
        proxy_factory, tmp_path, intermediates, depth, verify, status):
    # Checked against httpd 2.4, which gives these results (500 where portico gives 502).
    root = trustme.CA()
    issuer = root
    for _ in range(intermediates):
        issuer = issuer.create_child_ca()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issuer.issue_cert("localhost").configure_cert(ctx)   # the leaf and its intermediates
    ca = tmp_path / "root.pem"
    root.cert_pem.write_to_path(str(ca))
    with Origin(ssl_context=ctx) as origin:
        p = proxy_factory(DEPTH_CONF, tls=f"https://localhost:{origin.port}", ca=ca,
                          depth=depth, verify=verify)
        assert get(p, "/tls/echo").status == status
