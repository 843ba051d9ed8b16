"""Load-balancing methods with one slow member: req/s, p50, p99 and the slow member's share.

Usage: .venv/bin/python bench/lbmethods.py [--duration S] [--reps N] [--conns 32,64]
                                           [--members N] [--delay-ms MS] [--quick]

N origins (default 3) run on 127.0.0.1, each a small asyncio HTTP/1.1 server started by this
file (`--origin PORT DELAY_MS`); the last one waits DELAY_MS (default 50) before every answer.
One portico `-X` holds one balancer per lbmethod over the same origins
(`ProxyPass /<method>/ balancer://<method>/`; each balancer has its own members, as in httpd).
For each rep, for each connection count, the methods run back to back (1 s warm-up, then the
measured wrk run), so a busy spell of the shared machine hits them alike.

Each origin counts the requests it answered and reports the count on `GET /__count` (asked
directly, not through the proxy); the difference across the measured run gives each member's
share. Everything is stopped by its process group in a `finally`, also on Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from procs import Server, StartError, free_port
from run import find_tools
from scale import (
    PYTHON,
    add_portico_src_arg,
    install_sigterm,
    raise_nofile,
    use_portico_src,
    workdir,
)
from wrkload import Load, WrkError, WrkResult, run_wrk

METHODS = ("byrequests", "bytraffic", "bybusyness", "p2c")
BODY = b"x" * 100
COUNT_PATH = b"/__count"


# --- the origin ------------------------------------------------------------------------------

class _Origin(asyncio.Protocol):
    """One keep-alive client connection of the origin: 100-byte answers, optionally delayed.

    Requests carry no body (wrk sends GETs); a request head ends at the first blank line.
    Answers go out in request order because each one is scheduled after the previous one
    (the delay is the same for every request of one origin).
    """

    served = 0  # requests answered by this process, /__count excluded

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while (end := self._buf.find(b"\r\n\r\n")) >= 0:
            head, self._buf = self._buf[:end], self._buf[end + 4 :]
            target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            if target == COUNT_PATH:
                self._send(str(_Origin.served).encode())
            elif self._delay > 0:
                asyncio.get_running_loop().call_later(self._delay, self._answer)
            else:
                self._answer()

    def _answer(self) -> None:
        _Origin.served += 1
        self._send(BODY)

    def _send(self, body: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def _serve_origin(port: int, delay: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Origin(delay), "127.0.0.1", port, backlog=1024, reuse_address=True
    )
    async with server:
        await server.serve_forever()


def origin_main(port: int, delay_ms: float) -> int:
    """Run one origin until killed (uvloop if installed)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve_origin(port, delay_ms / 1000))
    else:
        uvloop.run(_serve_origin(port, delay_ms / 1000))
    return 0


def origin_count(port: int) -> int:
    """How many requests the origin on `port` has answered (its /__count), asked directly."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /__count HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and body and len(body) >= int(head.lower().split(b"content-length:")[1]
                                                 .split(b"\r\n")[0]):
                break
    return int(data.partition(b"\r\n\r\n")[2])


# --- servers ---------------------------------------------------------------------------------

def origin_server(tmp: Path, index: int, delay_ms: float) -> Server:
    """Origin `index` as a child process of this file."""
    port = free_port()
    argv = [str(PYTHON), str(Path(__file__).resolve()), "--origin", str(port), str(delay_ms)]
    return Server(f"origin{index}", argv, port, tmp / f"origin{index}.out")


def portico_conf(prefix: Path, port: int, origin_ports: list[int]) -> str:
    """One listener, one balancer per lbmethod over every origin, /<method>/ routed to it."""
    lines = [
        f"Listen 127.0.0.1:{port}",
        f"ErrorLog {prefix}/portico-error.log",
        f"PidFile {prefix}/portico.pid",
        "LogLevel warn",
        "MaxKeepAliveRequests 1000",
    ]
    for method in METHODS:
        lines.append(f"<Proxy balancer://{method}>")
        lines += [f"    BalancerMember http://127.0.0.1:{p}" for p in origin_ports]
        lines.append(f"    ProxySet lbmethod={method}")
        lines.append("</Proxy>")
        lines.append(f"ProxyPass /{method}/ balancer://{method}/")
    return "\n".join(lines) + "\n"


def portico_server(tmp: Path, origin_ports: list[int]) -> Server:
    """portico -X with the balancers of portico_conf()."""
    prefix = tmp / "portico"
    prefix.mkdir()
    port = free_port()
    conf = prefix / "portico.conf"
    conf.write_text(portico_conf(prefix, port, origin_ports), encoding="utf-8")
    # -P: do not put the current directory first on sys.path, so --portico-src wins.
    argv = [str(PYTHON), "-P", "-m", "portico", "-X", "-f", str(conf)]
    return Server("portico", argv, port, prefix / "portico.out",
                  pidfile=prefix / "portico.pid", extra_logs=[prefix / "portico-error.log"])


def start(server: Server, stack: contextlib.ExitStack) -> Server:
    """Start `server`, registering its stop with `stack` first (so a half start is stopped)."""
    stack.callback(server.stop)
    server.start()
    return server


def check_route(port: int, method: str) -> str:
    """"" if GET /<method>/x through portico answers 200 with the 100-byte body, else why."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"GET /{method}/x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
                         .encode())
            data = b""
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (chunk := sock.recv(4096)):
                data += chunk
    except OSError as exc:
        return f"/{method}/: {exc}"
    status = data.split(b"\r\n", 1)[0]
    if b" 200 " not in status or not data.endswith(BODY):
        return f"/{method}/: {status.decode(errors='replace')!r}"
    return ""


