"""Client side of the load-balancer tests: one request per fresh connection, and who answered.

Requests are made with ``http.client`` exactly as the httpd recorder
(tests/upstream/httpd_sequences/record.py) made them: a new connection each time, the
headers http.client sends by itself (Host, Accept-Encoding: identity) plus an optional
Cookie. So the request head a proxy forwards has the same size as the recorded one, which
matters for bytraffic.
"""

from __future__ import annotations

__all__ = ["Answer", "fetch", "fetch_many", "member_sequence"]

import http.client
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

_TIMEOUT = 10.0


@dataclass(frozen=True)
class Answer:
    """One response: status, the answering member (``X-Member``; "" if none) and headers."""

    status: int
    member: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def who(self) -> str:
        """The member id on a 200, else the status as text ("503"): the recordings' notation."""
        return self.member if self.status == 200 else str(self.status)

    def header(self, name: str) -> str | None:
        """The first value of response header ``name`` (case-insensitive), or None."""
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)


def fetch(port: int, path: str, cookie: str | None = None,
          headers: Mapping[str, str] | None = None, timeout: float = _TIMEOUT) -> Answer:
    """GET ``path`` from 127.0.0.1:port on a new connection; the whole answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if cookie:
            hdrs["Cookie"] = cookie
        conn.request("GET", path, headers=hdrs)
        resp = conn.getresponse()
        body = resp.read()
        return Answer(resp.status, resp.getheader("X-Member") or "",
                      tuple(resp.getheaders()), body)
    finally:
        conn.close()


def member_sequence(port: int, requests: Iterable[tuple[str, str | None]]) -> list[str]:
    """Send ``(path, cookie)`` requests one after another; the `Answer.who` of each."""
    return [fetch(port, path, cookie).who for path, cookie in requests]


def fetch_many(port: int, paths: list[str], concurrency: int,
               timeout: float = _TIMEOUT) -> list[Answer]:
    """GET every path with ``concurrency`` clients at once; answers in the order of ``paths``."""
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda p: fetch(port, p, timeout=timeout), paths))
