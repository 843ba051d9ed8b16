"""Where access log lines go: buffered append-only files and piped log programs.

``AccessLogWriter`` owns one destination. ``write()`` only appends to memory; the bytes reach
the destination when the buffer passes 64 KiB, on ``flush()`` (the owner calls it about once a
second) and on ``close()``. Writing never raises into a request: a failure is reported once to
the error log (until a later write succeeds) and the lines are counted in ``dropped_lines``.

Piped logs (httpd's syntax): ``|program args`` and ``||program args`` run the program directly,
``|$command`` runs it through ``/bin/sh -c``. The program reads our lines on its stdin; if it
dies it is restarted (at most once a second) by the process that started it. The pipe is
non-blocking and written in pieces of at most ``PIPE_BUF`` bytes cut at line ends, so lines
from several worker processes sharing one pipe never interleave; what the program cannot take
yet waits in a bounded backlog.
"""

from __future__ import annotations

__all__ = ["AccessLog", "AccessLogWriter", "LogOpenError", "WriterPool"]

import logging
import os
import select
import shlex
import subprocess
import time
from collections.abc import Callable

from portico.logs.format import LogFormatter
from portico.logs.record import AccessRecord

BUFFER_LIMIT = 64 * 1024          # flush once this much is buffered
BACKLOG_LIMIT = 1024 * 1024       # a stuck log program may hold back at most this much
RESTART_INTERVAL = 1.0            # seconds between restarts of a dying log program
CLOSE_TIMEOUT = 2.0               # seconds close() waits for a log program to drain and exit
PIPE_BUF = select.PIPE_BUF        # writes up to this size are atomic on a pipe


class LogOpenError(OSError):
    """A log destination could not be opened (missing directory, permissions, bad command).

    An OSError, so callers that treat "cannot open" as an OS problem catch it too."""


def _report_to_error_log(message: str) -> None:
    logging.getLogger("portico.logs").error("%s", message)


