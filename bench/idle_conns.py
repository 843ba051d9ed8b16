"""10,000 idle keep-alive client connections on one portico process: its memory and latency.

Usage: .venv/bin/python bench/idle_conns.py [--steps 1000,5000,10000] [--probe-requests 200]

portico runs as one process (`-X`) in front of the origin nginx of bench/run.py, with
`KeepAliveTimeout 300` so nothing idle is closed during the run. This script raises its
RLIMIT_NOFILE soft limit to the hard limit (the servers inherit it), then opens client
connections up to each step's total. Every connection first sends one `GET /small` and
reads the whole response, so it is a real keep-alive HTTP connection waiting for its next
request; then it is left idle. At 0 connections and after each step it records portico's
memory (VmRSS from /proc/PID/status; PSS and USS from /proc/PID/smaps_rollup) and its open
file descriptors, and runs a separate client process that makes N sequential requests on
one keep-alive connection and reports p50/p99. At the end it counts how many held
connections the server closed, then closes them all and stops the servers.

Every step is bounded in time (`--step-timeout`, the probe's own timeout). Kernel socket
buffers are not in any of these figures: RSS is the process's own memory only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from procs import Server, StartError
from run import find_tools
from scale import (
    add_portico_src_arg,
    install_sigterm,
    origin_server,
    portico_proxy,
    raise_nofile,
    start,
    use_portico_src,
    workdir,
)

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency of portico
    uvloop = None  # type: ignore[assignment]

REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle-conns\r\n\r\n"
EXTRA_CONF = "KeepAliveTimeout 300\nTimeout 300"
OPEN_CONCURRENCY = 200  # connections being set up at once; more only fills the backlog


@dataclass(frozen=True)
class Memory:
    """Memory of one process in KiB (None when the kernel does not offer the figure)."""

    rss_kib: int
    pss_kib: int | None
    uss_kib: int | None
    fds: int


def memory(pid: int) -> Memory:
    """VmRSS, PSS, USS (private clean + dirty) and the open fd count of process `pid`."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    pss = uss = None
    with contextlib.suppress(OSError):
        fields: dict[str, int] = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                fields[name.strip()] = int(parts[0])
        pss = fields.get("Pss")
        if "Private_Clean" in fields and "Private_Dirty" in fields:
            uss = fields["Private_Clean"] + fields["Private_Dirty"]
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return Memory(rss, pss, uss, fds)


async def _read_response(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> int:
    """Read one response with a Content-Length body; returns its status code."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            raise ConnectionError("closed inside the response body")
        body += chunk
    return status


async def _open_one(port: int, held: list[socket.socket], errors: list[str]) -> None:
    """Connect, do one request/response, and keep the socket in `held` (or note the error)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, REQUEST)
        status = await _read_response(loop, sock)
        if status != 200:
            raise ConnectionError(f"status {status}")
    except (OSError, ValueError, IndexError) as exc:
        sock.close()
        errors.append(repr(exc))
        return
    held.append(sock)


async def open_many(port: int, count: int, held: list[socket.socket], timeout: float) -> list[str]:
    """Add `count` idle keep-alive connections to `held`; returns the errors.

    At most OPEN_CONCURRENCY are being set up at a time. The whole call is bounded by
    `timeout`; connections still being set up then are abandoned and counted as errors.
    """
    errors: list[str] = []
    sem = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one() -> None:
        async with sem:
            await _open_one(port, held, errors)

    tasks = [asyncio.ensure_future(one()) for _ in range(count)]
    _done, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
        errors.extend(["step timeout"] * len(pending))
    return errors


def closed_by_server(held: list[socket.socket]) -> int:
    """How many held sockets the server has closed (EOF or error pending on them)."""
    closed = 0
    for sock in held:
        try:
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue  # still open and silent, as an idle keep-alive connection should be
        except OSError:
            closed += 1
            continue
        if not data:
            closed += 1
    return closed


# --- the separate probe client ------------------------------------------------------------


def probe(port: int, requests: int, timeout: float) -> dict[str, float | int]:
    """`requests` sequential GET /small on one keep-alive connection: p50/p99 ms, errors.

    A failed request reconnects and counts as an error. Bounded by `timeout` overall.
    """
    times: list[float] = []
    errors = 0
    deadline = time.monotonic() + timeout
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(requests):
            if time.monotonic() > deadline:
                errors += 1
                break
            t0 = time.perf_counter()
            try:
                conn.request("GET", "/small")
                resp = conn.getresponse()
                body = resp.read()
                ok = resp.status == 200 and len(body) == 100
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            times.append((time.perf_counter() - t0) * 1000)
            errors += 0 if ok else 1
    finally:
        conn.close()
    times.sort()
    return {
        "n": len(times),
        "errors": errors,
        "p50_ms": statistics.median(times) if times else -1.0,
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] if times else -1.0,
    }


