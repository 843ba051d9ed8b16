"""The master's small policies: how many workers, how long to wait after a crash, and how
a child's end is worded."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from portico.config import load_config
from portico.errors import ConfigError
from portico.server.workers import MAX_BACKOFF, backoff_delay, describe_status, worker_count


def _config(tmp_path: Path, text: str):
    conf = tmp_path / "p.conf"
    conf.write_text("Listen 127.0.0.1:8080\n" + text)
    return load_config(str(conf))


def test_worker_count_prefers_the_option_then_the_directive_then_the_cpus(tmp_path):
    with_directive = _config(tmp_path, "Workers 3\n")
    without = _config(tmp_path, "")
    assert worker_count(5, with_directive) == 5
    assert worker_count(None, with_directive) == 3
    assert worker_count(None, without) == (os.cpu_count() or 1)


def test_workers_directive_is_checked(tmp_path):
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, "Workers 0\n")
    assert info.value.line == 2
    assert "Workers" in str(info.value)


def test_backoff_starts_at_zero_doubles_and_is_capped():
    assert [backoff_delay(n) for n in range(1, 6)] == [0.0, 0.25, 0.5, 1.0, 2.0]
    assert backoff_delay(50) == MAX_BACKOFF


def _status_of_child(action) -> int:
    """The wait status of a forked child that runs ``action`` and then exits 0."""
    pid = os.fork()
    if pid == 0:  # the child
        try:
            action()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return status


def test_describe_status_names_exit_codes_and_signals():
    assert describe_status(_status_of_child(lambda: os._exit(3))) == "exit status 3"
    assert describe_status(_status_of_child(lambda: None)) == "exit status 0"
    killed = _status_of_child(lambda: os.kill(os.getpid(), signal.SIGKILL))
    assert describe_status(killed) == "exit signal SIGKILL (9)"
