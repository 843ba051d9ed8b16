"""Run wrk once and turn its output into a WrkResult.

wrk is given bench/wrk_report.lua, whose done() prints one `BENCH-JSON {...}` line; that is
parsed instead of wrk's human-readable text, whose units change with the magnitude.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPORT_LUA = Path(__file__).resolve().parent / "wrk_report.lua"
_MARK = "BENCH-JSON "


class WrkError(RuntimeError):
    """wrk failed, timed out or printed no report line."""


@dataclass(frozen=True)
class Load:
    """One wrk invocation: where, how hard, how long, on which CPU (None: unpinned)."""

    url: str
    connections: int
    seconds: float
    cpu: int | None
    timeout_s: int = 5


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured. Latencies are in microseconds."""

    requests: int
    duration_us: int
    bytes: int
    err_connect: int
    err_read: int
    err_write: int
    err_status: int
    err_timeout: int
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    mean_us: float

    @property
    def rps(self) -> float:
        """Completed requests per second over the whole run."""
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    @property
    def socket_errors(self) -> int:
        """Connect, read, write and timeout errors together."""
        return self.err_connect + self.err_read + self.err_write + self.err_timeout


def wrk_argv(wrk: str, load: Load) -> list[str]:
    """The command line for `load`: one thread, the report script for the figures."""
    seconds = max(1, round(load.seconds))
    argv = [
        wrk,
        "-t1",
        f"-c{load.connections}",
        f"-d{seconds}s",
        f"--timeout={load.timeout_s}s",
        "-s",
        str(REPORT_LUA),
        load.url,
    ]
    if load.cpu is not None:
        argv = ["taskset", "-c", str(load.cpu), *argv]
    return argv


def parse_report(stdout: str) -> WrkResult:
    """Find the BENCH-JSON line in wrk's stdout; WrkError if it is missing or malformed."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(_MARK):
            try:
                return WrkResult(**json.loads(line[len(_MARK) :]))
            except (ValueError, TypeError) as exc:
                raise WrkError(f"bad report line {line!r}: {exc}") from exc
    raise WrkError(f"no report line in wrk output: {stdout[-500:]!r}")


def run_wrk(wrk: str, load: Load) -> WrkResult:
    """Run wrk for `load` and return its result.

    wrk runs in its own session so Ctrl-C reaches only us; the `finally` below stops it by
    its process group. The wait is bounded by the run length plus a margin.
    """
    proc = subprocess.Popen(
        wrk_argv(wrk, load),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=load.seconds + load.timeout_s + 30)
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish in time ({load.url})") from exc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    if proc.returncode != 0:
        raise WrkError(f"wrk exited {proc.returncode}: {err.strip()[-500:]}")
    return parse_report(out)
