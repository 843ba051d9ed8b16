"""A byte-exact HTTP/1.1 client over a plain socket, for framing and malformed-input tests.

httpx and http.client normalise what they send and forgive what they receive; these helpers
do neither. `RawConn.read_response()` reports whether a body was *complete* (Content-Length
satisfied or last-chunk seen), which is how truncation is asserted.
"""

from __future__ import annotations

__all__ = ["RawConn", "RawResponse", "request_bytes"]

import socket
import time
from dataclasses import dataclass, field


@dataclass
class RawResponse:
    """One parsed response. ``complete`` is False when the peer closed mid-body."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = True
    chunked: bool = False

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)

    def header_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive)."""
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]


def request_bytes(
    method: str = "GET", target: str = "/", headers: list[tuple[str, str]] | None = None,
    body: bytes = b"", host: str = "proxy.test", version: str = "HTTP/1.1",
) -> bytes:
    """Build a well-formed request; Content-Length is added when there is a body."""
    hs = [("Host", host)] if host else []
    hs += headers or []
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hs):
        hs.append(("Content-Length", str(len(body))))
    head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs)
    return head.encode("latin-1") + b"\r\n" + body


class RawConn:
    """A client connection to 127.0.0.1:port with its own receive buffer.

    Every read is bounded by ``timeout`` seconds (socket.timeout is raised past it).
    """

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def send(self, data: bytes) -> None:
        """Send all of ``data``."""
        self.sock.sendall(data)

    def request(self, *args: object, **kwargs: object) -> RawResponse:
        """Send `request_bytes(*args, **kwargs)` and read the final response."""
        method = str(args[0]) if args else str(kwargs.get("method", "GET"))
        self.send(request_bytes(*args, **kwargs))  # type: ignore[arg-type]
        return self.read_final(method)

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _line(self) -> bytes | None:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line.rstrip(b"\r\n")
            if not self._fill():
                return None

    def _exact(self, n: int) -> tuple[bytes, bool]:
        while len(self.buf) < n:
            if not self._fill():
                break
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data, len(data) == n

    def read_response(self, method: str = "GET") -> RawResponse:
        """Read the next response (interim 1xx included). Raises EOFError if none came."""
        status_line = self._line()
        while status_line == b"":
            status_line = self._line()
        if status_line is None:
            raise EOFError("connection closed before a status line")
        version, _, rest = status_line.decode("latin-1").partition(" ")
        code, _, reason = rest.partition(" ")
        resp = RawResponse(version, int(code), reason)
        while True:
            line = self._line()
            if line is None:
                resp.complete = False
                return resp
            if not line:
                break
            k, _, v = line.decode("latin-1").partition(":")
            resp.headers.append((k, v.strip()))
        if method == "HEAD" or resp.status < 200 or resp.status in (204, 304):
            return resp
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if "chunked" in te:
            resp.chunked = True
            resp.body, resp.complete = self._chunked_body()
        elif cl is not None:
            resp.body, resp.complete = self._exact(int(cl))
        else:
            while self._fill():
                pass
            resp.body = bytes(self.buf)
            self.buf.clear()
        return resp

    def _chunked_body(self) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        while True:
            line = self._line()
            if line is None:
                return b"".join(parts), False
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers up to the blank line
                    t = self._line()
                    if t is None:
                        return b"".join(parts), False
                    if not t:
                        return b"".join(parts), True
            data, ok = self._exact(size)
            parts.append(data)
            _crlf, ok2 = self._exact(2)
            if not (ok and ok2):
                return b"".join(parts), False

    def read_final(self, method: str = "GET") -> RawResponse:
        """Read responses until a non-1xx one and return it."""
        resp = self.read_response(method)
        while 100 <= resp.status < 200:
            resp = self.read_response(method)
        return resp

    def closed_by_peer(self, timeout: float = 3.0) -> bool:
        """True if the peer closes (EOF or reset) within ``timeout`` s; unread bytes are kept."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                if not self._fill():
                    return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(self.timeout)
        return False
