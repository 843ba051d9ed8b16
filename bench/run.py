"""Benchmark portico against nginx (and the origin itself) with wrk, all on 127.0.0.1.

Usage: .venv/bin/python bench/run.py [--quick] [--duration S] [--reps N] [--bodies small,64k]
       [--conns 64,256] [--targets nginx,portico,bare,direct] [--with-log]

Layout (see bench/README.md): the origin nginx and wrk share the load CPU, the proxy under
test has the other CPU to itself. For each rep, for each (body, conns), the targets run
back to back in a fixed order, so machine noise hits all of them alike; the report gives
medians and paired per-rep ratios. Results go to bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import confgen
from confgen import BODIES, Ports
from procs import Server, StartError, free_port
from report import Run, console_tables, markdown_table, summarize, write_json
from wrkload import Load, WrkError, WrkResult, run_wrk

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
ALL_TARGETS = ("nginx", "portico", "bare", "direct")
INSTALL_HINT = "apt-get install -y nginx-light wrk"


@dataclass
class Options:
    """Parsed command line."""

    duration: float
    warmup: float
    reps: int
    bodies: list[str]
    conns: list[int]
    targets: list[str]
    with_log: bool
    portico: Path
    proxy_cpu: int
    load_cpu: int
    keep_tmp: bool
    nginx_keepalive: int


@dataclass
class Target:
    """A URL prefix to load and the server whose CPU and liveness we watch (None: origin)."""

    name: str
    port: int
    server: Server | None
    failure: str = ""


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_args(argv: list[str]) -> Options:
    """Parse argv; exits with a usage message on bad values."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=8.0, help="seconds per measured run (8)")
    p.add_argument("--warmup", type=float, default=1.0, help="discarded run before each (1)")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions (3)")
    p.add_argument("--bodies", default="small,64k", help=f"of {','.join(BODIES)}")
    p.add_argument("--conns", default="64,256", help="wrk connection counts (64,256)")
    p.add_argument("--targets", default=",".join(ALL_TARGETS), help="nginx,portico,bare,direct")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 s, 1 rep")
    p.add_argument("--with-log", action="store_true", help="access logs on (portico and nginx)")
    p.add_argument("--portico", type=Path, default=REPO / ".venv" / "bin" / "portico")
    p.add_argument("--proxy-cpu", type=int, default=0, help="CPU for the proxy (0)")
    p.add_argument("--load-cpu", type=int, default=1, help="CPU for wrk and the origin (1)")
    p.add_argument(
        "--nginx-keepalive", type=int, default=256, help="nginx upstream `keepalive` (256)"
    )
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs)")
    a = p.parse_args(argv)
    bodies, targets = _csv(a.bodies), _csv(a.targets)
    try:
        conns = [int(c) for c in _csv(a.conns)]
    except ValueError:
        p.error("--conns takes integers, e.g. 64,256")
    if unknown := [b for b in bodies if b not in BODIES]:
        p.error(f"unknown body {unknown}; known: {', '.join(BODIES)}")
    if unknown := [t for t in targets if t not in ALL_TARGETS]:
        p.error(f"unknown target {unknown}; known: {', '.join(ALL_TARGETS)}")
    if not (bodies and conns and targets) or min(conns) < 1:
        p.error("need at least one body, one positive connection count and one target")
    duration, reps = (2.0, 1) if a.quick else (a.duration, a.reps)
    if duration < 1 or reps < 1 or a.nginx_keepalive < 1:
        p.error("--duration, --reps and --nginx-keepalive must be >= 1")
    return Options(
        duration=duration,
        warmup=a.warmup,
        reps=reps,
        bodies=bodies,
        conns=conns,
        targets=[t for t in ALL_TARGETS if t in targets],
        with_log=a.with_log,
        portico=a.portico,
        proxy_cpu=a.proxy_cpu,
        load_cpu=a.load_cpu,
        keep_tmp=a.keep_tmp,
        nginx_keepalive=a.nginx_keepalive,
    )


def find_tools() -> dict[str, str]:
    """Paths of nginx, wrk and taskset; exits with an install hint if any is missing."""
    found = {
        "nginx": shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin"),
        "wrk": shutil.which("wrk"),
        "taskset": shutil.which("taskset"),
    }
    missing = [name for name, path in found.items() if not path]
    if missing:
        hint = INSTALL_HINT if "taskset" not in missing else INSTALL_HINT + " util-linux"
        sys.exit(f"bench: missing {', '.join(missing)}. Install with: {hint}")
    return {k: v for k, v in found.items() if v}


