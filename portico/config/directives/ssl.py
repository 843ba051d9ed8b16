"""mod_ssl's SSLProxy* directives: how portico talks TLS to https backends (§15.11).

httpd also allows them inside <Proxy> (2.4.30+); portico does not yet keep per-worker TLS
settings, so there they are refused rather than silently dropped.

Certificate files and cipher lists are loaded into a throwaway SSLContext here, at load: a file
OpenSSL cannot use is a config error naming its line, not a failure at the first https request
(the run-time context is built by portico.upstream.connect from the same settings).
"""

from __future__ import annotations

__all__ = ["TABLE"]

import os
import re
import ssl
from collections.abc import Callable

from portico.config.build import BuildContext
from portico.config.directives.common import flag, integer
from portico.config.registry import Context, DirectiveTable
from portico.config.tree import Node

TABLE = DirectiveTable("ssl")

SVP = Context.SERVER | Context.VHOST | Context.PROXY

_VERIFY = ("none", "optional", "require", "optional_no_ca")
_PROTOCOL = re.compile(r"^[+-]?(all|sslv3|tlsv1|tlsv1\.1|tlsv1\.2|tlsv1\.3)$", re.IGNORECASE)


def _set(ctx: BuildContext, field: str, value: object) -> None:
    if ctx.scope.kind is Context.PROXY:
        raise ctx.error("SSLProxy* inside <Proxy> (per-backend TLS settings) is not "
                        "supported yet; set it at server or <VirtualHost> level")
    ctx.server.tls[field] = value


def _flag(name: str, field: str) -> None:
    @TABLE.directive(name, SVP)
    def handler(ctx: BuildContext, node: Node) -> None:
        _set(ctx, field, flag(ctx, node.args[0]))


_flag("SSLProxyEngine", "engine")
_flag("SSLProxyCheckPeerName", "check_peer_name")
_flag("SSLProxyCheckPeerCN", "check_peer_cn")
_flag("SSLProxyCheckPeerExpire", "check_peer_expire")


def _no_password() -> bytes:
    # An encrypted key would make OpenSSL prompt on the terminal; httpd needs proxy client
    # keys unencrypted too, so an empty answer makes loading fail instead.
    return b""


def _check_certificates(path: str) -> str | None:
    """Why ``path`` is not a PEM file of certificates (CA or chain file), or None."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        return f"{path} holds no usable PEM certificate ({exc.reason or exc})"
    except (OSError, ValueError) as exc:
        return f"{path} cannot be read: {exc}"
    return None


def _check_machine_certificate(path: str) -> str | None:
    """Why ``path`` is not a PEM certificate followed by its unencrypted private key."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(path, password=_no_password)
    except ssl.SSLError as exc:
        try:
            with open(path, "rb") as f:
                text = f.read()
        except OSError as read_exc:
            return f"{path} cannot be read: {read_exc}"
        if b"-----BEGIN CERTIFICATE-----" not in text:
            return f"{path} holds no PEM certificate"
        if b"PRIVATE KEY-----" not in text:
            return (f"{path} holds no private key: the client certificate's key must be in "
                    "the same file")
        if b"ENCRYPTED" in text:
            return f"{path}: the private key is encrypted; it must be stored unencrypted"
        return f"{path} cannot be used as a client certificate ({exc.reason or exc})"
    except (OSError, ValueError) as exc:
        return f"{path} cannot be read: {exc}"
    return None


def _path(name: str, field: str, directory: bool,
          check: Callable[[str], str | None] | None = None) -> None:
    @TABLE.directive(name, SVP)
    def handler(ctx: BuildContext, node: Node) -> None:
        path = ctx.state.resolve(node.args[0])
        exists = os.path.isdir(path) if directory else os.path.isfile(path)
        if not exists:
            kind = "directory" if directory else "file"
            raise ctx.error(f"{path} does not exist or is not a {kind}")
        problem = check(path) if check is not None else None
        if problem is not None:
            raise ctx.error(problem)
        _set(ctx, field, path)


_path("SSLProxyCACertificateFile", "ca_certificate_file", directory=False,
      check=_check_certificates)
_path("SSLProxyCACertificatePath", "ca_certificate_path", directory=True)
_path("SSLProxyMachineCertificateFile", "machine_certificate_file", directory=False,
      check=_check_machine_certificate)
_path("SSLProxyMachineCertificateChainFile", "machine_certificate_chain_file", directory=False,
      check=_check_certificates)


@TABLE.directive("SSLProxyVerify", SVP)
def _verify(ctx: BuildContext, node: Node) -> None:
    value = node.args[0].lower()
    if value not in _VERIFY:
        raise ctx.error(f"expects one of {', '.join(_VERIFY)}, got {node.args[0]!r}")
    _set(ctx, "verify", value)


@TABLE.directive("SSLProxyVerifyDepth", SVP)
def _verify_depth(ctx: BuildContext, node: Node) -> None:
    _set(ctx, "verify_depth", integer(ctx, node.args[0], 0))


@TABLE.directive("SSLProxyProtocol", SVP, args=(1, None))
def _protocol(ctx: BuildContext, node: Node) -> None:
    for word in node.args:
        if not _PROTOCOL.match(word):
            raise ctx.error(f"{word!r} is not a protocol (all, SSLv3, TLSv1, TLSv1.1, "
                            "TLSv1.2, TLSv1.3, with an optional + or -)")
    _set(ctx, "protocol", " ".join(node.args))


@TABLE.directive("SSLProxyCipherSuite", SVP, args=(1, 2))
def _cipher_suite(ctx: BuildContext, node: Node) -> None:
    if len(node.args) == 1:
        _set(ctx, "cipher_suite", _ciphers(ctx, node.args[0]))
        return
    protocol, spec = node.args
    if protocol.upper() == "SSL":
        _set(ctx, "cipher_suite", _ciphers(ctx, spec))
    elif protocol.lower() == "tlsv1.3":
        _set(ctx, "cipher_suite_tls13", spec)
    else:
        raise ctx.error(f"protocol must be SSL or TLSv1.3, got {protocol!r}")


def _ciphers(ctx: BuildContext, spec: str) -> str:
    """``spec`` if OpenSSL can select at least one cipher from it."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).set_ciphers(spec)
    except ssl.SSLError:
        raise ctx.error(f"no cipher can be selected from {spec!r}") from None
    return spec
