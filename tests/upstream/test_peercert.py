"""mod_ssl's own checks of a backend certificate (portico/upstream/peercert.py), on real
certificates issued by a throwaway CA (trustme)."""

from __future__ import annotations

import datetime
import ssl
import time

import pytest
import trustme

from portico.upstream.peercert import certificate_problem, read_certificate

NOW = time.time()


def der_of(ca: trustme.CA, *names: str, **kw) -> bytes:
    leaf = ca.issue_cert(*names, **kw)
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


def problem(der: bytes, host: str, *, name: bool | None = None, cn: bool | None = None,
            expire: bool = True, now: float = NOW) -> str | None:
    """``name``/``cn``: SSLProxyCheckPeerName/CN, None when not set."""
    return certificate_problem(der, host, check_name=name, check_cn=cn, check_expire=expire,
                               now=now)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_reads_names_and_dates(ca):
    start = datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    end = datetime.datetime(2061, 6, 7, 8, 9, 10, tzinfo=datetime.UTC)
    cert = read_certificate(der_of(ca, "a.example", "*.b.example", "127.0.0.1",
                                   common_name="cn.example", not_before=start, not_after=end))
    assert cert.dns_names == ("a.example", "*.b.example")
    assert cert.ip_addresses == ("127.0.0.1",)
    assert cert.common_names == ("cn.example",)
    assert cert.not_before == start.timestamp()   # UTCTime (before 2050)
    assert cert.not_after == end.timestamp()      # GeneralizedTime (2050 on)


@pytest.mark.parametrize(("host", "ok"), [
    ("a.example", True),
    ("A.Example", True),          # names compare without case
    ("a.example.", True),         # a trailing dot is the same name
    ("x.b.example", True),        # the wildcard stands for one label
    ("b.example", False),         # ... not for none
    ("y.x.b.example", False),     # ... nor for two
    ("cn.example", True),         # httpd compares the CN as well as the SANs
    ("other.example", False),
])
def test_name_check_follows_mod_ssl(ca, host, ok):
    der = der_of(ca, "a.example", "*.b.example", common_name="cn.example")
    result = problem(der, host)
    if ok:
        assert result is None
    else:
        assert result == (f"the certificate does not name {host.lower()} "
                          "(a.example, *.b.example, cn.example)")


def test_an_ip_address_backend_is_compared_with_names_and_addresses(ca):
    der = der_of(ca, "a.example")
    assert problem(der, "10.1.2.3") == "the certificate does not name 10.1.2.3 (a.example)"
    # As text with the CN (as httpd does), and with the iPAddress alt names (httpd does not).
    assert problem(der_of(ca, "a.example", common_name="10.1.2.3"), "10.1.2.3") is None
    assert problem(der_of(ca, "10.1.2.3"), "10.1.2.3") is None
    assert problem(der_of(ca, "::1"), "[::1]") is None
    assert problem(der_of(ca, "::2"), "[::1]") is not None


@pytest.mark.parametrize(("name", "cn", "checked"), [
    (None, None, "names"),   # the default: SSLProxyCheckPeerName is on
    (True, None, "names"),
    (True, False, "names"),
    (None, True, "names"),
    (None, False, None),     # CN off with the name check not set: no check at all
    (False, None, None),
    (False, False, None),
    (False, True, "cn"),     # the name check off and CN on: the CN alone
])
def test_which_names_are_compared(ca, name, cn, checked):
    der = der_of(ca, "san.example", common_name="cn.example")
    by_san = problem(der, "san.example", name=name, cn=cn)
    by_cn = problem(der, "cn.example", name=name, cn=cn)
    other = problem(der, "other.example", name=name, cn=cn)
    if checked == "names":
        assert (by_san, by_cn) == (None, None)
        assert other is not None
    elif checked == "cn":
        assert by_san == "the certificate's CN is not san.example"
        assert (by_cn, other is not None) == (None, True)
    else:
        assert (by_san, by_cn, other) == (None, None, None)


def test_dates(ca):
    der = der_of(ca, "a.example",
                 not_before=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
                 not_after=datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC))
    in_2020 = datetime.datetime(2020, 6, 1, tzinfo=datetime.UTC).timestamp()
    assert problem(der, "a.example", now=in_2020) is None
    assert problem(der, "a.example") == "the certificate is expired"
    in_2019 = datetime.datetime(2019, 6, 1, tzinfo=datetime.UTC).timestamp()
    assert problem(der, "a.example", now=in_2019) == "the certificate is not valid yet"
    assert problem(der, "a.example", expire=False) is None   # SSLProxyCheckPeerExpire Off


def test_an_unreadable_certificate_fails_and_no_certificate_passes(ca):
    der = der_of(ca, "a.example")
    for broken in (der[:40], b"\x30\x03\x02\x01\x01", b"", b"\x04\x00"):
        result = problem(broken, "a.example")
        assert result is not None and result.startswith("unreadable certificate: ")
    assert problem(None, "a.example") is None   # type: ignore[arg-type]
    # Every check off: the certificate is not even read.
    assert problem(b"junk", "a.example", name=False, cn=False, expire=False) is None
