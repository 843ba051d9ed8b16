"""Opening backend connections: TCP, unix sockets and TLS (SSLProxy* settings, §15.11, §4.1).

DNS answers are cached per worker for ``addressttl`` (-1: for the life of the process, like
httpd with reuse on), so the hot path never calls getaddrinfo.
"""

from __future__ import annotations

__all__ = ["Connector", "tls_context_for"]

import asyncio
import functools
import logging
import os
import re
import socket
import ssl
import tempfile
import time
from collections.abc import Callable

from portico.config.model import TLSClientSettings, WorkerSpec
from portico.errors import UpstreamError, UpstreamErrorKind
from portico.upstream.peercert import tls_problem

log = logging.getLogger("portico.proxy")

_PROTOCOL_VERSIONS = {
    "sslv3": ssl.TLSVersion.SSLv3,
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}


@functools.lru_cache(maxsize=64)
def tls_context_for(settings: TLSClientSettings) -> ssl.SSLContext:
    """One client SSLContext per distinct SSLProxy* combination (contexts are reusable)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    verify = settings.verify.lower()
    # Names and dates are checked after the handshake in every mode, as mod_ssl does
    # (upstream/peercert.py); OpenSSL verifies only the chain.
    ctx.check_hostname = False
    if verify in ("none", "optional_no_ca"):
        ctx.verify_mode = ssl.CERT_NONE
    else:
        if settings.ca_certificate_file or settings.ca_certificate_path:
            ctx.load_verify_locations(
                cafile=settings.ca_certificate_file, capath=settings.ca_certificate_path)
        else:
            ctx.load_default_certs()
        ctx.verify_mode = ssl.CERT_REQUIRED if verify == "require" else ssl.CERT_OPTIONAL
    if settings.machine_certificate_file:
        # An encrypted key must fail rather than make OpenSSL prompt on the terminal (the
        # config loader refuses one; this covers a file replaced since).
        if settings.machine_certificate_chain_file:
            _load_with_chain(ctx, settings.machine_certificate_file,
                             settings.machine_certificate_chain_file)
        else:
            ctx.load_cert_chain(settings.machine_certificate_file, password=_no_password)
    _apply_protocols(ctx, settings.protocol)
    if settings.cipher_suite:
        ctx.set_ciphers(settings.cipher_suite)
    return ctx


def _no_password() -> bytes:
    return b""


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----\r?\n?", re.DOTALL)


def _load_with_chain(ctx: ssl.SSLContext, machine_file: str, chain_file: str) -> None:
    """The client certificate (the first one of ``machine_file``, with its key) and the
    certificates of ``chain_file`` after it, sent together in the handshake as
    SSLProxyMachineCertificateChainFile asks. OpenSSL reads a chain only from one file, so
    they are joined in a file of our own that lives no longer than this call (mode 0600, in
    a directory only we can enter)."""
    with open(machine_file, "rb") as f:
        blocks = [(m.group(1), m.group(0)) for m in _PEM_BLOCK.finditer(f.read())]
    with open(chain_file, "rb") as f:
        chain = [m.group(0) for m in _PEM_BLOCK.finditer(f.read())
                 if m.group(1) == b"CERTIFICATE"]
    certificates = [text for kind, text in blocks if kind == b"CERTIFICATE"]
    keys = [text for kind, text in blocks if kind.endswith(b"PRIVATE KEY")]
    if not certificates or not keys:
        raise ssl.SSLError(f"{machine_file}: no certificate with its private key")
    with tempfile.TemporaryDirectory(prefix="portico-tls-") as private:
        joined = os.path.join(private, "client.pem")
        fd = os.open(joined, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(b"".join((certificates[0], *chain, keys[0])))
        ctx.load_cert_chain(joined, password=_no_password)


def _apply_protocols(ctx: ssl.SSLContext, spec: str) -> None:
    """Map httpd's `SSLProxyProtocol all -SSLv3 +TLSv1.2` onto a version range."""
    enabled: set[str] = set()
    for word in spec.lower().split():
        sign, name = (word[0], word[1:]) if word[0] in "+-" else ("+", word)
        names = set(_PROTOCOL_VERSIONS) if name == "all" else {name}
        if sign == "-":
            enabled -= names
        else:
            enabled |= names
    versions = sorted(_PROTOCOL_VERSIONS[n] for n in enabled if n in _PROTOCOL_VERSIONS)
    usable = [v for v in versions if v >= ssl.TLSVersion.TLSv1_2] or versions
    if usable:
        ctx.minimum_version = max(usable[0], ssl.TLSVersion.TLSv1_2)
        ctx.maximum_version = usable[-1]


