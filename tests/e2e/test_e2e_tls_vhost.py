"""Backend connection settings of the scope that routed the request: SSLProxy*,
ProxySourceAddress inside <VirtualHost> (§15.11), one pool per distinct setting, and a client
certificate presented to a backend that requires one."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator

import pytest
import trustme

from tests.conftest import tls_server_context
from tests.e2e.rawhttp import RawConn
from tests.support.origin import Origin
from tests.support.proxy import Portico, prologue_line_count, server_kind

HTTPD = server_kind() == "httpd"
# httpd answers 500 when the handshake fails; portico 502 (docs/compat.md).
TLS_FAILURE = 500 if HTTPD else 502


def get(proxy: Portico, target: str, host: str = "proxy.test"):
    with RawConn(proxy.port) as conn:
        return conn.request("GET", target, host=host)


VHOST_TLS = """
<VirtualHost *:{{port}}>
    ServerName proxy.test
    SSLProxyEngine On
    SSLProxyVerify require
    SSLProxyCACertificateFile {{ca}}
    ProxyPass / https://localhost:{{tls_port}}/
</VirtualHost>
"""


def test_sslproxy_settings_inside_a_virtual_host_apply(proxy_factory, tls_origin, tls_ca_file):
    # Nothing at server level: the host's own SSLProxyEngine and CA are what counts.
    p = proxy_factory(VHOST_TLS, ca=tls_ca_file, tls_port=tls_origin.port)
    resp = get(p, "/echo/in-vhost")
    assert resp.status == 200, resp.body
    assert tls_origin.requests[0].target == "/echo/in-vhost"


TWO_HOSTS = """
ProxyPass / https://localhost:{{tls_port}}/
<VirtualHost *:{{port}}>
    ServerName trusting.test
    SSLProxyEngine On
    SSLProxyVerify require
    SSLProxyCACertificateFile {{ca}}
</VirtualHost>
<VirtualHost *:{{port}}>
    ServerName distrusting.test
    SSLProxyEngine On
    SSLProxyVerify require
    SSLProxyCACertificateFile {{other_ca}}
</VirtualHost>
"""


@pytest.mark.skipif(HTTPD, reason="httpd shares one connection pool per worker across "
                    "hosts (docs/compat.md)")
def test_a_pooled_connection_never_crosses_tls_settings(
        proxy_factory, tls_origin, tls_ca_file, other_ca_file):
    # One worker (inherited by both hosts), two TLS settings: the host that trusts the
    # origin's CA leaves a verified connection in the pool; the one that does not must not
    # be handed it.
    p = proxy_factory(TWO_HOSTS, ca=tls_ca_file, other_ca=other_ca_file,
                      tls_port=tls_origin.port)
    with RawConn(p.port) as conn:
        first = conn.request("GET", "/echo/a", host="trusting.test")
        assert first.status == 200, first.body
        assert get(p, "/echo/b", host="distrusting.test").status == TLS_FAILURE
        again = conn.request("GET", "/echo/c", host="trusting.test")
        assert again.status == 200
    assert [r.target for r in tls_origin.requests] == ["/echo/a", "/echo/c"]
    # the trusting host's connection was kept and reused
    assert tls_origin.requests[0].conn_id == tls_origin.requests[1].conn_id


class _PeerRecorder:
    """A tiny origin that answers every request with 200 and remembers who connected."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.peers: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            with conn:
                self.peers.append(peer[0])
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\nok")

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


@pytest.fixture
def peer_recorder() -> Iterator[_PeerRecorder]:
    recorder = _PeerRecorder()
    try:
        yield recorder
    finally:
        recorder.close()


SOURCE_ADDRESS = """
ProxyPass / http://127.0.0.1:{{o_port}}/
<VirtualHost *:{{port}}>
    ServerName plain.test
</VirtualHost>
<VirtualHost *:{{port}}>
    ServerName sourced.test
    ProxySourceAddress 127.0.0.2
</VirtualHost>
"""


def test_proxy_source_address_inside_a_virtual_host(proxy_factory, peer_recorder):
    p = proxy_factory(SOURCE_ADDRESS, o_port=peer_recorder.port)
    assert get(p, "/", host="sourced.test").status == 200
    assert get(p, "/", host="plain.test").status == 200
    assert peer_recorder.peers == ["127.0.0.2", "127.0.0.1"]


# -- client certificates (SSLProxyMachineCertificateFile) ------------------------------------

@pytest.fixture(scope="module")
def client_ca() -> trustme.CA:
    """The CA the mutual-TLS origin trusts for client certificates."""
    return trustme.CA()


