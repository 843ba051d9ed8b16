"""Worker scaling: req/s of portico and nginx with 1 and with 2 worker processes, all on 127.0.0.1.

Usage: .venv/bin/python bench/scale.py [--duration S] [--reps N] [--conns 64,256] [--quick]

Four proxies run side by side in front of one origin nginx (the setup of bench/run.py):
portico `-w 1`, portico `-w 2`, nginx with `worker_processes 1` and with 2. Nothing is pinned:
the point is how a proxy uses the whole machine, so wrk, the origin and the proxy's workers
share both CPUs as the scheduler sees fit. For each rep, for each connection count, the
four targets run back to back (1 s warm-up, then the measured run), so a busy spell of the
shared machine hits them alike; the 2-vs-1 ratio is taken per rep and the median reported.

The helpers here (origin, proxy configs with N workers, RLIMIT_NOFILE) are shared with
bench/idle_conns.py and bench/burst.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import confgen
from confgen import Ports
from procs import Server, StartError, free_port
from run import check_body, find_tools
from wrkload import Load, WrkError, WrkResult, run_wrk

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PYTHON = REPO / ".venv" / "bin" / "python"


def use_portico_src(src: Path | None) -> str:
    """Make every portico started from now on import the package from `src` (None: the repo).

    `src` is a directory holding a `portico/` package, e.g. a `git archive HEAD` export
    when the working tree is in the middle of an edit. Returns a label for the report.
    """
    if src is None:
        return str(REPO)
    path = src.resolve()
    if not (path / "portico" / "__init__.py").is_file():
        sys.exit(f"bench: {path}/portico/__init__.py not found")
    os.environ["PYTHONPATH"] = str(path)
    return str(path)


def add_portico_src_arg(parser: argparse.ArgumentParser) -> None:
    """The shared --portico-src option."""
    parser.add_argument(
        "--portico-src", type=Path, default=None,
        help="import portico from DIR/portico instead of the repo (e.g. a git archive export)",
    )


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return soft if soft != resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _sigterm(signum: int, frame: object) -> None:
    """SIGTERM becomes KeyboardInterrupt so the `finally` blocks stop every server."""
    raise KeyboardInterrupt


def install_sigterm() -> None:
    """Route SIGTERM through the same cleanup path as Ctrl-C."""
    signal.signal(signal.SIGTERM, _sigterm)


@contextlib.contextmanager
def workdir(keep: bool = False) -> Iterator[Path]:
    """A private temp dir for configs, logs and pid files; removed on exit unless `keep`."""
    tmp = Path(tempfile.mkdtemp(prefix="portico-scale-"))
    try:
        yield tmp
    finally:
        if keep:
            print(f"bench: temp dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def start(server: Server, stack: contextlib.ExitStack) -> Server:
    """Start `server`, registering its stop with `stack` first (so a half start is stopped)."""
    stack.callback(server.stop)
    server.start()
    if problem := check_body(server.port, "small"):
        raise StartError(f"{server.name}: {problem}: {server.output_tail()}")
    return server


def origin_server(tmp: Path, nginx: str) -> Server:
    """The origin nginx of bench/run.py (1 worker, static files) on a fresh port."""
    port = free_port()
    docroot = confgen.write_docroot(tmp)
    conf = confgen.write_origin_conf(tmp, Ports(origin=port, nginx=0, portico=0), docroot)
    argv = [nginx, "-p", str(tmp), "-e", str(tmp / "origin-error.log"), "-c", str(conf)]
    return Server("origin", argv, port, tmp / "origin.out", extra_logs=[tmp / "origin-error.log"])


def nginx_proxy(tmp: Path, nginx: str, name: str, origin_port: int, workers: int) -> Server:
    """bench/run.py's nginx proxy config with `worker_processes workers`, in tmp/name/.

    The template pins one worker; the line is rewritten here. Each worker may hold 16384
    connections (client plus upstream), enough for the burst test's backlog.
    """
    prefix = tmp / name
    prefix.mkdir()
    port = free_port()
    conf = confgen.write_nginx_proxy_conf(
        prefix, Ports(origin=origin_port, nginx=port, portico=0), False, 256
    )
    text = conf.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^worker_processes \d+;", f"worker_processes {workers};", text)
    text = re.sub(r"worker_connections \d+;", "worker_connections 16384;", text)
    conf.write_text(text, encoding="utf-8")
    err = prefix / "proxy-error.log"
    argv = [nginx, "-p", str(prefix), "-e", str(err), "-c", str(conf)]
    return Server(name, argv, port, prefix / "nginx.out", extra_logs=[err])


def portico_proxy(
    tmp: Path, name: str, origin_port: int, mode: list[str], extra: str = ""
) -> Server:
    """bench/run.py's portico config in tmp/name/, run as `portico MODE -f conf`.

    `mode` is e.g. ["-w", "2"] or ["-X"]; `extra` is appended to the config (directives).
    """
    prefix = tmp / name
    prefix.mkdir()
    port = free_port()
    ports = Ports(origin=origin_port, nginx=0, portico=port)
    conf = confgen.write_portico_conf(prefix, ports, False)
    if extra:
        conf.write_text(conf.read_text(encoding="utf-8") + extra + "\n", encoding="utf-8")
    # -P: do not put the current directory first on sys.path, so --portico-src wins.
    argv = [str(PYTHON), "-P", "-m", "portico", *mode, "-f", str(conf)]
    return Server(
        name,
        argv,
        port,
        prefix / "portico.out",
        pidfile=prefix / "portico.pid",
        extra_logs=[prefix / "portico-error.log"],
    )


# --- the worker-scaling benchmark -------------------------------------------------------

TARGETS = ("portico-w1", "portico-w2", "nginx-w1", "nginx-w2")


@dataclass(frozen=True)
class Sample:
    """One measured wrk run (None when wrk failed; `error` says why)."""

    rep: int
    conns: int
    target: str
    result: WrkResult | None
    error: str = ""


def build(tmp: Path, nginx: str, origin_port: int) -> list[Server]:
    """The four proxies of TARGETS, not yet started."""
    return [
        portico_proxy(tmp, "portico-w1", origin_port, ["-w", "1"]),
        portico_proxy(tmp, "portico-w2", origin_port, ["-w", "2"]),
        nginx_proxy(tmp, nginx, "nginx-w1", origin_port, 1),
        nginx_proxy(tmp, nginx, "nginx-w2", origin_port, 2),
    ]


def run_reps(
    wrk: str, servers: list[Server], conns: list[int], reps: int, seconds: float
) -> list[Sample]:
    """rep x conns x target, interleaved; prints each run as it finishes."""
    samples: list[Sample] = []
    total = reps * len(conns) * len(servers)
    for rep in range(1, reps + 1):
        for c in conns:
            for s in servers:
                url = f"http://127.0.0.1:{s.port}/small"
                if not s.alive():
                    raise StartError(f"{s.name} died: {s.output_tail()}")
                try:
                    run_wrk(wrk, Load(url, c, 1, None))
                    res = run_wrk(wrk, Load(url, c, seconds, None))
                    sample = Sample(rep, c, s.name, res)
                except WrkError as exc:
                    sample = Sample(rep, c, s.name, None, str(exc))
                samples.append(sample)
                shown = (
                    f"{res.rps:>9,.0f} req/s p99 {res.p99_us / 1000:6.2f} ms "
                    f"err {res.err_status}/{res.socket_errors}"
                    if sample.result
                    else f"ERROR {sample.error}"
                )
                print(f"  [{len(samples)}/{total}] rep {rep} c={c:<4} {s.name:<11} {shown}",
                      flush=True)
    return samples


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _rps(samples: list[Sample], rep: int, conns: int, target: str) -> float | None:
    for s in samples:
        if (s.rep, s.conns, s.target) == (rep, conns, target) and s.result:
            return s.result.rps
    return None


def summary(samples: list[Sample], conns: list[int], reps: int) -> str:
    """Markdown table: median req/s per target and the paired median 2-vs-1 ratios."""
    head = (
        "| conns | portico -w 1 | portico -w 2 | portico 2/1 | nginx 1 w | nginx 2 w "
        "| nginx 2/1 | errors |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for c in conns:
        med = {
            t: _median([r for rep in range(1, reps + 1) if (r := _rps(samples, rep, c, t))])
            for t in TARGETS
        }
        ratios = {}
        for kind in ("portico", "nginx"):
            per_rep = []
            for rep in range(1, reps + 1):
                one, two = _rps(samples, rep, c, f"{kind}-w1"), _rps(samples, rep, c, f"{kind}-w2")
                if one and two:
                    per_rep.append(two / one)
            ratios[kind] = _median(per_rep)
        errors = sum(
            s.result.err_status + s.result.socket_errors if s.result else 1
            for s in samples
            if s.conns == c
        )
        cells = [
            str(c),
            *(f"{med[t]:,.0f}" if med[t] else "-" for t in TARGETS[:2]),
            f"{ratios['portico']:.2f}" if ratios["portico"] else "-",
            *(f"{med[t]:,.0f}" if med[t] else "-" for t in TARGETS[2:]),
            f"{ratios['nginx']:.2f}" if ratios["nginx"] else "-",
            str(errors),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the worker-scaling benchmark and print the table. Returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=6.0, help="seconds per measured run (6)")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions (3)")
    p.add_argument("--conns", default="64,256", help="wrk connection counts (64,256)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 s, 1 rep")
    p.add_argument("--keep-tmp", action="store_true", help="keep configs and logs")
    add_portico_src_arg(p)
    a = p.parse_args(argv)
    src = use_portico_src(a.portico_src)
    conns = [int(c) for c in a.conns.split(",") if c.strip()]
    seconds, reps = (2.0, 1) if a.quick else (a.duration, a.reps)
    tools = find_tools()
    raise_nofile()
    install_sigterm()
    print(f"scale: {reps} rep(s) x {seconds:g}s, conns {conns}, unpinned, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, portico from {src}", flush=True)
    samples: list[Sample] = []
    try:
        with workdir(a.keep_tmp) as tmp, contextlib.ExitStack() as stack:
            origin = start(origin_server(tmp, tools["nginx"]), stack)
            servers = build(tmp, tools["nginx"], origin.port)
            for s in servers:
                start(s, stack)
            samples = run_reps(tools["wrk"], servers, conns, reps, seconds)
    except KeyboardInterrupt:
        print("\nscale: interrupted; servers stopped", file=sys.stderr)
        return 130
    except StartError as exc:
        print(f"scale: {exc}", file=sys.stderr)
        return 1
    print()
    print(summary(samples, conns, reps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
