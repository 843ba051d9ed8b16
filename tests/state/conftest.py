"""Forking helpers for the scoreboard tests: every child is bounded in time and reaped."""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator

import pytest


class Children:
    """Forks children that run a function and ``os._exit`` with 0 (ok) or 1 (it raised)."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def fork(self, fn: Callable[[], None]) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                fn()
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        self.pids.append(pid)
        return pid

    def wait(self, pid: int, timeout: float = 30.0) -> int:
        """Exit status of ``pid``; the child is killed (and the test fails) after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                self.pids.remove(pid)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        self.pids.remove(pid)
        pytest.fail(f"child {pid} did not finish within {timeout} s")

    def reap_all(self) -> None:
        for pid in list(self.pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            self.pids.remove(pid)


@pytest.fixture
def children() -> Iterator[Children]:
    kids = Children()
    try:
        yield kids
    finally:
        kids.reap_all()
