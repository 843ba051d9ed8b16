"""Small helpers for whole-proxy tests (httpx clients, JSON echo decoding, raw GETs)."""

from __future__ import annotations

__all__ = ["client", "echoed", "header_pairs", "raw_get", "seen_target"]

from typing import Any

import httpx

from tests.e2e.rawhttp import RawConn
from tests.support.origin import Origin
from tests.support.proxy import Portico


def client(p: Portico, **kw: Any) -> httpx.Client:
    """An httpx client for proxy ``p``: 5 s timeouts, redirects not followed."""
    return httpx.Client(base_url=p.url, timeout=5.0, follow_redirects=False, **kw)


def echoed(resp: httpx.Response) -> dict[str, Any]:
    """The origin's /echo JSON, after checking the response is one."""
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    return resp.json()


def header_pairs(echo: dict[str, Any], name: str) -> list[str]:
    """Every value of request header ``name`` the origin saw, per an /echo JSON."""
    low = name.lower()
    return [v for k, v in echo["headers"] if k.lower() == low]


def raw_get(proxy: Portico, target: str, host: str = "proxy.test") -> int:
    """Send a GET with the exact target bytes (no client normalisation); return the status."""
    with RawConn(proxy.port) as conn:
        return conn.request("GET", target, host=host).status


def seen_target(proxy: Portico, origin: Origin, target: str, host: str = "proxy.test") -> str:
    """GET ``target`` through the proxy and return the target the origin received."""
    status = raw_get(proxy, target, host)
    assert status == 200, f"{target} -> {status}"
    (rec,) = origin.wait_for_requests(1)
    return rec.target
