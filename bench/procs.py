"""Start, watch and stop the benchmark's server processes.

Each server runs in its own session (so its process group id is its PID) and is stopped by
signalling that group: SIGTERM, then SIGKILL after a grace period. A server that writes a
PID file and detaches (a daemonizing master) is also stopped through that PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")


class StartError(RuntimeError):
    """A server did not come up; the message ends with the tail of its output."""


def free_port() -> int:
    """A loopback port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 12) -> str:
    """The last `lines` lines of a text file, or "" if it does not exist."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _group_cpu_seconds(pgid: int) -> float:
    """User+system CPU seconds of the live processes in process group `pgid`.

    Read from /proc/<pid>/stat (fields 14 and 15 after the command name); processes that
    vanish while we read are skipped.
    """
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
        if len(fields) > 12 and int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / _CLK_TCK


@dataclass
class Server:
    """One server process started by the bench.

    `argv` is run in a new session with stdout+stderr to `log`. `pidfile`, if given, is
    read at stop time so a detached master is stopped too.
    """

    name: str
    argv: list[str]
    port: int
    log: Path
    pidfile: Path | None = None
    extra_logs: list[Path] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 15.0) -> None:
        """Start the process and return once the port accepts a connection.

        Raises StartError (with the output tail) if the process exits first, or if the port
        does not accept within `ready_timeout` seconds.
        """
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self._accepts():
                return
            code = self.proc.poll()
            if code is not None and not self._detached_pid():
                raise StartError(f"exited with status {code}: {self.output_tail()}")
            time.sleep(0.02)  # poll interval; the deadline above bounds the wait
        raise StartError(
            f"port {self.port} not accepting after {ready_timeout:.0f}s: {self.output_tail()}"
        )

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _detached_pid(self) -> int | None:
        """The PID from the pid file if it names a live process other than ours."""
        if self.pidfile is None:
            return None
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        if self.proc is not None and pid == self.proc.pid:
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    def alive(self) -> bool:
        """True while the server (or its detached master) is running."""
        if self.proc is not None and self.proc.poll() is None:
            return True
        return self._detached_pid() is not None

    def output_tail(self) -> str:
        """Tail of the captured stdout/stderr plus any extra log files, for error reports."""
        parts = [tail(self.log)] + [tail(p) for p in self.extra_logs]
        return " | ".join(p.replace("\n", " / ") for p in parts if p) or "(no output)"

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the server's process group (0.0 if not running)."""
        pgid = self._detached_pid() or (self.proc.pid if self.proc else None)
        return _group_cpu_seconds(pgid) if pgid else 0.0

    def stop(self, grace: float = 5.0) -> None:
        """Stop the process group (and a detached master's group); SIGKILL after `grace`."""
        groups = [g for g in (self._detached_pid(), self.proc and self.proc.pid) if g]
        for pgid in groups:
            _signal_group(pgid, signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=grace)
        for pgid in groups:
            if _wait_group_gone(pgid, grace):
                continue
            _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    """True once no process is left in group `pgid` (checked until `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        time.sleep(0.02)
    return False
