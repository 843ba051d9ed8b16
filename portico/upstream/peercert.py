"""The checks mod_ssl makes on a backend's certificate itself, whatever SSLProxyVerify says.

Why here and not in OpenSSL. httpd checks the backend certificate's dates
(SSLProxyCheckPeerExpire) and names (SSLProxyCheckPeerName, else SSLProxyCheckPeerCN) in its
own code after the handshake, so they apply even with ``SSLProxyVerify none``, httpd's
default: a config that only says ``SSLProxyEngine On`` still refuses a backend whose
certificate is expired or names another host. OpenSSL checks names and dates only while it
verifies the chain, so portico reads the certificate (DER, as the handshake delivered it) and
makes the same checks httpd makes:

- names: the subjectAltName dNSName entries and every subject commonName, compared without
  case; ``*.example.com`` stands for exactly one leftmost label. An IP address backend is
  compared the same way, as text, and also (where httpd does not) with the iPAddress alt
  names, so a certificate issued for the address itself passes.
- which names: SSLProxyCheckPeerName decides when it is set. Off, the subject's commonName
  alone is compared, and only if SSLProxyCheckPeerCN is set On. Not set, the names are
  checked unless SSLProxyCheckPeerCN is set Off (the older way to turn checks off). This is
  what httpd 2.4 does (checked against it), which its manual does not quite say.
- dates: now must lie between notBefore and notAfter (SSLProxyCheckPeerExpire).
- depth: when the chain is verified (SSLProxyVerify require or optional), it may hold at
  most SSLProxyVerifyDepth CA certificates above the backend's own, trust anchor included:
  httpd's default, 1, accepts a certificate issued by a trusted root directly, not one
  issued through an intermediate (checked against httpd 2.4). OpenSSL's own depth setting
  is not reachable from Python, so the chain OpenSSL verified is counted afterwards.

The reader below walks only the parts of X.509 it needs; anything it cannot read fails the
check (a certificate we cannot read is not one we accept).
"""

from __future__ import annotations

__all__ = ["PeerCertificate", "certificate_problem", "chain_depth", "read_certificate",
           "tls_problem"]

import calendar
import ipaddress
import ssl
from dataclasses import dataclass

from portico.config.model import TLSClientSettings