class AccessLogWriter:
    """One open log destination with an in-memory line buffer (see the module docstring).

    Not thread-safe: one thread (the event loop) writes, flushes and closes it.
    """

    def __init__(self, on_error: Callable[[str], None] | None = None) -> None:
        """``on_error`` receives each reported problem; it defaults to the error log."""
        self.target = ""
        self.path = ""                    # the absolute file path, or "" for a pipe
        self.dropped_lines = 0            # lines lost to write errors or a full backlog
        self._on_error = on_error if on_error is not None else _report_to_error_log
        self._reported = False            # a failure was reported and nothing succeeded since
        self._buffer: list[str] = []
        self._buffered = 0                # characters in _buffer
        self._backlog = b""               # piped logs: bytes the program has not taken yet
        self._fd = -1
        self._argv: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner_pid = 0               # the process that started _proc
        self._last_spawn = 0.0
        self._closed = False
        self.restart_interval = RESTART_INTERVAL
        self.close_timeout = CLOSE_TIMEOUT

    # ---------------------------------------------------------------------------- opening

    def open(self, target: str, server_root: str) -> None:
        """Open ``target``: a file path (relative to ``server_root``) opened for appending and
        created if missing, or a piped log command. Raises ``LogOpenError`` with the reason."""
        self.target = target
        if target.startswith("|"):
            self._argv = _pipe_argv(target)
            self._spawn()
        else:
            self.path = os.path.join(server_root, target)  # an absolute target stays as is
            self._fd = _open_file(self.path)

    @property
    def is_pipe(self) -> bool:
        """True for a piped log."""
        return bool(self._argv)

    @property
    def program_pid(self) -> int | None:
        """The process id of the running log program (piped logs), else None."""
        return self._proc.pid if self._proc is not None else None

    def _spawn(self) -> None:
        self._last_spawn = time.monotonic()
        try:
            # A new session keeps a terminal's ^C from killing the program before it has read
            # our last lines; it exits on its own when we close its stdin.
            proc = subprocess.Popen(self._argv, stdin=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise LogOpenError(f"cannot start piped log {self.target!r}: {exc}") from exc
        assert proc.stdin is not None
        self._proc = proc
        self._owner_pid = os.getpid()
        self._fd = proc.stdin.fileno()
        os.set_blocking(self._fd, False)

    # ---------------------------------------------------------------------------- writing

    def write(self, line: str) -> None:
        """Buffer ``line`` (the caller includes the newline); flush past 64 KiB."""
        self._buffer.append(line)
        self._buffered += len(line)
        if self._buffered > BUFFER_LIMIT:
            self.flush()

    def flush(self) -> None:
        """Hand everything buffered to the destination without blocking on a slow program."""
        if self._buffer:
            lines = len(self._buffer)
            data = "".join(self._buffer).encode("utf-8", "surrogateescape")
            self._buffer.clear()
            self._buffered = 0
        elif not self._backlog:
            return
        else:
            lines, data = 0, b""
        if self._closed:
            self.dropped_lines += lines  # written after close()
        elif self.is_pipe:
            self._flush_pipe(data)
        elif self._fd >= 0:
            self._flush_file(data, lines)
        else:
            self.dropped_lines += lines

    def _flush_file(self, data: bytes, lines: int) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self.dropped_lines += lines
            self._report(f"cannot write to access log {self.path}: {exc.strerror}")
            return
        self._reported = False

    def _flush_pipe(self, data: bytes) -> None:
        if self._fd < 0 or self._child_died():
            self._restart()
        pending = self._backlog + data if self._backlog else data
        # With no program (a restart failed or was throttled) the lines wait for the next flush.
        written = 0 if self._fd < 0 else self._try_write(pending)
        self._backlog = pending[written:]
        if written:
            self._reported = False
        if len(self._backlog) > BACKLOG_LIMIT:
            self.dropped_lines += self._backlog.count(b"\n")
            self._backlog = b""
            self._report(f"piped log {self.target!r} is not reading; dropped its backlog")

    def _try_write(self, pending: bytes) -> int:
        written, error = _write_pipe(self._fd, pending)
        if isinstance(error, BrokenPipeError):
            self._report(f"piped log {self.target!r} closed its input; restarting it")
            if self._restart():
                more, error = _write_pipe(self._fd, pending[written:])
                written += more
        if error is not None and not isinstance(error, BrokenPipeError):
            self._report(f"cannot write to piped log {self.target!r}: {error.strerror}")
        return written

    def _child_died(self) -> bool:
        # Only the process that started the program may reap it: in a forked worker poll()
        # would see "no such child" and wrongly report it dead.
        return (self._proc is not None and self._owner_pid == os.getpid()
                and self._proc.poll() is not None)

    def _restart(self) -> bool:
        """Start the log program again; False when not allowed now or it failed."""
        if self._closed or self._owner_pid != os.getpid():
            return False
        if time.monotonic() - self._last_spawn < self.restart_interval:
            return False  # dying at once again: wait rather than fork in a loop
        self._discard_proc()
        self._fd = -1
        try:
            self._spawn()
        except LogOpenError as exc:
            self._report(str(exc))
            return False
        return True

    def _report(self, message: str) -> None:
        if not self._reported:
            self._reported = True
            self._on_error(message)

    # ---------------------------------------------------------------------------- closing

    def close(self) -> None:
        """Flush, then close the file, or drain and stop the log program (bounded wait)."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self.is_pipe:
            self._drain(time.monotonic() + self.close_timeout)
            self._discard_proc()
        elif self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def _drain(self, deadline: float) -> None:
        while self._backlog and self._fd >= 0:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            _, ready, _ = select.select([], [self._fd], [], left)
            if ready:
                written, error = _write_pipe(self._fd, self._backlog)
                self._backlog = self._backlog[written:]
                if error is not None:
                    break
        if self._backlog:
            self.dropped_lines += self._backlog.count(b"\n")
            self._backlog = b""

    def _discard_proc(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        try:
            proc.stdin.close()   # EOF: the program finishes its work and exits
        except OSError:
            pass                 # it had died already; closing our end cannot fail otherwise
        if self._owner_pid != os.getpid():
            return
        try:
            proc.wait(self.close_timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(self.close_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _pipe_argv(target: str) -> list[str]:
    """The program to run for a ``|...`` target (httpd: ``|$`` means through the shell)."""
    if target.startswith("|$"):
        command = target[2:].strip()
        argv = ["/bin/sh", "-c", command]
    else:
        command = target[2:] if target.startswith("||") else target[1:]
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise LogOpenError(f"piped log {target!r}: {exc}") from exc
    if not command.strip():
        raise LogOpenError(f"piped log {target!r} names no program")
    return argv


def _open_file(path: str) -> int:
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise LogOpenError(f"cannot open log file {path}: directory {parent} does not exist")
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise LogOpenError(f"cannot open log file {path}: {exc.strerror}") from exc


def _write_pipe(fd: int, data: bytes) -> tuple[int, OSError | None]:
    """Write as much of ``data`` as the pipe takes now: (bytes written, the error that stopped
    us or None). A full pipe is not an error.

    Pieces end at a newline and are at most PIPE_BUF long, so each is written whole or not at
    all; only a single line longer than PIPE_BUF is split.
    """
    total = len(data)
    view = memoryview(data)
    pos = 0
    while pos < total:
        end = pos + PIPE_BUF
        if end < total:
            newline = data.rfind(b"\n", pos, end)
            if newline >= 0:
                end = newline + 1
        try:
            pos += os.write(fd, view[pos:end])
        except BlockingIOError:
            break
        except OSError as exc:
            return pos, exc
    return pos, None


class WriterPool:
    """One writer per destination, shared by every CustomLog that names it."""

    def __init__(self, server_root: str, on_error: Callable[[str], None] | None = None) -> None:
        self.server_root = server_root
        self._on_error = on_error
        self._writers: dict[str, AccessLogWriter] = {}

    def _key(self, target: str) -> str:
        if target.startswith("|"):
            return target
        return os.path.normpath(os.path.join(self.server_root, target))

    def get(self, target: str) -> AccessLogWriter:
        """The writer for ``target``, opened on first use (``LogOpenError`` if it cannot be)."""
        key = self._key(target)
        writer = self._writers.get(key)
        if writer is None:
            writer = AccessLogWriter(self._on_error)
            writer.open(target, self.server_root)
            self._writers[key] = writer
        return writer

    def flush(self) -> None:
        """Flush every writer (the owner calls this about once a second)."""
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        """Flush and close every writer."""
        writers = list(self._writers.values())
        self._writers.clear()
        for writer in writers:
            writer.close()

    def __len__(self) -> int:
        return len(self._writers)


class AccessLog:
    """One CustomLog: a compiled format, an optional condition and a (shared) writer."""

    def __init__(
        self, formatter: LogFormatter, writer: AccessLogWriter,
        env_condition: str | None = None,
        predicate: Callable[[AccessRecord], bool] | None = None,
    ) -> None:
        """``env_condition`` is ``VAR`` or ``!VAR`` (a leading ``env=`` is accepted): log only
        when the variable is set (not set) in the record's env. ``predicate`` (an ``expr=``
        condition compiled elsewhere) must also return True for the line to be logged."""
        self.formatter = formatter
        self.writer = writer
        self.predicate = predicate
        self._env_var: str | None = None
        self._env_wanted = True
        if env_condition:
            var = env_condition.removeprefix("env=")
            self._env_wanted = not var.startswith("!")
            self._env_var = var.lstrip("!")
            if not self._env_var:
                raise ValueError(f"log condition {env_condition!r} names no variable")

    def log(self, record: AccessRecord) -> None:
        """Format ``record`` and buffer the line, if the conditions allow it."""
        if self._env_var is not None and (self._env_var in record.env) != self._env_wanted:
            return
        if self.predicate is not None and not self.predicate(record):
            return
        self.writer.write(self.formatter(record) + "\n")
