"""The httpd-style error log on top of ``logging``: line format, levels, targets, re-setup."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from portico.logs.errorlog import (
    ALERT,
    EMERG,
    NOTICE,
    TRACE1,
    TRACE8,
    close_error_log,
    httpd_level,
    setup_error_log,
)
from portico.logs.writer import LogOpenError

LINE = re.compile(
    r"\[(?P<day>Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
    r"(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d\d "
    r"\d\d:\d\d:\d\d\.\d{6} \d{4}\] "
    r"\[(?P<module>[a-z_]+):(?P<level>[a-z0-9]+)\] \[pid (?P<pid>\d+)\] (?P<rest>.*)$")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Every test leaves the "portico" loggers as it found them."""
    yield
    close_error_log()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_line_format(tmp_path: Path) -> None:
    setup_error_log("error_log", "info", {}, str(tmp_path))
    before = time.time()
    logging.getLogger("portico.proxy").error("backend %s refused", "b1")
    logging.getLogger("portico").warning("top level")
    logging.getLogger("portico.upstream.pool").info("deep logger")
    logging.getLogger("portico.proxy").error("with client", extra={"client": "1.2.3.4:5678"})
    got = lines(tmp_path / "error_log")
    assert len(got) == 4
    parsed = [LINE.match(line) for line in got]
    assert all(parsed), got
    assert [(m["module"], m["level"], m["rest"]) for m in parsed if m] == [
        ("proxy", "error", "backend b1 refused"),
        ("core", "warn", "top level"),
        ("upstream", "info", "deep logger"),
        ("proxy", "error", "[client 1.2.3.4:5678] with client"),
    ]
    first = parsed[0]
    assert first is not None and first["pid"] == str(os.getpid())
    # The timestamp is the local time of the record, to the microsecond.
    stamp = got[0][1:got[0].index("]")]
    when = time.mktime(time.strptime(stamp[:19] + stamp[26:], "%a %b %d %H:%M:%S %Y"))
    assert abs(when - before) < 2


def test_levels_filter_and_map_to_httpd_names(tmp_path: Path) -> None:
    setup_error_log("error_log", "notice", {}, str(tmp_path))
    log = logging.getLogger("portico.health")
    log.log(EMERG, "e")
    log.log(ALERT, "a")
    log.critical("c")
    log.error("err")
    log.warning("w")
    log.log(NOTICE, "n")
    log.info("hidden info")
    log.debug("hidden debug")
    got = [LINE.match(line) for line in lines(tmp_path / "error_log")]
    assert [m["level"] for m in got if m] == [
        "emerg", "alert", "crit", "error", "warn", "notice"]


def test_module_levels_override_the_main_level(tmp_path: Path) -> None:
    setup_error_log("error_log", "warn",
                    {"proxy": "trace2", "mod_health.c": "error"}, str(tmp_path))
    logging.getLogger("portico.proxy.routing").log(TRACE1 - 1, "trace2 shown")
    logging.getLogger("portico.proxy").log(TRACE8, "trace8 hidden")
    logging.getLogger("portico.health").warning("warn hidden for health")
    logging.getLogger("portico.health").error("error shown for health")
    logging.getLogger("portico.admin").warning("warn shown elsewhere")
    logging.getLogger("portico.admin").info("info hidden elsewhere")
    got = [LINE.match(line) for line in lines(tmp_path / "error_log")]
    assert [(m["module"], m["level"], m["rest"]) for m in got if m] == [
        ("proxy", "trace2", "trace2 shown"),
        ("health", "error", "error shown for health"),
        ("admin", "warn", "warn shown elsewhere"),
    ]


def test_httpd_level_names() -> None:
    assert httpd_level("warn") == logging.WARNING
    assert httpd_level("DEBUG") == logging.DEBUG
    assert httpd_level("notice") == NOTICE
    assert httpd_level("trace1") == TRACE1 and httpd_level("trace8") == TRACE8
    assert EMERG > ALERT > logging.CRITICAL and logging.INFO > TRACE1 > TRACE8 > 0
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        httpd_level("loud")