_SEQUENCE = 0x30
_SET = 0x31
_OID = 0x06
_OCTET_STRING = 0x04
_BOOLEAN = 0x01
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_VERSION = 0xA0          # [0] EXPLICIT
_EXTENSIONS = 0xA3       # [3] EXPLICIT
_DNS_NAME = 0x82         # GeneralName dNSName, [2] IMPLICIT IA5String
_IP_ADDRESS = 0x87       # GeneralName iPAddress, [7] IMPLICIT OCTET STRING
_COMMON_NAME = bytes((0x55, 0x04, 0x03))          # 2.5.4.3
_SUBJECT_ALT_NAME = bytes((0x55, 0x1D, 0x11))     # 2.5.29.17
_TEXT_TAGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1",
              0x1E: "utf-16-be", 0x1C: "utf-32-be"}


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """What the checks need from a certificate."""

    dns_names: tuple[str, ...]      # subjectAltName dNSName entries
    ip_addresses: tuple[str, ...]   # subjectAltName iPAddress entries, in ipaddress's form
    common_names: tuple[str, ...]   # subject commonName attributes
    not_before: float               # seconds since the epoch (UTC)
    not_after: float


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at ``pos``."""
    if pos + 2 > end:
        raise ValueError("truncated element")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise ValueError("bad length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > end:
        raise ValueError("element runs past its container")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items = []
    while start < end:
        item = _tlv(data, start, end)
        items.append(item)
        start = item[2]
    return items


def _expect(item: tuple[int, int, int], tag: int) -> tuple[int, int, int]:
    if item[0] != tag:
        raise ValueError(f"expected tag {tag:#x}, found {item[0]:#x}")
    return item


def _time(data: bytes, item: tuple[int, int, int]) -> float:
    tag, start, end = item
    text = data[start:end].decode("ascii")
    if not text.endswith("Z"):
        raise ValueError("certificate time not in UTC")
    if tag == _UTC_TIME:
        year = int(text[:2])
        text = str(year + (1900 if year >= 50 else 2000)) + text[2:]
    elif tag != _GENERALIZED_TIME:
        raise ValueError("not a time")
    digits = text[:-1].split(".")[0]
    if len(digits) == 12:   # seconds are optional in UTCTime
        digits += "00"
    if len(digits) != 14 or not digits.isdigit():
        raise ValueError("bad certificate time")
    fields = (int(digits[0:4]), int(digits[4:6]), int(digits[6:8]),
              int(digits[8:10]), int(digits[10:12]), int(digits[12:14]))
    return float(calendar.timegm((*fields, 0, 0, 0)))


def _text(data: bytes, item: tuple[int, int, int]) -> str:
    tag, start, end = item
    encoding = _TEXT_TAGS.get(tag)
    if encoding is None:
        raise ValueError(f"unexpected string type {tag:#x}")
    return data[start:end].decode(encoding)


def _common_names(data: bytes, name: tuple[int, int, int]) -> list[str]:
    found = []
    for rdn in _children(data, name[1], name[2]):
        for attribute in _children(data, _expect(rdn, _SET)[1], rdn[2]):
            oid, value = _children(data, _expect(attribute, _SEQUENCE)[1], attribute[2])[:2]
            if data[oid[1]:oid[2]] == _COMMON_NAME:
                found.append(_text(data, value))
    return found


def _alt_names(data: bytes, extensions: tuple[int, int, int]) -> tuple[list[str], list[str]]:
    """The dNSName and iPAddress entries of the subjectAltName extension."""
    dns: list[str] = []
    ips: list[str] = []
    (sequence,) = _children(data, extensions[1], extensions[2])
    for extension in _children(data, _expect(sequence, _SEQUENCE)[1], sequence[2]):
        parts = _children(data, _expect(extension, _SEQUENCE)[1], extension[2])
        if data[parts[0][1]:parts[0][2]] != _SUBJECT_ALT_NAME:
            continue
        value = _expect(parts[-1], _OCTET_STRING)
        (names,) = _children(data, value[1], value[2])
        for tag, start, end in _children(data, _expect(names, _SEQUENCE)[1], names[2]):
            if tag == _DNS_NAME:
                dns.append(data[start:end].decode("ascii"))
            elif tag == _IP_ADDRESS and end - start in (4, 16):
                ips.append(str(ipaddress.ip_address(data[start:end])))
    return dns, ips


def read_certificate(der: bytes) -> PeerCertificate:
    """The names and dates of a DER certificate; ValueError if it cannot be read."""
    try:
        cert = _expect(_tlv(der, 0, len(der)), _SEQUENCE)
        tbs = _expect(_children(der, cert[1], cert[2])[0], _SEQUENCE)
        fields = _children(der, tbs[1], tbs[2])
        if fields and fields[0][0] == _VERSION:
            fields = fields[1:]
        # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
        validity = _expect(fields[3], _SEQUENCE)
        not_before, not_after = _children(der, validity[1], validity[2])[:2]
        subject = _expect(fields[4], _SEQUENCE)
        extensions = [f for f in fields[6:] if f[0] == _EXTENSIONS]
        dns, ips = _alt_names(der, extensions[0]) if extensions else ([], [])
        return PeerCertificate(
            dns_names=tuple(dns), ip_addresses=tuple(ips),
            common_names=tuple(_common_names(der, subject)),
            not_before=_time(der, not_before), not_after=_time(der, not_after))
    except (IndexError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"unreadable certificate: {exc}") from None


def _name_matches(pattern: str, host: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    if pattern == host:
        return True
    if pattern.startswith("*."):
        dot = host.find(".")
        return dot > 0 and host[dot:] == pattern[1:]
    return False


def _address(host: str) -> str | None:
    """``host`` in ipaddress's form when it is an IP address, else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def certificate_problem(der: bytes | None, host: str, *, check_name: bool | None,
                        check_cn: bool | None, check_expire: bool, now: float) -> str | None:
    """Why the backend certificate ``der`` (for ``host``) fails mod_ssl's own checks, or None
    when it passes. ``check_name``/``check_cn``: SSLProxyCheckPeerName/CN, None when not set.
    No certificate at all passes (there is nothing to check; the handshake already failed if
    verification required one)."""
    by_name = check_name if check_name is not None else check_cn is not False
    by_cn = not by_name and check_cn is True
    if der is None or not (by_name or by_cn or check_expire):
        return None
    try:
        cert = read_certificate(der)
    except ValueError as exc:
        return str(exc)
    if check_expire and not cert.not_before <= now <= cert.not_after:
        return "the certificate is expired" if now > cert.not_after \
            else "the certificate is not valid yet"
    host = host.lower().rstrip(".")
    if not host:
        return None
    if by_name:
        address = _address(host)
        if address is not None and address in cert.ip_addresses:
            return None
        if any(_name_matches(n, host) for n in (*cert.dns_names, *cert.common_names)):
            return None
        names = ", ".join((*cert.dns_names, *cert.ip_addresses, *cert.common_names))
        return f"the certificate does not name {host} ({names or 'no names'})"
    if by_cn and not any(cn.lower() == host for cn in cert.common_names):
        return f"the certificate's CN is not {host}"
    return None


def chain_depth(ssl_object: ssl.SSLObject) -> int | None:
    """How many CA certificates stand above the peer's in the chain OpenSSL verified (the
    trust anchor included); None when that cannot be known."""
    getter = getattr(ssl_object, "get_verified_chain", None)   # public from Python 3.13
    if getter is None:
        # The same method of the underlying _ssl object, there since Python 3.10.
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if getter is None:
        return None
    chain = getter()
    return len(chain) - 1 if chain else None


def tls_problem(ssl_object: ssl.SSLObject | None, host: str, tls: TLSClientSettings,
                now: float) -> str | None:
    """Why a backend's TLS connection fails the checks mod_ssl makes after the handshake
    (names, dates, and the chain's depth when it was verified), or None."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    problem = certificate_problem(der, host, check_name=tls.check_peer_name,
                                  check_cn=tls.check_peer_cn,
                                  check_expire=tls.check_peer_expire, now=now)
    if problem is None and der is not None and tls.verify.lower() in ("require", "optional"):
        depth = chain_depth(ssl_object)
        if depth is not None and depth > tls.verify_depth:
            problem = (f"the certificate chain has {depth} CA certificates, "
                       f"SSLProxyVerifyDepth allows {tls.verify_depth}")
    return problem