def run_probe(port: int, requests: int) -> dict[str, float | int]:
    """Run `probe` in a separate process (a separate client) and return its figures."""
    argv = [sys.executable, __file__, "--probe", str(port), "--probe-requests", str(requests)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        return {"n": 0, "errors": requests, "p50_ms": -1.0, "p99_ms": -1.0, "why": repr(exc)}


# --- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """Figures at one connection count."""

    conns: int
    open_errors: int
    mem: Memory
    probe: dict[str, float | int]


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f}"


def table(rows: list[Row]) -> str:
    """Markdown table of the rows plus the per-connection memory growth."""
    lines = [
        "| idle conns | VmRSS MiB | PSS MiB | USS MiB | portico fds | probe p50 ms | probe p99 ms "
        "| probe errors | open errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.conns:,} | {_mib(r.mem.rss_kib)} | {_mib(r.mem.pss_kib)} | "
            f"{_mib(r.mem.uss_kib)} | {r.mem.fds:,} | {r.probe['p50_ms']:.2f} | "
            f"{r.probe['p99_ms']:.2f} | {r.probe['errors']} | {r.open_errors} |"
        )
    base, top = rows[0], rows[-1]
    if top.conns > base.conns:
        per = (top.mem.rss_kib - base.mem.rss_kib) * 1024 / (top.conns - base.conns)
        lines.append(
            f"\nRSS growth per idle connection, {base.conns} -> {top.conns:,}: {per:,.0f} bytes"
        )
        if top.mem.uss_kib is not None and base.mem.uss_kib is not None:
            per_uss = (top.mem.uss_kib - base.mem.uss_kib) * 1024 / (top.conns - base.conns)
            lines.append(f"USS growth per idle connection: {per_uss:,.0f} bytes")
    return "\n".join(lines)


def measure(port: int, pid: int, steps: list[int], requests: int, step_timeout: float) -> list[Row]:
    """Open connections step by step, measuring after each; closes them all at the end."""
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    loop = asyncio.new_event_loop()
    held: list[socket.socket] = []
    rows: list[Row] = []
    open_errors = 0
    try:
        time.sleep(1)  # let the startup settle before the baseline
        rows.append(Row(0, 0, memory(pid), run_probe(port, requests)))
        print(f"  0 connections: {rows[-1]}", flush=True)
        for target in steps:
            t0 = time.monotonic()
            errors = loop.run_until_complete(
                open_many(port, target - len(held), held, step_timeout)
            )
            open_errors += len(errors)
            took = time.monotonic() - t0
            time.sleep(1)  # idle for a moment: timers and buffers settle
            row = Row(len(held), open_errors, memory(pid), run_probe(port, requests))
            rows.append(row)
            print(
                f"  {len(held):,} connections (opened in {took:.1f}s, errors {len(errors)}"
                + (f", first: {errors[0]}" if errors else "")
                + f"): {row.mem} probe {row.probe}",
                flush=True,
            )
        closed = closed_by_server(held)
        print(f"  held connections closed by the server before the end: {closed}", flush=True)
    finally:
        for sock in held:
            sock.close()
        loop.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the idle-connections benchmark (or, with --probe, be the probe client)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", default="1000,5000,10000", help="cumulative connection counts")
    p.add_argument("--probe-requests", type=int, default=200, help="probe requests per step")
    p.add_argument("--step-timeout", type=float, default=120.0, help="bound per step (s)")
    p.add_argument("--probe", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--keep-tmp", action="store_true", help="keep configs and logs")
    add_portico_src_arg(p)
    a = p.parse_args(argv)
    if a.probe:
        print(json.dumps(probe(a.probe, a.probe_requests, 60.0)))
        return 0
    steps = sorted(int(s) for s in a.steps.split(",") if s.strip())
    src = use_portico_src(a.portico_src)
    limit = raise_nofile()
    need = max(steps) + 1000
    if limit < need:
        sys.exit(f"idle_conns: RLIMIT_NOFILE hard limit {limit} < {need} needed for {max(steps)}")
    tools = find_tools()
    install_sigterm()
    print(f"idle_conns: steps {steps}, RLIMIT_NOFILE {limit}, portico from {src}, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}", flush=True)
    try:
        with workdir(a.keep_tmp) as tmp, contextlib.ExitStack() as stack:
            origin = start(origin_server(tmp, tools["nginx"]), stack)
            proxy: Server = start(
                portico_proxy(tmp, "portico-X", origin.port, ["-X"], EXTRA_CONF), stack
            )
            assert proxy.proc is not None
            rows = measure(proxy.port, proxy.proc.pid, steps, a.probe_requests, a.step_timeout)
            if not proxy.alive():
                print(f"idle_conns: portico died: {proxy.output_tail()}", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        print("\nidle_conns: interrupted; connections closed, servers stopped", file=sys.stderr)
        return 130
    except StartError as exc:
        print(f"idle_conns: {exc}", file=sys.stderr)
        return 1
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