@pytest.fixture
def mtls_origin(tls_ca: trustme.CA, client_ca: trustme.CA) -> Iterator[Origin]:
    """An https origin that refuses the handshake without a client certificate from
    ``client_ca``."""
    ctx = tls_server_context(tls_ca, "localhost")
    ctx.verify_mode = ssl.CERT_REQUIRED
    client_ca.configure_trust(ctx)
    with Origin(ssl_context=ctx) as o:
        yield o


MTLS = """
SSLProxyEngine On
SSLProxyVerify require
SSLProxyCACertificateFile {{ca}}
{{machine}}
ProxyPass / https://localhost:{{tls_port}}/
"""


def test_client_certificate_is_presented(proxy_factory, mtls_origin, tls_ca_file,
                                         client_ca, tmp_path):
    cert = client_ca.issue_cert("portico-client.test")
    pem = tmp_path / "client.pem"
    pem.write_bytes(cert.cert_chain_pems[0].bytes() + cert.private_key_pem.bytes())
    p = proxy_factory(MTLS, ca=tls_ca_file, tls_port=mtls_origin.port,
                      machine=f"SSLProxyMachineCertificateFile {pem}")
    resp = get(p, "/echo/mtls")
    assert resp.status == 200, resp.body
    assert mtls_origin.requests[0].target == "/echo/mtls"


def test_without_a_client_certificate_the_origin_refuses(proxy_factory, mtls_origin,
                                                         tls_ca_file):
    # The control for the test above: this origin really does require one.
    p = proxy_factory(MTLS, ca=tls_ca_file, tls_port=mtls_origin.port, machine="")
    assert get(p, "/echo/mtls").status == 502   # httpd too: the origin refused the handshake
    assert mtls_origin.requests == []


# -- TLS files OpenSSL cannot use ------------------------------------------------------------

def check(tmp_path, template: str, **subs: object):
    conf, _ = Portico.write_config(template, tmp_path, **subs)
    return subprocess.run(Portico.command(conf, tmp_path, "-t"), capture_output=True,
                          text=True, timeout=10, stdin=subprocess.DEVNULL)


BAD_FILE = """
SSLProxyEngine On
{{directive}} {{path}}
ProxyPass / https://localhost:9/
"""


def _key_only(tmp_path, client_ca: trustme.CA):
    path = tmp_path / "key-only.pem"
    path.write_bytes(client_ca.issue_cert("x.test").private_key_pem.bytes())
    return path


def _cert_only(tmp_path, client_ca: trustme.CA):
    path = tmp_path / "cert-only.pem"
    path.write_bytes(client_ca.issue_cert("x.test").cert_chain_pems[0].bytes())
    return path


def _not_pem(tmp_path, client_ca: trustme.CA):
    path = tmp_path / "not-pem.txt"
    path.write_text("this is not a certificate\n")
    return path


@pytest.mark.skipif(HTTPD, reason="httpd reads these files only when it starts serving")
@pytest.mark.parametrize(("directive", "make", "why"), [
    ("SSLProxyMachineCertificateFile", _cert_only, "no private key"),
    ("SSLProxyMachineCertificateFile", _not_pem, "no PEM certificate"),
    ("SSLProxyCACertificateFile", _not_pem, "no usable PEM certificate"),
    ("SSLProxyCACertificateFile", _key_only, "no usable PEM certificate"),
])
def test_syntax_check_names_an_unusable_tls_file(tmp_path, client_ca, directive, make, why):
    r = check(tmp_path, BAD_FILE, directive=directive, path=make(tmp_path, client_ca))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "Syntax OK" not in out
    assert re.search(rf"portico\.conf:{prologue_line_count() + 3}: {directive}: ", out), out
    assert why in out
    assert "Traceback" not in out


@pytest.mark.skipif(HTTPD, reason="httpd loads the certificate once, when it starts")
def test_a_client_certificate_spoiled_after_load_fails_the_request(
        proxy_factory, mtls_origin, tls_ca_file, client_ca, tmp_path):
    # The file was fine at load and is garbage by the first connection: the request is
    # answered (no hang) and the reason is logged.
    cert = client_ca.issue_cert("portico-client.test")
    pem = tmp_path / "client.pem"
    pem.write_bytes(cert.cert_chain_pems[0].bytes() + cert.private_key_pem.bytes())
    p = proxy_factory(MTLS, ca=tls_ca_file, tls_port=mtls_origin.port,
                      machine=f"SSLProxyMachineCertificateFile {pem}")
    pem.write_text("spoiled\n")
    with RawConn(p.port, timeout=5) as conn:
        assert conn.request("GET", "/echo/x", host="proxy.test").status == 503   # connect failed
    p.wait_for_log("error_log", str(mtls_origin.port))
