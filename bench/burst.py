"""Connection-rate bursts: new connections per second stepped up, portico and nginx side by side.

Usage: .venv/bin/python bench/burst.py [--rates 100,500,1000,2000,5000,10000,20000]
       [--seconds 3] [--procs 2] [--reps 1]

Both proxies run with 2 worker processes (portico `-w 2`, nginx `worker_processes 2`) in front
of the origin nginx of bench/run.py, all on 127.0.0.1. For each rate step, for each proxy in
turn, `--procs` generator processes (this file with --gen) together start connections on a
fixed schedule (open loop: a slow server does not slow the schedule down) for `--seconds`.
Each connection sends one `GET /small` with `Connection: close`, reads the reply to EOF and
is done. A connection that has not finished within `--timeout` seconds counts as an error.

Per step and proxy it reports: the attempted rate, the rate the generators actually managed
to start connections at (Python is the limit at the top steps; read this column first),
the reply rate (good replies over the time from the first start to the last reply),
connection errors by kind, and p50/p99 of connect-to-EOF latency over the good replies.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import errno
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from procs import Server, StartError
from run import find_tools
from scale import (
    add_portico_src_arg,
    install_sigterm,
    nginx_proxy,
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

REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
# Per generator process. A start due while this many are open is skipped and counted as
# "not started": that is the client giving up, not a server error.
MAX_INFLIGHT = 8000
CAPPED = "not-started"


# --- the generator (runs in its own process) -------------------------------------------------


def _kind(exc: BaseException) -> str:
    """A short name for why a connection failed."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__


class _Exchange(asyncio.Protocol):
    """One connection's exchange: send the request, keep the reply's first bytes, wait for EOF.

    A Protocol rather than sock_recv calls: it costs the generator less CPU per connection,
    and at the top steps the generator's CPU is what limits the rate it can start.
    """

    def __init__(self, done: asyncio.Future[bytes]) -> None:
        self.done = done
        self.first = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(REQUEST)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if len(self.first) < 12:
            self.first += data[:12]

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if exc is not None:
            self.done.set_exception(exc)
        else:
            self.done.set_result(self.first)


