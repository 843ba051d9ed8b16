"""Connector.open (portico/upstream/connect.py): whatever goes wrong while connecting reaches
the caller as an UpstreamError, the one kind of failure the scheme handlers answer, so a
request never waits on a connection attempt that died some other way."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator

import pytest

from portico.config.model import Source, TLSClientSettings, WorkerParams, WorkerSpec
from portico.errors import UpstreamError, UpstreamErrorKind
from portico.upstream.connect import Connector


def _spec(scheme: str, port: int) -> WorkerSpec:
    return WorkerSpec(name=f"{scheme}://127.0.0.1:{port}", scheme=scheme, host="127.0.0.1",
                      port=port, path="", params=WorkerParams(),
                      source=Source("test.conf", 1))


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


async def test_an_unexpected_error_becomes_an_upstream_error(listening, caplog):
    def factory() -> asyncio.Protocol:
        raise RuntimeError("a bug in the protocol factory")

    connector = Connector(_spec("http", listening.getsockname()[1]), None)
    with caplog.at_level(logging.ERROR, logger="portico"), \
            pytest.raises(UpstreamError) as info:
        await connector.open(factory, 5.0)
    assert info.value.kind is UpstreamErrorKind.CONNECT
    assert "a bug in the protocol factory" in caplog.text


async def test_a_tls_file_unusable_at_connect_time_is_an_upstream_error(listening, tmp_path):
    # Loading checked the file; it has been replaced since (contexts are made on first use).
    spoiled = tmp_path / "client.pem"
    spoiled.write_text("not a certificate\n")
    tls = TLSClientSettings(engine=True, machine_certificate_file=str(spoiled))
    connector = Connector(_spec("https", listening.getsockname()[1]), tls)
    with pytest.raises(UpstreamError) as info:
        await connector.open(asyncio.Protocol, 5.0)
    assert info.value.kind is UpstreamErrorKind.CONNECT