def pinning(opts: Options) -> tuple[int | None, int | None]:
    """(proxy CPU, load CPU), or (None, None) with a warning if they are not both usable."""
    usable = os.sched_getaffinity(0)
    if opts.proxy_cpu in usable and opts.load_cpu in usable and opts.proxy_cpu != opts.load_cpu:
        return opts.proxy_cpu, opts.load_cpu
    print(
        f"bench: warning: CPUs {opts.proxy_cpu}/{opts.load_cpu} not both usable "
        f"(have {sorted(usable)}); running unpinned",
        file=sys.stderr,
    )
    return None, None


def raise_nofile(wanted: int = 65536) -> None:
    """Raise the soft open-files limit (inherited by wrk and the servers) towards `wanted`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    """argv prefixed with `taskset -c cpu` (unchanged when cpu is None)."""
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


def portico_argv(portico: Path, conf: Path) -> list[str]:
    """`portico -X -f conf` if its --help mentions -X (single process), else `-f conf`."""
    try:
        helped = subprocess.run(
            [str(portico), "--help"], capture_output=True, text=True, timeout=15, check=False
        )
        accepts_x = " -X" in helped.stdout + helped.stderr
    except (OSError, subprocess.TimeoutExpired):
        accepts_x = False
    return [str(portico), *(["-X"] if accepts_x else []), "-f", str(conf)]


def check_body(port: int, body: str) -> str:
    """Return "" if GET /<body> answers 200 with exactly the body's size, else the problem."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", f"/{body}")
        resp = conn.getresponse()
        data = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"GET /{body}: {exc!r}"
    finally:
        conn.close()
    if resp.status != 200 or len(data) != BODIES[body]:
        return f"GET /{body}: status {resp.status}, {len(data)} bytes (want 200, {BODIES[body]})"
    return ""


def start_target(target: Target, stack: contextlib.ExitStack, bodies: list[str]) -> None:
    """Start the target's server (if any) and check it serves every body; sets .failure."""
    if target.server is not None:
        stack.callback(target.server.stop)
        try:
            target.server.start()
        except (StartError, OSError) as exc:
            target.failure = f"failed to start: {exc}"
            return
    for body in bodies:
        if problem := check_body(target.port, body):
            target.failure = f"bad response: {problem}"
            return


def measure(
    wrk: str, target: Target, body: str, conns: int, opts: Options, load_cpu: int | None
) -> tuple[WrkResult | None, float | None, str]:
    """Warm up, then one measured run: (WrkResult or None, proxy CPU seconds, error)."""
    url = f"http://127.0.0.1:{target.port}/{body}"
    try:
        if opts.warmup > 0:
            run_wrk(wrk, Load(url, conns, opts.warmup, load_cpu))
        before = target.server.cpu_seconds() if target.server else None
        result = run_wrk(wrk, Load(url, conns, opts.duration, load_cpu))
        after = target.server.cpu_seconds() if target.server else None
    except WrkError as exc:
        return None, None, str(exc)
    cpu = after - before if before is not None and after is not None else None
    return result, cpu, ""


def run_matrix(
    wrk: str, targets: list[Target], opts: Options, load_cpu: int | None, runs: list[Run]
) -> None:
    """Every rep x body x conns x target, appending to `runs` as it goes (kept on Ctrl-C)."""
    total = opts.reps * len(opts.bodies) * len(opts.conns) * len(targets)
    for rep in range(1, opts.reps + 1):
        for body in opts.bodies:
            for conns in opts.conns:
                for t in targets:
                    if t.failure:
                        continue
                    if t.server is not None and not t.server.alive():
                        t.failure = f"died during the run: {t.server.output_tail()}"
                        continue
                    result, cpu, error = measure(wrk, t, body, conns, opts, load_cpu)
                    runs.append(Run(rep, body, conns, t.name, result, cpu, error))
                    print(
                        f"  [{len(runs)}/{total}] rep {rep} {body:>5} c={conns:<4} "
                        f"{t.name:<8} " + _progress(result, error),
                        flush=True,
                    )


def _progress(result: WrkResult | None, error: str) -> str:
    if result is None:
        return f"ERROR {error}"
    errs = f" errors http={result.err_status} sock={result.socket_errors}"
    return (
        f"{result.rps:>10,.0f} req/s  p50 {result.p50_us / 1000:.2f} ms  "
        f"p99 {result.p99_us / 1000:.2f} ms"
        + (errs if result.err_status or result.socket_errors else "")
    )


