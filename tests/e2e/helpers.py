"""Small helpers for whole-proxy tests (httpx clients, JSON echo decoding)."""

from __future__ import annotations

__all__ = ["client", "echoed", "header_pairs"]

from typing import Any

import httpx

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