class Connector:
    """Opens connections to one worker's address, caching its DNS answer."""

    __slots__ = ("_addr", "_addr_expiry", "spec", "tls", "receive_buffer", "keepalive",
                 "source_address")

    def __init__(self, spec: WorkerSpec, tls: TLSClientSettings | None,
                 receive_buffer: int = 0, source_address: str | None = None) -> None:
        self.spec = spec
        self.tls = tls if spec.scheme in ("https", "wss", "h2") else None
        self.receive_buffer = receive_buffer
        self.keepalive = spec.params.keepalive
        self.source_address = source_address
        self._addr: tuple[int, tuple] | None = None
        self._addr_expiry = 0.0

    async def open(self, factory: Callable[[], asyncio.Protocol], timeout: float,
                   server_hostname: str | None = None,
                   host: str | None = None, port: int | None = None) -> asyncio.Protocol:
        """Connect and return the protocol; every failure becomes an UpstreamError (CONNECT*),
        so the request waiting on it is always answered."""
        loop = asyncio.get_running_loop()
        ssl_ctx = None
        if self.tls is not None and not self.tls.engine:
            raise UpstreamError(UpstreamErrorKind.NO_HANDLER,
                                "SSLProxyEngine is not on for an https backend")
        try:
            if self.tls is not None:
                ssl_ctx = tls_context_for(self.tls)
            async with asyncio.timeout(timeout):
                if self.spec.unix_path is not None:
                    tls_name = server_hostname or self.spec.host
                    transport, proto = await loop.create_unix_connection(
                        factory, self.spec.unix_path, ssl=ssl_ctx,
                        server_hostname=tls_name if ssl_ctx else None)
                else:
                    tls_name = server_hostname or host or self.spec.host
                    sock = await self._connect_socket(loop, host, port)
                    transport, proto = await loop.create_connection(
                        factory, sock=sock, ssl=ssl_ctx,
                        server_hostname=tls_name if ssl_ctx else None)
            if self.tls is not None:
                self._check_peer(transport, tls_name)
        except TimeoutError:
            raise UpstreamError(UpstreamErrorKind.CONNECT_TIMEOUT,
                                f"connect to {self.spec.name} timed out after {timeout:g}s"
                                ) from None
        except socket.gaierror as exc:
            raise UpstreamError(UpstreamErrorKind.DNS,
                                f"DNS lookup failure for {host or self.spec.host}: {exc}"
                                ) from None
        except UpstreamError:
            raise
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamError(UpstreamErrorKind.TLS_VERIFY,
                                f"TLS verification of {self.spec.name} failed: "
                                f"{exc.verify_message}") from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(UpstreamErrorKind.CONNECT,
                                f"connect to {self.spec.name} failed: {exc}") from None
        except Exception as exc:
            # Not a network outcome (a TLS file that changed since load, a bug): the caller
            # only answers UpstreamErrors, so anything else would leave the request hanging.
            log.exception("unexpected error while connecting to %s", self.spec.name)
            raise UpstreamError(UpstreamErrorKind.CONNECT,
                                f"connect to {self.spec.name} failed: {exc!r}") from None
        return proto

    def _check_peer(self, transport: asyncio.BaseTransport, tls_name: str) -> None:
        """mod_ssl's own checks of the backend certificate (upstream/peercert.py); a
        failure closes the connection and is a TLS verification error."""
        assert self.tls is not None
        problem = tls_problem(transport.get_extra_info("ssl_object"), tls_name, self.tls,
                              time.time())
        if problem is not None:
            transport.abort()
            raise UpstreamError(UpstreamErrorKind.TLS_VERIFY,
                                f"TLS check of {self.spec.name} failed: {problem}")

    async def _connect_socket(self, loop: asyncio.AbstractEventLoop, host: str | None,
                              port: int | None) -> socket.socket:
        family, addr = await self._resolve(loop, host, port)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.keepalive:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self.receive_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
            if self.source_address:
                sock.bind((self.source_address, 0))
            await loop.sock_connect(sock, addr)
        except BaseException:
            sock.close()
            raise
        return sock

    async def _resolve(self, loop: asyncio.AbstractEventLoop, host: str | None,
                       port: int | None) -> tuple[int, tuple]:
        if host is not None and (host != self.spec.host or port != self.spec.port):
            return await _lookup(loop, host, port or self.spec.port)  # a $n target: no cache
        ttl = self.spec.params.addressttl
        now = time.monotonic()
        if self._addr is not None and (ttl < 0 or now < self._addr_expiry):
            return self._addr
        addr = await _lookup(loop, self.spec.host, self.spec.port)
        if ttl != 0:
            self._addr = addr
            self._addr_expiry = now + ttl
        return addr


async def _lookup(loop: asyncio.AbstractEventLoop, host: str, port: int) -> tuple[int, tuple]:
    bare = host[1:-1] if host.startswith("[") else host
    infos = await loop.getaddrinfo(bare, port, type=socket.SOCK_STREAM,
                                   proto=socket.IPPROTO_TCP)
    if not infos:
        raise OSError(f"no address for {host}")
    family, _, _, _, addr = infos[0]
    return family, addr