def tool_version(argv: list[str]) -> str:
    """First line of a tool's version output ("?" if it cannot be run)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo ("?" if absent)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def build_targets(
    opts: Options, tools: dict[str, str], tmp: Path, ports: Ports, proxy_cpu: int | None
) -> list[Target]:
    """Write configs and describe each requested target (servers not yet started)."""
    nginx = tools["nginx"]
    targets: list[Target] = []
    for name in opts.targets:
        if name == "nginx":
            conf = confgen.write_nginx_proxy_conf(tmp, ports, opts.with_log, opts.nginx_keepalive)
            argv = [nginx, "-p", str(tmp), "-e", str(tmp / "proxy-error.log"), "-c", str(conf)]
            server = Server(
                "nginx",
                pinned(proxy_cpu, argv),
                ports.nginx,
                tmp / "nginx.out",
                extra_logs=[tmp / "proxy-error.log"],
            )
            targets.append(Target(name, ports.nginx, server))
        elif name == "portico":
            conf = confgen.write_portico_conf(tmp, ports, opts.with_log)
            argv = portico_argv(opts.portico, conf)
            server = Server(
                "portico",
                pinned(proxy_cpu, argv),
                ports.portico,
                tmp / "portico.out",
                pidfile=tmp / "portico.pid",
                extra_logs=[tmp / "portico-error.log"],
            )
            targets.append(Target(name, ports.portico, server))
        elif name == "bare":
            # The floor: a minimal uvloop + httptools proxy (bench/bareproxy.py).
            bare_port = free_port()
            argv = [sys.executable, str(BENCH_DIR / "bareproxy.py"), str(bare_port),
                    str(ports.origin)]
            server = Server("bare", pinned(proxy_cpu, argv), bare_port, tmp / "bare.out")
            targets.append(Target(name, bare_port, server))
        else:
            targets.append(Target(name, ports.origin, None))
    return targets


def run_bench(
    opts: Options, tools: dict[str, str], runs: list[Run], meta: dict[str, Any]
) -> list[Target]:
    """Start everything, run the matrix, stop everything (also on errors and Ctrl-C)."""
    proxy_cpu, load_cpu = pinning(opts)
    tmp = Path(tempfile.mkdtemp(prefix="portico-bench-"))
    ports = Ports(origin=free_port(), nginx=free_port(), portico=free_port())
    meta.update(proxy_cpu=proxy_cpu, load_cpu=load_cpu, tmp=str(tmp))
    try:
        with contextlib.ExitStack() as stack:
            docroot = confgen.write_docroot(tmp)
            conf = confgen.write_origin_conf(tmp, ports, docroot)
            origin = Server(
                "origin",
                pinned(
                    load_cpu,
                    [
                        tools["nginx"],
                        "-p",
                        str(tmp),
                        "-e",
                        str(tmp / "origin-error.log"),
                        "-c",
                        str(conf),
                    ],
                ),
                ports.origin,
                tmp / "origin.out",
                extra_logs=[tmp / "origin-error.log"],
            )
            stack.callback(origin.stop)
            try:
                origin.start()
            except StartError as exc:
                sys.exit(f"bench: origin nginx failed to start: {exc}")
            targets = build_targets(opts, tools, tmp, ports, proxy_cpu)
            for t in targets:
                start_target(t, stack, opts.bodies)
                if t.failure:
                    print(f"{t.name}: {t.failure}", flush=True)
                elif t.server is not None:
                    meta.setdefault("argv", {})[t.name] = t.server.argv
            live = [t for t in targets if not t.failure]
            if live:
                run_matrix(tools["wrk"], live, opts, load_cpu, runs)
            return targets
    finally:
        if opts.keep_tmp:
            print(f"bench: temp dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _sigterm(signum: int, frame: object) -> None:
    """Turn SIGTERM into KeyboardInterrupt so the same cleanup path stops the servers."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints tables and writes the JSON results. Returns the exit code."""
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    tools = find_tools()
    raise_nofile()
    signal.signal(signal.SIGTERM, _sigterm)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "cpu": cpu_model(),
        "cpus": sorted(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "nginx": tool_version([tools["nginx"], "-v"]),
        "wrk": tool_version([tools["wrk"], "-v"]),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
    }
    print(
        f"bench: {opts.reps} rep(s) x {opts.duration:g}s (+{opts.warmup:g}s warm-up), "
        f"bodies {opts.bodies}, conns {opts.conns}, targets {opts.targets}"
        + (", access logs ON" if opts.with_log else ""),
        flush=True,
    )
    runs: list[Run] = []
    interrupted = False
    targets: list[Target] = []
    try:
        targets = run_bench(opts, tools, runs, meta)
    except KeyboardInterrupt:
        interrupted = True
        print("\nbench: interrupted; servers stopped", file=sys.stderr)
    meta["failures"] = {t.name: t.failure for t in targets if t.failure}
    meta["interrupted"] = interrupted
    cells = summarize(runs, opts.targets)
    print(console_tables(cells, BODIES))
    for t in targets:
        if t.failure:
            print(f"\n{t.name}: {t.failure}")
    print("\nMarkdown (req/s and latency are medians; /nginx and /direct are paired ratios):\n")
    print(markdown_table(cells))
    out = BENCH_DIR / "results" / f"{stamp}.json"
    write_json(out, meta, runs, cells)
    print(f"\nbench: results written to {out.relative_to(REPO)}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
