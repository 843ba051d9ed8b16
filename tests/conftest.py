"""Fixtures shared by every test package: origins (plain, TLS, unix) and test certificates."""

from __future__ import annotations

import shutil
import ssl
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

# The suites import helpers as ``tests.support...``; make that resolve however pytest was
# started (the ``pytest`` script does not put the working directory on sys.path).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pytest  # noqa: E402
import trustme  # noqa: E402

from tests.support.origin import Origin  # noqa: E402


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A throwaway CA that issues the TLS origins' certificates."""
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_ca_file(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA certificate as a PEM file (for SSLProxyCACertificateFile)."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def other_ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, unrelated CA: trusting it must not validate the origins' certificates."""
    path = tmp_path_factory.mktemp("ca2") / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def tls_server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    """A server-side context whose certificate (issued by ``ca``) names ``names``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    return ctx


@pytest.fixture
def origin() -> Iterator[Origin]:
    """A fresh plain-HTTP origin on 127.0.0.1 for one test."""
    with Origin() as o:
        yield o


@pytest.fixture
def tls_origin(tls_ca: trustme.CA) -> Iterator[Origin]:
    """An https origin on 127.0.0.1 whose certificate names localhost and 127.0.0.1."""
    with Origin(ssl_context=tls_server_context(tls_ca, "localhost", "127.0.0.1")) as o:
        yield o


@pytest.fixture
def tls_origin_wrong_name(tls_ca: trustme.CA) -> Iterator[Origin]:
    """An https origin whose (properly signed) certificate names only wrong.example."""
    with Origin(ssl_context=tls_server_context(tls_ca, "wrong.example")) as o:
        yield o


@pytest.fixture
def unix_origin() -> Iterator[Origin]:
    """A plain-HTTP origin on a unix socket (path in ``.unix_path``).

    The socket lives in a short /tmp directory anyone may traverse: socket paths are limited
    to ~107 bytes, and a reference httpd run drops root before it connects.
    """
    d = Path(tempfile.mkdtemp(prefix="portico-e2e-"))
    d.chmod(0o755)
    sock = d / "origin.sock"
    try:
        with Origin(unix_path=str(sock)) as o:
            sock.chmod(0o777)
            yield o
    finally:
        shutil.rmtree(d, ignore_errors=True)
