"""Python cost of one proxied request, without sockets: a quick, low-noise figure.

The wrk benchmark (bench/run.py) measures what users see, but a run takes minutes and moves
±10% with the machine. This script drives the real ``FrontConnection`` and ``HttpBackend``
of a real ``Pipeline`` built from a config, with transports that only collect what is written,
so each iteration is exactly the user-space work of one keep-alive request: parse the request,
route it, build the backend head, parse the response, build the client head, account and log.
Kernel time (the four socket syscalls) is not in the figure.

    .venv/bin/python bench/hotpath.py [--requests N] [--body BYTES] [--profile]
    .venv/bin/python bench/hotpath.py --instructions    # callgrind: noise-free, slower

``--instructions`` runs the loop under valgrind's callgrind twice (N and 4N requests) and
prints the difference per request: user-space instructions, which other load on the machine
does not change (the timing figure moves ±15% on a busy machine).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from portico.config.load import load_config  # noqa: E402
from portico.proxy.pipeline import Pipeline  # noqa: E402
from portico.schemes.http import HttpBackend  # noqa: E402
from portico.server.front import FrontConnection  # noqa: E402

REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"   # what wrk sends


class _Sink:
    """A transport that keeps the last thing written and counts bytes."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.written = 0
        self.last = b""
        self._peer = peer
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.last = data

    def writelines(self, pieces) -> None:
        self.write(b"".join(pieces))

    def get_extra_info(self, name: str, default=None):
        return {"peername": self._peer, "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


def _response(body: int) -> bytes:
    """What the bench's nginx origin answers for a static file (the same header set)."""
    return (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 04:00:00 GMT\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n"
            b"Last-Modified: Tue, 24 Nov 2026 03:00:00 GMT\r\nConnection: keep-alive\r\n"
            b'ETag: "6742a1b0-64"\r\nAccept-Ranges: bytes\r\n\r\n' % body) + b"x" * body


async def _run(requests: int, body: int, profile: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="portico-hot-") as tmp:
        conf = Path(tmp, "hot.conf")
        conf.write_text(f"Listen 127.0.0.1:8080\nErrorLog {tmp}/error.log\nLogLevel warn\n"
                        "MaxKeepAliveRequests 0\nProxyPass / http://127.0.0.1:9/ max=256\n")
        config = load_config(str(conf))
    pipeline = Pipeline(config)
    worker = next(iter(pipeline.workers.values()))
    backend = HttpBackend(worker.pool, 8192, "isError")
    backend.connection_made(_Sink(("127.0.0.1", 9)))  # type: ignore[arg-type]
    worker.pool.release(backend, reusable=True)  # now idle in the pool
    worker.pool.in_use = 1
    front = FrontConnection(pipeline)
    client = _Sink(("127.0.0.1", 50000))
    front.connection_made(client)  # type: ignore[arg-type]
    response = _response(body)

    size = len(response)

    def once() -> None:
        front.data_received(REQUEST)
        backend.get_buffer(-1)[:size] = response   # as the loop's read() would
        backend.buffer_updated(size)

    once()
    if not client.last.startswith(b"HTTP/1.1 200 OK\r\n"):
        raise SystemExit(f"the proxy did not answer: {client.last[:200]!r}")
    for _ in range(2000):
        once()
    prof = cProfile.Profile() if profile else None
    if prof is not None:
        prof.enable()
    start = time.perf_counter()
    for _ in range(requests):
        once()
    elapsed = time.perf_counter() - start
    if prof is not None:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
    return elapsed / requests * 1e6


def _instructions(requests: int, body: int) -> float:
    """Callgrind's instruction total for ``requests`` iterations (plus the fixed set-up)."""
    with tempfile.TemporaryDirectory(prefix="portico-hot-cg-") as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             __file__, "--requests", str(requests), "--body", str(body)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for line in Path(out).read_text().splitlines():
            if line.startswith("totals:"):
                return float(line.split()[1])
    raise RuntimeError("no totals in the callgrind output")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50000)
    parser.add_argument("--body", type=int, default=100, help="response body bytes (100)")
    parser.add_argument("--profile", action="store_true", help="cProfile the loop")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions with callgrind (needs valgrind)")
    args = parser.parse_args(argv)
    if args.instructions:
        if shutil.which("valgrind") is None:
            print("valgrind is missing: apt-get install -y valgrind", file=sys.stderr)
            return 1
        n = 1000
        per_request = (_instructions(5 * n, args.body) - _instructions(n, args.body)) / (4 * n)
        print(f"{per_request:,.0f} instructions of Python per proxied request "
              f"({args.body}-byte body, callgrind, no sockets)")
        return 0
    per_request = uvloop.run(_run(args.requests, args.body, args.profile))
    print(f"{per_request:.2f} us of Python per proxied request "
          f"({args.body}-byte body, {args.requests} requests, no sockets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