# --- the benchmark ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    """One measured run: wrk's result (None if wrk failed) and each origin's request count."""

    rep: int
    conns: int
    method: str
    result: WrkResult | None
    per_member: tuple[int, ...]
    error: str = ""

    @property
    def slow_share(self) -> float | None:
        """Fraction of the run's requests the slow (last) member answered."""
        total = sum(self.per_member)
        return self.per_member[-1] / total if total else None


def run_reps(wrk: str, proxy: Server, origins: list[Server], conns: list[int], reps: int,
             seconds: float) -> list[Sample]:
    """rep x conns x method, interleaved; prints each run as it finishes."""
    samples: list[Sample] = []
    total = reps * len(conns) * len(METHODS)
    for rep in range(1, reps + 1):
        for c in conns:
            for method in METHODS:
                for s in (proxy, *origins):
                    if not s.alive():
                        raise StartError(f"{s.name} died: {s.output_tail()}")
                url = f"http://127.0.0.1:{proxy.port}/{method}/x"
                try:
                    run_wrk(wrk, Load(url, c, 1, None))
                    before = [origin_count(o.port) for o in origins]
                    res = run_wrk(wrk, Load(url, c, seconds, None))
                    after = [origin_count(o.port) for o in origins]
                    per = tuple(a - b for a, b in zip(after, before, strict=True))
                    sample = Sample(rep, c, method, res, per)
                except WrkError as exc:
                    sample = Sample(rep, c, method, None, (), str(exc))
                samples.append(sample)
                if sample.result and sample.slow_share is not None:
                    r = sample.result
                    shown = (f"{r.rps:>8,.0f} req/s p50 {r.p50_us / 1000:6.2f} ms "
                             f"p90 {r.p90_us / 1000:6.2f} ms "
                             f"p99 {r.p99_us / 1000:6.2f} ms slow {sample.slow_share:6.1%} "
                             f"err {r.err_status}/{r.socket_errors} members {list(per)}")
                else:
                    shown = f"ERROR {sample.error}"
                print(f"  [{len(samples)}/{total}] rep {rep} c={c:<3} {method:<10} {shown}",
                      flush=True)
    return samples


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summary(samples: list[Sample], conns: list[int], members: int) -> str:
    """Markdown table: per (conns, method) the medians over reps of each figure.

    p90 is shown besides the asked-for p99 because with a slow member taking a few percent
    of the requests, p99 is that member's delay for every method; p90 tells them apart.
    """
    lines = [
        "| conns | lbmethod | req/s | p50 ms | p90 ms | p99 ms | slow member's share "
        f"(fair: {1 / members:.0%}) | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in conns:
        for method in METHODS:
            runs = [s for s in samples if s.conns == c and s.method == method]
            ok = [s for s in runs if s.result]
            rps = _median([s.result.rps for s in ok if s.result])
            p50 = _median([s.result.p50_us / 1000 for s in ok if s.result])
            p90 = _median([s.result.p90_us / 1000 for s in ok if s.result])
            p99 = _median([s.result.p99_us / 1000 for s in ok if s.result])
            share = _median([x for s in ok if (x := s.slow_share) is not None])
            errors = sum(s.result.err_status + s.result.socket_errors if s.result else 1
                         for s in runs)
            cells = [
                str(c), method,
                f"{rps:,.0f}" if rps is not None else "-",
                f"{p50:.2f}" if p50 is not None else "-",
                f"{p90:.2f}" if p90 is not None else "-",
                f"{p99:.2f}" if p99 is not None else "-",
                f"{share:.1%}" if share is not None else "-",
                str(errors),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the lbmethod comparison and print the table. Returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--origin"]:
        return origin_main(int(args[1]), float(args[2]))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=6.0, help="seconds per measured run (6)")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions (3)")
    p.add_argument("--conns", default="32,64", help="wrk connection counts (32,64)")
    p.add_argument("--members", type=int, default=3, help="origins, the last one slow (3)")
    p.add_argument("--delay-ms", type=float, default=50.0, help="slow member's delay (50)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 s, 1 rep")
    p.add_argument("--keep-tmp", action="store_true", help="keep configs and logs")
    add_portico_src_arg(p)
    a = p.parse_args(args)
    if a.members < 2:
        p.error("--members must be at least 2")
    src = use_portico_src(a.portico_src)
    conns = [int(c) for c in a.conns.split(",") if c.strip()]
    seconds, reps = (2.0, 1) if a.quick else (a.duration, a.reps)
    wrk = find_tools()["wrk"]
    raise_nofile()
    install_sigterm()
    print(f"lbmethods: {a.members} members (last +{a.delay_ms:g} ms), {reps} rep(s) x "
          f"{seconds:g}s, conns {conns}, portico -X, unpinned, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, portico from {src}", flush=True)
    samples: list[Sample] = []
    try:
        with workdir(a.keep_tmp) as tmp, contextlib.ExitStack() as stack:
            origins = [
                start(origin_server(tmp, i, a.delay_ms if i == a.members - 1 else 0), stack)
                for i in range(a.members)
            ]
            proxy = start(portico_server(tmp, [o.port for o in origins]), stack)
            for method in METHODS:
                if problem := check_route(proxy.port, method):
                    raise StartError(f"portico: {problem}: {proxy.output_tail()}")
            samples = run_reps(wrk, proxy, origins, conns, reps, seconds)
    except KeyboardInterrupt:
        print("\nlbmethods: interrupted; servers stopped", file=sys.stderr)
        return 130
    except StartError as exc:
        print(f"lbmethods: {exc}", file=sys.stderr)
        return 1
    print()
    print(summary(samples, conns, a.members))
    return 0


if __name__ == "__main__":
    sys.exit(main())
