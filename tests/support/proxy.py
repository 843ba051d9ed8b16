"""Run portico (or, for comparison, real Apache httpd) as a subprocess for end-to-end tests.

`Portico.start(template, workdir, **subs)` writes a config, starts
``sys.executable -m portico -f CONF`` and returns once the Listen port accepts connections
(polled against a 10 s deadline, never a fixed sleep). `stop()` sends SIGTERM to that PID and
SIGKILL if it has not exited within 5 s.

Templates use ``{{name}}`` placeholders (httpd syntax already uses ``$1``, ``${VAR}``, ``%{X}i``
and braces, so none of those can serve). Always available: ``{{port}}``, ``{{tmp}}``,
``{{error_log}}``, ``{{access_log}}``, ``{{pid_file}}``; anything else comes from ``subs``.
Unless ``prologue=False``, the config starts with `PROLOGUE` (Listen, ServerName proxy.test,
ErrorLog, PidFile, LogLevel, a short Timeout).

Setting ``PORTICO_E2E_SERVER=httpd`` in the environment runs /usr/sbin/apache2 instead, with
the modules loaded: that is how these tests were checked against the reference behaviour.
"""

from __future__ import annotations

__all__ = [
    "PROLOGUE", "Portico", "free_port", "prologue_line_count", "render", "run_cli",
    "server_kind", "wait_port",
]

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
START_DEADLINE = 10.0
STOP_DEADLINE = 5.0

PROLOGUE = """\
Listen 127.0.0.1:{{port}}
ServerName proxy.test
ErrorLog {{error_log}}
PidFile {{pid_file}}
LogLevel warn
Timeout 10
"""

_HTTPD_MODULES = (
    "mpm_event", "authz_core", "authz_host", "proxy", "proxy_http", "ssl", "headers",
    "alias", "setenvif", "env",
)
_HTTPD_PROLOGUE = "".join(
    f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so\n" for m in _HTTPD_MODULES
) + """\
User www-data
Group www-data
DefaultRuntimeDir {{tmp}}
Mutex file:{{tmp}} default
"""

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def server_kind() -> str:
    """``"portico"`` normally; ``"httpd"`` when PORTICO_E2E_SERVER=httpd asks for the reference."""
    return os.environ.get("PORTICO_E2E_SERVER", "portico")


def prologue_line_count() -> int:
    """How many lines `Portico.write_config` puts before a template's first line (so a test
    can predict the line number an error message should name)."""
    n = PROLOGUE.count("\n")
    if server_kind() == "httpd":
        n += _HTTPD_PROLOGUE.count("\n")
    return n


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, deadline: float, alive: object = None) -> None:
    """Poll until 127.0.0.1:port accepts a connection or ``deadline`` (monotonic) passes.

    ``alive`` is an optional callable; when it returns False the wait stops early.
    """
    while time.monotonic() < deadline:
        if alive is not None and not alive():  # type: ignore[operator]
            raise RuntimeError("server exited before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)  # a poll interval inside a deadline, not a wait for readiness
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


def render(template: str, subs: dict[str, object]) -> str:
    """Replace ``{{name}}`` placeholders; an unknown name is a KeyError (a typo in a test)."""
    return _PLACEHOLDER.sub(lambda m: str(subs[m.group(1)]), template)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


class Portico:
    """One running proxy process. Use `Portico.start`; stop with `stop()` or a with-block."""

    def __init__(self, conf: Path, workdir: Path, port: int, argv: Sequence[str]) -> None:
        self.conf = conf
        self.workdir = workdir
        self.port = port
        self.argv = list(argv)
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr_path = workdir / "stderr.txt"

    # ------------------------------------------------------------------ construction
    @classmethod
    def write_config(
        cls, template: str, workdir: Path, *, prologue: bool = True, port: int | None = None,
        name: str = "portico.conf", **subs: object,
    ) -> tuple[Path, int]:
        """Render ``template`` into ``workdir/name``; returns (path, listen port)."""
        workdir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        values: dict[str, object] = {
            "port": port,
            "tmp": workdir,
            "error_log": workdir / "error.log",
            "access_log": workdir / "access.log",
            "pid_file": workdir / "portico.pid",
        }
        values.update(subs)
        text = template
        if prologue:
            text = PROLOGUE + text
        if server_kind() == "httpd":
            text = _HTTPD_PROLOGUE + text
        conf = workdir / name
        conf.write_text(render(text, values))
        return conf, port

    @classmethod
    def command(cls, conf: Path, workdir: Path, *args: str) -> list[str]:
        """The argv that runs the server under test on ``conf`` with extra ``args``."""
        if server_kind() == "httpd":
            return ["/usr/sbin/apache2", "-d", str(workdir), "-f", str(conf), *args]
        return [sys.executable, "-m", "portico", "-f", str(conf), *args]

    @classmethod
    def start(
        cls, template: str, workdir: Path, *, prologue: bool = True,
        extra_args: Sequence[str] = (), **subs: object,
    ) -> Portico:
        """Write the config, start the server in the foreground, wait until it listens."""
        conf, port = cls.write_config(template, workdir, prologue=prologue, **subs)
        args = list(extra_args)
        if "-w" not in args:
            # One serving process, so per-process limits (pool max, counters) are exact;
            # the multi-process model has its own tests in tests/server/.
            args = ["-X", *args]
        p = cls(conf, workdir, port, cls.command(conf, workdir, *args))
        p._spawn()
        return p

    def _spawn(self) -> None:
        with open(self._stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            wait_port(self.port, time.monotonic() + START_DEADLINE,
                      alive=lambda: self.proc is not None and self.proc.poll() is None)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(
                f"{' '.join(self.argv)} did not start: {exc}\n--- stderr ---\n{self.stderr}"
                f"\n--- error log ---\n{self.error_log}") from exc

    # ------------------------------------------------------------------ observation
    @property
    def pid(self) -> int:
        """The server process id."""
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return _read(self._stderr_path)

    @property
    def error_log(self) -> str:
        """The ErrorLog file's text (``{{error_log}}``)."""
        return _read(self.workdir / "error.log")

    @property
    def access_log(self) -> str:
        """The ``{{access_log}}`` file's text."""
        return _read(self.workdir / "access.log")

    def log_file(self, name: str) -> str:
        """The text of any file in the work directory (e.g. a second CustomLog)."""
        return _read(self.workdir / name)

    def rss_kib(self) -> int:
        """The server's resident set size (VmRSS) in KiB, from /proc."""
        for line in _read(Path(f"/proc/{self.pid}/status")).splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS: process gone?")

    def wait_for_log(self, which: str, needle: str, timeout: float = 5.0, since: int = 0) -> str:
        """Poll a log until ``needle`` appears in it past offset ``since``; return that text.

        ``which`` is ``"error_log"``, ``"access_log"``, ``"stderr"`` or a file name in the
        work directory. Raises AssertionError after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            if which in ("error_log", "access_log", "stderr"):
                text = getattr(self, which)[since:]
            else:
                text = self.log_file(which)[since:]
            if needle in text:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not in {which} after {timeout}s:\n{text}")
            time.sleep(0.02)  # a poll interval inside a deadline

    # ------------------------------------------------------------------ stopping
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 5 s; returns the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_DEADLINE)
        return self.proc.returncode

    def __enter__(self) -> Portico:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_cli(args: Sequence[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m portico ARGS`` to completion (for -t, -v, -k); output as text."""
    if server_kind() == "httpd":
        argv = ["/usr/sbin/apache2", *args]
    else:
        argv = [sys.executable, "-m", "portico", *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)