async def _one(port: int, timeout: float) -> float:
    """One connection, one request, read to EOF; returns seconds taken. Raises on failure."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    t0 = time.perf_counter()
    transport = None
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(
                lambda: _Exchange(done), "127.0.0.1", port
            )
            first = await done
    finally:
        if transport is not None and not done.done():
            transport.abort()  # timed out or cancelled: drop it now, no FIN handshake
        elif transport is not None:
            transport.close()
    if not first.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"bad reply {first!r}")
    return time.perf_counter() - t0


async def generate(port: int, rate: float, seconds: float, timeout: float, begin: float) -> dict:
    """Start rate*seconds connections on schedule from wall time `begin`; their results.

    Bounded: the schedule lasts `seconds`, then in-flight connections get at most `timeout`
    more seconds (each has its own `timeout` too).
    """
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, begin - time.time()))
    total = int(rate * seconds)
    start = loop.time()
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    tasks: set[asyncio.Task[None]] = set()
    last_done = start

    async def one() -> None:
        nonlocal last_done
        try:
            latencies.append(await _one(port, timeout))
            last_done = loop.time()
        except (OSError, ConnectionError) as exc:
            errors[_kind(exc)] += 1

    launched = 0
    i = 0
    while i < total:
        due = min(total, int((loop.time() - start) * rate) + 1)
        while i < due:
            i += 1
            if len(tasks) >= MAX_INFLIGHT:
                errors[CAPPED] += 1
                continue
            task = loop.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            launched += 1
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
    launch_span = loop.time() - start
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=timeout + 1)
        for task in pending:
            task.cancel()
        if pending:
            errors["timeout"] += len(pending)
            await asyncio.wait(pending, timeout=2)
    return {
        "attempted": total,
        "launched": launched,
        "launch_span": launch_span,
        "reply_span": last_done - start,
        "ok": len(latencies),
        "errors": dict(errors),
        "latencies_ms": [round(x * 1000, 3) for x in latencies],
    }


def gen_main(
    port: int, rate: float, seconds: float, timeout: float, begin: float, out: Path
) -> None:
    """Entry point of a generator process: writes its results to `out` as JSON.

    A file, not stdout: the event loop may leave stdout non-blocking, and a large write to
    a full pipe would then be cut short.
    """
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    result = asyncio.run(generate(port, rate, seconds, timeout, begin))
    out.write_text(json.dumps(result), encoding="utf-8")


# --- the driver -------------------------------------------------------------------------------


@dataclass
class Step:
    """Merged results of one rate step against one proxy."""

    target: str
    rate: int
    seconds: float
    attempted: int = 0
    launched: int = 0
    launch_span: float = 0.0
    reply_span: float = 0.0
    ok: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def launched_rate(self) -> float:
        """Connections per second the generators actually started."""
        return self.launched / self.launch_span if self.launch_span else 0.0

    @property
    def reply_rate(self) -> float:
        """Good replies per second, from the first start to the last good reply."""
        span = max(self.reply_span, self.launch_span, 1e-9)
        return self.ok / span

    def pct(self, q: float) -> float | None:
        """Latency percentile `q` (0..1) in ms over good replies, None if there were none."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def run_step(target: str, port: int, rate: int, a: argparse.Namespace) -> Step:
    """Run --procs generator processes at rate/procs each; merge what they report.

    Every generator is waited for with a bound and killed by its process group if late.
    """
    begin = time.time() + 0.5  # they all start on the same tick
    argv_base = [sys.executable, __file__, "--gen", str(port), "--seconds", str(a.seconds),
                 "--timeout", str(a.timeout), "--begin", repr(begin)]
    procs: list[tuple[subprocess.Popen[str], Path]] = []
    try:
        for i in range(a.procs):
            out = a.tmp / f"gen-{target}-{rate}-{i}.json"
            out.unlink(missing_ok=True)
            argv = [*argv_base, "--gen-rate", repr(rate / a.procs), "--out", str(out)]
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True, start_new_session=True)
            procs.append((proc, out))
        step = Step(target, rate, a.seconds)
        for proc, out in procs:
            _, err = proc.communicate(timeout=a.seconds + 2 * a.timeout + 20)
            try:
                part = json.loads(out.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                part = None
            if proc.returncode != 0 or part is None:
                step.errors["generator-failed"] += 1
                print(f"    generator failed: {err.strip()[-300:]}", file=sys.stderr)
                continue
            step.attempted += part["attempted"]
            step.launched += part["launched"]
            step.launch_span = max(step.launch_span, part["launch_span"])
            step.reply_span = max(step.reply_span, part["reply_span"])
            step.ok += part["ok"]
            step.errors.update(part["errors"])
            step.latencies_ms.extend(part["latencies_ms"])
        return step
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait(timeout=5)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def line(step: Step) -> str:
    """One console line for a step."""
    errs = ", ".join(f"{k} {v}" for k, v in sorted(step.errors.items())) or "none"
    return (
        f"{step.target:<8} rate {step.rate:>6}: started {step.launched_rate:>8,.0f}/s  "
        f"replies {step.reply_rate:>8,.0f}/s  ok {step.ok:>6}/{step.attempted:<6} "
        f"p50 {_fmt(step.pct(0.5))} ms  p99 {_fmt(step.pct(0.99))} ms  errors: {errs}"
    )


def table(steps: list[Step], targets: list[str]) -> str:
    """Markdown: one row per rate, the proxies side by side."""
    head = ["attempted conn/s"]
    for t in targets:
        head += [f"{t} started/s", f"{t} replies/s", f"{t} conn errors", f"{t} p99 ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rate in dict.fromkeys(s.rate for s in steps):
        row = [f"{rate:,}"]
        for t in targets:
            found = [s for s in steps if s.rate == rate and s.target == t]
            if not found:
                row += ["-"] * 4
                continue
            s = found[-1]
            failed = {k: v for k, v in s.errors.items() if k != CAPPED}
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(failed.items()))
            capped = s.errors.get(CAPPED, 0)
            row += [
                f"{s.launched_rate:,.0f}" + (f" ({capped:,} not started)" if capped else ""),
                f"{s.reply_rate:,.0f}",
                f"{sum(failed.values())}" + (f" ({kinds})" if kinds else ""),
                _fmt(s.pct(0.99)),
            ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the burst steps (or, with --gen, be one generator process)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rates", default="100,500,1000,2000,5000,10000,20000")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each step (3)")
    p.add_argument("--timeout", type=float, default=5.0, help="per-connection bound (5)")
    p.add_argument("--procs", type=int, default=2, help="generator processes (2)")
    p.add_argument("--reps", type=int, default=1, help="passes over all rates (1)")
    p.add_argument("--pause", type=float, default=1.0, help="idle seconds between steps (1)")
    p.add_argument("--targets", default="portico,nginx")
    p.add_argument("--keep-tmp", action="store_true", help="keep configs and logs")
    p.add_argument("--gen", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--gen-rate", type=float, help=argparse.SUPPRESS)
    p.add_argument("--begin", type=float, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    add_portico_src_arg(p)
    a = p.parse_args(argv)
    if a.gen:
        gen_main(a.gen, a.gen_rate, a.seconds, a.timeout, a.begin, a.out)
        return 0
    rates = [int(r) for r in a.rates.split(",") if r.strip()]
    targets = [t for t in ("portico", "nginx") if t in a.targets.split(",")]
    src = use_portico_src(a.portico_src)
    tools = find_tools()
    limit = raise_nofile()
    install_sigterm()
    print(f"burst: rates {rates}, {a.seconds:g}s each, {a.procs} generator processes, "
          f"RLIMIT_NOFILE {limit}, portico from {src}, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}", flush=True)
    steps: list[Step] = []
    try:
        with workdir(a.keep_tmp) as tmp, contextlib.ExitStack() as stack:
            a.tmp = tmp  # where the generators write their results
            origin = start(origin_server(tmp, tools["nginx"]), stack)
            servers: dict[str, Server] = {}
            if "portico" in targets:
                servers["portico"] = start(
                    portico_proxy(tmp, "portico", origin.port, ["-w", "2"]), stack
                )
            if "nginx" in targets:
                servers["nginx"] = start(
                    nginx_proxy(tmp, tools["nginx"], "nginx", origin.port, 2), stack
                )
            for _ in range(a.reps):
                for rate in rates:
                    for name, server in servers.items():
                        if not server.alive():
                            raise StartError(f"{name} died: {server.output_tail()}")
                        step = run_step(name, server.port, rate, a)
                        steps.append(step)
                        print("  " + line(step), flush=True)
                        time.sleep(a.pause)
    except KeyboardInterrupt:
        print("\nburst: interrupted; servers stopped", file=sys.stderr)
        return 130
    except StartError as exc:
        print(f"burst: {exc}", file=sys.stderr)
        return 1
    print()
    print(table(steps, targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