def test_level_names_are_registered_with_logging(tmp_path: Path) -> None:
    setup_error_log("", "warn", {}, str(tmp_path))
    assert logging.getLevelName(NOTICE) == "NOTICE"
    assert logging.getLevelName(TRACE8) == "TRACE8"


def test_stderr_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_error_log("stderr", "error", {}, str(tmp_path))
    logging.getLogger("portico.config").error("bad directive")
    logging.getLogger("portico.config").warning("not shown")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    match = LINE.match(err[0])
    assert match is not None and match["rest"] == "bad directive"
    assert match["module"] == "config"


def test_empty_target_means_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_error_log("", "error", {}, str(tmp_path))
    logging.getLogger("portico").error("to stderr")
    assert capsys.readouterr().err.endswith("to stderr\n")


def test_piped_target(tmp_path: Path) -> None:
    out = tmp_path / "piped_error_log"
    setup_error_log(f"|$cat > {out}", "info", {}, str(tmp_path))
    logging.getLogger("portico.proxy").info("through a pipe")
    wait_for(lambda: out.exists() and out.read_text().endswith("through a pipe\n"))
    close_error_log()
    got = lines(out)
    assert len(got) == 1 and LINE.match(got[0])


def test_exception_traceback_follows_the_line(tmp_path: Path) -> None:
    setup_error_log("error_log", "error", {}, str(tmp_path))
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("portico.proxy").exception("request failed")
    text = (tmp_path / "error_log").read_text()
    assert "request failed\nTraceback (most recent call last):" in text
    assert "RuntimeError: boom" in text


def test_resetup_replaces_target_and_levels(tmp_path: Path) -> None:
    setup_error_log("first_log", "error", {"proxy": "debug"}, str(tmp_path))
    logging.getLogger("portico.proxy").debug("one")
    setup_error_log("second_log", "warn", {}, str(tmp_path))
    setup_error_log("second_log", "warn", {}, str(tmp_path))  # the same again: still one copy
    logging.getLogger("portico.proxy").debug("debug now hidden")
    logging.getLogger("portico.proxy").warning("two")
    assert [line.rsplit("] ", 1)[1] for line in lines(tmp_path / "first_log")] == ["one"]
    assert [line.rsplit("] ", 1)[1] for line in lines(tmp_path / "second_log")] == ["two"]
    handlers = logging.getLogger("portico").handlers
    assert len(handlers) == 1
    assert logging.getLogger("portico.proxy").level == logging.NOTSET


def test_failed_resetup_keeps_the_old_log(tmp_path: Path) -> None:
    setup_error_log("kept_log", "warn", {}, str(tmp_path))
    with pytest.raises(LogOpenError, match="does not exist"):
        setup_error_log("missing/dir/log", "warn", {}, str(tmp_path))
    with pytest.raises(ValueError, match="unknown log level"):
        setup_error_log("other_log", "verbose", {}, str(tmp_path))
    with pytest.raises(ValueError, match="unknown log level"):
        setup_error_log("other_log", "warn", {"proxy": "loud"}, str(tmp_path))
    with pytest.raises(ValueError, match="syslog"):
        setup_error_log("syslog:local7", "warn", {}, str(tmp_path))
    logging.getLogger("portico").warning("still here")
    assert lines(tmp_path / "kept_log")[0].endswith("still here")
    assert not (tmp_path / "other_log").exists()


def test_close_restores_propagation(tmp_path: Path) -> None:
    setup_error_log("error_log", "warn", {"proxy": "debug"}, str(tmp_path))
    logger = logging.getLogger("portico")
    assert logger.propagate is False
    close_error_log()
    assert logger.propagate is True
    assert logger.handlers == []
    assert logger.level == logging.NOTSET
    assert logging.getLogger("portico.proxy").level == logging.NOTSET
    close_error_log()  # nothing set up: nothing to do
