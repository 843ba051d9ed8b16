"""Instructions per proxied request, counted by callgrind: a repeatable cost figure.

Wall-clock benchmarks on this shared machine vary by ±30% between identical runs; callgrind
counts user-space instructions, which do not depend on what else the machine is doing. The
script runs ``portico -X`` under callgrind twice (N1 and N2 requests over keep-alive
connections to a tiny origin of its own) and prints (total(N2) - total(N1)) / (N2 - N1), so
start-up costs cancel out. Kernel work (the socket syscalls) is not counted.

    .venv/bin/python bench/instructions.py            # needs valgrind (apt-get install valgrind)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BODY = b"x" * 100
REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Origin(asyncio.Protocol):
    """Answers every request on a connection with a fixed 100-byte response."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.transport.write(  # type: ignore[attr-defined]
                b"HTTP/1.1 200 OK\r\nServer: origin\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)


def _run_origin(port: int, ready: threading.Event) -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_server(_Origin, "127.0.0.1", port)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _send(port: int, count: int, conns: int = 8) -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    buffers = [b""] * conns
    done = 0
    while done < count:
        for s in socks:
            s.sendall(REQUEST)
        for i, s in enumerate(socks):
            while True:
                _, sep, rest = buffers[i].partition(b"\r\n\r\n")
                if sep and len(rest) >= len(BODY):
                    buffers[i] = rest[len(BODY):]
                    break
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("proxy closed the connection")
                buffers[i] += chunk
            done += 1
    for s in socks:
        s.close()


def _measure(conf: Path, pidfile: Path, port: int, count: int, out: Path, conns: int,
             cache_sim: bool = False) -> dict[str, int]:
    """callgrind's totals for one run by event name: Ir (instructions) and, with the cache
    simulation, the misses (D1mr, D1mw: L1 data reads and writes; DLmr, DLmw: last level)."""
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         f"--cache-sim={'yes' if cache_sim else 'no'}", sys.executable,
         "-m", "portico", "-X", "-f", str(conf)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("portico did not start under valgrind")
        _send(port, count, conns)
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    events: list[str] = []
    for line in out.read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("totals:"):
            return dict(zip(events, map(int, line.split()[1:]), strict=True))
    raise RuntimeError("no totals in the callgrind output")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=400, help="N1 requests")
    parser.add_argument("--large", type=int, default=2400, help="N2 requests")
    parser.add_argument("--body", type=int, default=100, help="response body bytes (100)")
    parser.add_argument("--conns", type=int, default=8, help="keep-alive connections (8)")
    parser.add_argument("--cache-sim", action="store_true",
                        help="also simulate the caches: L1 data and last-level misses per "
                             "request (what more connections cost without more instructions)")
    args = parser.parse_args(argv)
    global BODY
    BODY = b"x" * args.body
    if shutil.which("valgrind") is None:
        print("valgrind is missing: apt-get install -y valgrind", file=sys.stderr)
        return 1
    origin_port, port = _free_port(), _free_port()
    ready = threading.Event()
    threading.Thread(target=_run_origin, args=(origin_port, ready), daemon=True).start()
    ready.wait(10)
    with tempfile.TemporaryDirectory(prefix="portico-ir-") as tmp:
        conf = Path(tmp, "portico.conf")
        pidfile = Path(tmp, "portico.pid")
        conf.write_text(
            f"Listen 127.0.0.1:{port}\nErrorLog {tmp}/error.log\nPidFile {pidfile}\n"
            f"LogLevel warn\nMaxKeepAliveRequests 0\n"
            f"ProxyPass / http://127.0.0.1:{origin_port}/\n")
        small = _measure(conf, pidfile, port, args.small, Path(tmp, "a.out"), args.conns,
                         args.cache_sim)
        large = _measure(conf, pidfile, port, args.large, Path(tmp, "b.out"), args.conns,
                         args.cache_sim)
    per = {name: (large[name] - small[name]) / (args.large - args.small) for name in small}
    print(f"instructions per proxied request: {per['Ir']:,.0f} "
          f"(user space; {len(BODY)}-byte bodies, {args.small} vs {args.large} requests, "
          f"{args.conns} keep-alive connections)")
    if args.cache_sim:
        print(f"simulated cache misses per request: L1 data {per['D1mr'] + per['D1mw']:,.0f} "
              f"(reads {per['D1mr']:,.0f}, writes {per['D1mw']:,.0f}), last level data "
              f"{per['DLmr'] + per['DLmw']:,.0f}, instruction fetch (L1) {per['I1mr']:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
