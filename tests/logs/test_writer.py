"""Access log writers: real files, real piped log programs, the pool and AccessLog."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from portico.logs.format import compile_format
from portico.logs.writer import (
    BUFFER_LIMIT,
    AccessLog,
    AccessLogWriter,
    LogOpenError,
    WriterPool,
)
from tests.logs.records import make_record


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


class Errors(list[str]):
    """Collects what a writer reports (the real callback, not a stand-in for the disk)."""

    def __call__(self, message: str) -> None:
        self.append(message)


# ----------------------------------------------------------------------------------- files

def test_file_is_appended_relative_to_server_root(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "access_log").write_text("old line\n")
    writer = AccessLogWriter()
    writer.open("logs/access_log", str(tmp_path))
    writer.write("one\n")
    writer.write("two\n")
    writer.close()
    assert (tmp_path / "logs" / "access_log").read_text() == "old line\none\ntwo\n"
    assert writer.path == str(tmp_path / "logs" / "access_log")


def test_absolute_path_ignores_server_root(tmp_path: Path) -> None:
    target = tmp_path / "abs.log"
    writer = AccessLogWriter()
    writer.open(str(target), "/nonexistent-root")
    writer.write("x\n")
    writer.close()
    assert target.read_text() == "x\n"


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    writer = AccessLogWriter()
    with pytest.raises(LogOpenError, match=r"directory .*nodir does not exist"):
        writer.open("nodir/access_log", str(tmp_path))


def test_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    writer = AccessLogWriter()
    with pytest.raises(LogOpenError, match="cannot open log file"):
        writer.open("adir", str(tmp_path))  # a directory is not a file


def test_lines_wait_in_memory_until_flush(tmp_path: Path) -> None:
    writer = AccessLogWriter()
    writer.open("buffered.log", str(tmp_path))
    path = tmp_path / "buffered.log"
    writer.write("line\n")
    assert path.read_bytes() == b""
    writer.flush()
    assert path.read_bytes() == b"line\n"
    writer.flush()  # nothing new: nothing written twice
    assert path.read_bytes() == b"line\n"
    writer.close()


def test_buffer_flushes_itself_past_64_kib(tmp_path: Path) -> None:
    writer = AccessLogWriter()
    writer.open("big.log", str(tmp_path))
    line = "x" * 99 + "\n"
    count = BUFFER_LIMIT // len(line)
    for _ in range(count):
        writer.write(line)
    assert (tmp_path / "big.log").stat().st_size == 0  # exactly at the limit: still buffered
    writer.write(line)
    assert (tmp_path / "big.log").stat().st_size == (count + 1) * len(line)
    writer.close()


def test_non_ascii_text_is_written_as_utf8(tmp_path: Path) -> None:
    writer = AccessLogWriter()
    writer.open("u.log", str(tmp_path))
    writer.write("café\n")
    writer.close()
    assert (tmp_path / "u.log").read_bytes() == "café\n".encode()


def test_write_errors_are_reported_once_and_not_raised() -> None:
    errors = Errors()
    writer = AccessLogWriter(on_error=errors)
    writer.open("/dev/full", "/")  # every write fails with ENOSPC
    for _ in range(3):
        writer.write("lost\n")
        writer.flush()
    writer.close()
    assert len(errors) == 1
    assert "/dev/full" in errors[0]
    assert writer.dropped_lines == 3


def test_write_errors_go_to_the_error_log_by_default(caplog: pytest.LogCaptureFixture) -> None:
    writer = AccessLogWriter()
    writer.open("/dev/full", "/")
    writer.write("lost\n")
    with caplog.at_level("ERROR", logger="portico.logs"):
        writer.flush()
    writer.close()
    assert [r.name for r in caplog.records] == ["portico.logs"]
    assert "/dev/full" in caplog.records[0].getMessage()


def test_lines_after_close_are_dropped(tmp_path: Path) -> None:
    writer = AccessLogWriter()
    writer.open("c.log", str(tmp_path))
    writer.close()
    writer.write("late\n")
    writer.flush()
    writer.close()  # a second close is harmless
    assert (tmp_path / "c.log").read_bytes() == b""
    assert writer.dropped_lines == 1


# ----------------------------------------------------------------------------------- pipes

def test_piped_log_through_the_shell(tmp_path: Path) -> None:
    out = tmp_path / "piped.log"
    writer = AccessLogWriter()
    writer.open(f"|$cat > {out}", str(tmp_path))
    assert writer.is_pipe and writer.program_pid is not None
    writer.write("first\n")
    writer.flush()
    wait_for(lambda: out.exists() and out.read_bytes() == b"first\n")
    writer.write("second\n")
    writer.close()  # flushes, closes stdin and waits for the program to exit
    assert out.read_bytes() == b"first\nsecond\n"


@pytest.mark.parametrize("prefix", ["|", "||"])
def test_piped_log_runs_the_program_directly(tmp_path: Path, prefix: str) -> None:
    out = tmp_path / "direct.log"
    writer = AccessLogWriter()
    # Without a shell the ">" would be an argument; dd writes its of= file itself.
    writer.open(f"{prefix}/bin/dd of={out} status=none", str(tmp_path))
    writer.write("direct\n")
    writer.close()
    assert out.read_bytes() == b"direct\n"


def test_piped_log_is_restarted_when_it_dies(tmp_path: Path) -> None:
    out = tmp_path / "restart.log"
    errors = Errors()
    writer = AccessLogWriter(on_error=errors)
    writer.restart_interval = 0.0
    writer.open(f"|$cat >> {out}", str(tmp_path))
    first_pid = writer.program_pid
    assert first_pid is not None
    writer.write("before\n")
    writer.flush()
    wait_for(lambda: out.exists() and out.read_bytes() == b"before\n")
    os.kill(first_pid, signal.SIGKILL)
    wait_for(lambda: writer._proc is not None and writer._proc.poll() is not None)
    writer.write("after\n")
    writer.flush()
    assert writer.program_pid not in (None, first_pid)
    writer.close()
    assert out.read_bytes() == b"before\nafter\n"
    assert writer.dropped_lines == 0


def test_program_that_will_not_start_is_a_clear_error(tmp_path: Path) -> None:
    writer = AccessLogWriter()
    with pytest.raises(LogOpenError, match="cannot start piped log"):
        writer.open("|/nonexistent/rotatelogs x", str(tmp_path))
    with pytest.raises(LogOpenError, match="names no program"):
        AccessLogWriter().open("|$  ", str(tmp_path))


def test_stuck_program_bounds_the_backlog(tmp_path: Path) -> None:
    errors = Errors()
    writer = AccessLogWriter(on_error=errors)
    writer.close_timeout = 0.2
    writer.open("|$exec sleep 30", str(tmp_path))  # never reads its stdin
    line = "y" * 1023 + "\n"
    for _ in range(2000):  # ~2 MiB: more than the pipe plus the 1 MiB backlog can hold
        writer.write(line)
    writer.flush()
    assert writer.dropped_lines > 0
    assert any("not reading" in e for e in errors)
    started = time.monotonic()
    writer.close()  # bounded: gives up draining, then terminates the program
    assert time.monotonic() - started < 3
    assert writer.program_pid is None


def test_pipe_writes_never_split_a_line(tmp_path: Path) -> None:
    # Lines of mixed sizes, many pipe buffers' worth: what the program reads is exactly them.
    out = tmp_path / "lines.log"
    writer = AccessLogWriter()
    writer.open(f"|$cat > {out}", str(tmp_path))
    expected = [f"{i:05d} " + "z" * (i % 700) + "\n" for i in range(3000)]
    for text in expected:
        writer.write(text)
    writer.close()
    assert out.read_text() == "".join(expected)


# ------------------------------------------------------------------------ pool and AccessLog

def test_pool_shares_one_writer_per_target(tmp_path: Path) -> None:
    pool = WriterPool(str(tmp_path))
    a = pool.get("shared.log")
    b = pool.get("./shared.log")
    c = pool.get(str(tmp_path / "shared.log"))
    d = pool.get("other.log")
    assert a is b is c
    assert d is not a
    assert len(pool) == 2
    log1 = AccessLog(compile_format("one %>s"), a)
    log2 = AccessLog(compile_format("two %m"), b)
    log1.log(make_record())
    log2.log(make_record())
    pool.flush()
    assert (tmp_path / "shared.log").read_text() == "one 502\ntwo GET\n"
    pool.close()
    assert len(pool) == 0


@pytest.mark.parametrize(("condition", "env", "logged"), [
    (None, {}, True),
    ("gif-image", {"gif-image": "1"}, True),
    ("gif-image", {}, False),
    ("env=gif-image", {"gif-image": ""}, True),   # set but empty still counts as set
    ("!gif-image", {"gif-image": "1"}, False),
    ("env=!gif-image", {}, True),
])
def test_env_conditions(tmp_path: Path, condition: str | None, env: dict[str, str],
                        logged: bool) -> None:
    writer = AccessLogWriter()
    writer.open("cond.log", str(tmp_path))
    AccessLog(compile_format("%U"), writer, env_condition=condition).log(make_record(env=env))
    writer.close()
    assert (tmp_path / "cond.log").read_text() == ("/a/b\n" if logged else "")


def test_predicate_condition(tmp_path: Path) -> None:
    writer = AccessLogWriter()
    writer.open("pred.log", str(tmp_path))
    log = AccessLog(compile_format("%>s"), writer, predicate=lambda r: r.status >= 500)
    log.log(make_record(status=200))
    log.log(make_record(status=503))
    writer.close()
    assert (tmp_path / "pred.log").read_text() == "503\n"


def test_empty_env_condition_is_rejected(tmp_path: Path) -> None:
    writer = AccessLogWriter()
    writer.open("e.log", str(tmp_path))
    with pytest.raises(ValueError, match="names no variable"):
        AccessLog(compile_format("%h"), writer, env_condition="env=!")
    writer.close()
