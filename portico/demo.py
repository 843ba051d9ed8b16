"""`portico demo`: three small origin servers plus examples/demo.conf in front of them.

The origins are deliberately tiny HTTP/1.1 servers (keep-alive, Content-Length) that answer
with a page naming which origin served the request and what it received, so the effect of
each ProxyPass rule is visible in a browser or with curl.
"""

from __future__ import annotations

__all__ = ["run_demo"]

import asyncio
import html
import os
import sys
from pathlib import Path

ORIGINS = {8081: "origin-1 (catch-all)", 8082: "origin-2 (shop)", 8083: "origin-3 (api)"}


class _DemoOrigin(asyncio.Protocol):
    """Answers every request with a page describing it (one request at a time)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = [tuple(h.split(":", 1)) for h in lines[1:] if ":" in h]
            length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self._respond(lines[0], headers)

    def _respond(self, request_line: str, headers: list) -> None:
        method, target, _ = [*request_line.split(" "), "", ""][:3]
        extra = ""
        status = "200 OK"
        if target.endswith("/login"):
            status = "302 Found"
            extra = ("Location: http://127.0.0.1:8082/store/account\r\n"
                     "Set-Cookie: session=demo; Path=/store/account\r\n")
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v.strip())}</td></tr>"
                       for k, v in headers)
        body = (f"<!DOCTYPE html><html><head><title>{self.name}</title></head><body>"
                f"<h1>Served by {html.escape(self.name)}</h1>"
                f"<p>{html.escape(method)} <code>{html.escape(target)}</code></p>"
                f"<table border=1>{rows}</table></body></html>\n").encode()
        if self.transport is not None:
            self.transport.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n{extra}"
                f"Content-Length: {len(body)}\r\n\r\n".encode() + (b"" if method == "HEAD"
                                                                 else body))


def _demo_config() -> str:
    here = Path(__file__).resolve().parent.parent / "examples" / "demo.conf"
    if not here.exists():
        raise SystemExit(f"demo configuration not found at {here}")
    return str(here)


async def _serve(conf: str) -> None:
    from portico.server.serve import ProxyServer
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(lambda n=name: _DemoOrigin(n), "127.0.0.1", port)
               for port, name in ORIGINS.items()]
    print("portico demo: origins on 127.0.0.1:8081-8083; proxy on http://127.0.0.1:8080/",
          file=sys.stderr)
    try:
        await ProxyServer(conf).run()
    finally:
        for server in servers:
            server.close()


def run_demo() -> int:
    import uvloop
    os.environ.setdefault("PORTICO_DEMO", "1")
    try:
        uvloop.run(_serve(_demo_config()))
    except KeyboardInterrupt:
        pass
    return 0
