"""The error log: httpd-style lines from the standard ``logging`` loggers under "portico".

``setup_error_log()`` puts one handler on the "portico" logger that writes lines such as::

    [Tue Nov 24 01:02:03.123456 2026] [proxy:error] [pid 1234] message

The module in brackets is the second part of the logger name ("portico.proxy.routing" logs
as ``proxy``; "portico" itself as ``core``). A record given ``extra={"client": "ip:port"}``
also shows ``[client ip:port]`` as httpd does. A record given ``extra={"vhost": host}`` (a
``VirtualHost``: messages about one request) goes to that host's own ErrorLog when it has
one, as httpd's request messages do; every other record goes to the main server's.
httpd's levels map onto ``logging`` levels, with NOTICE and TRACE1..TRACE8 (and ALERT,
EMERG) added; ``LogLevel proxy:debug`` sets the level of the "portico.proxy" logger, whose
children inherit it.

Calling ``setup_error_log()`` again (a graceful reload) replaces the previous destination and
levels; the new destination is opened before the old one is let go, so a bad new target
leaves the old log working.
"""

from __future__ import annotations

__all__ = [
    "ALERT", "EMERG", "NOTICE", "TRACE1", "TRACE2", "TRACE3", "TRACE4", "TRACE5", "TRACE6",
    "TRACE7", "TRACE8", "HttpdFormatter", "check_error_log", "close_error_log", "httpd_level",
    "HostLogging", "host_error_logs", "setup_error_log",
]

import bisect
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from portico.config.model import ServerConfig, Source
from portico.errors import ConfigError
from portico.logs.writer import AccessLogWriter, LogOpenError

EMERG = 60
ALERT = 55
NOTICE = 25
TRACE1, TRACE2, TRACE3, TRACE4, TRACE5, TRACE6, TRACE7, TRACE8 = range(9, 1, -1)

_LEVELS: dict[str, int] = {
    "emerg": EMERG, "alert": ALERT, "crit": logging.CRITICAL, "error": logging.ERROR,
    "warn": logging.WARNING, "notice": NOTICE, "info": logging.INFO, "debug": logging.DEBUG,
    **{f"trace{n}": 10 - n for n in range(1, 9)},
}
# For naming a record's level: the httpd name of the highest level at or below it.
_BY_NUMBER = sorted((number, name) for name, number in _LEVELS.items())
_NUMBERS = [number for number, _ in _BY_NUMBER]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

ROOT_LOGGER = "portico"


def httpd_level(name: str) -> int:
    """The ``logging`` level for an httpd level name (case-insensitive); ValueError if unknown."""
    level = _LEVELS.get(name.lower())
    if level is None:
        raise ValueError(
            f"unknown log level {name!r}: use one of emerg alert crit error warn notice info "
            "debug trace1..trace8")
    return level


def _level_name(levelno: int) -> str:
    index = bisect.bisect_right(_NUMBERS, levelno) - 1
    return _BY_NUMBER[max(index, 0)][1]


def _module_logger_name(module: str) -> str:
    """``proxy``, ``mod_proxy`` and ``mod_proxy.c`` all name the "portico.proxy" logger."""
    name = module.strip().removesuffix(".c").removeprefix("mod_")
    if not name:
        raise ValueError(f"LogLevel: empty module name in {module!r}")
    return f"{ROOT_LOGGER}.{name}"


class HttpdFormatter(logging.Formatter):
    """Formats records the way httpd's default ErrorLogFormat does (local time, microseconds)."""

    def format(self, record: logging.LogRecord) -> str:
        sec = int(record.created)
        usec = int((record.created - sec) * 1_000_000)
        tm = time.localtime(sec)
        stamp = (f"{_DAYS[tm.tm_wday]} {_MONTHS[tm.tm_mon - 1]} {tm.tm_mday:02d} "
                 f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}.{usec:06d} {tm.tm_year}")
        parts = record.name.split(".", 2)
        module = parts[1] if len(parts) > 1 else "core"
        client = getattr(record, "client", None)
        where = f" [client {client}]" if client else ""
        line = (f"[{stamp}] [{module}:{_level_name(record.levelno)}] [pid {record.process}]"
                f"{where} {record.getMessage()}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def _report_own_failure(message: str) -> None:
    # The error log cannot report its own write errors to itself; stderr is what is left.
    sys.stderr.write(f"portico: error log: {message}\n")


class _Destination:
    """Where one server's messages go and from which level: the main server's, or a virtual
    host's own (its ErrorLog, its LogLevel merged over the main server's)."""

    __slots__ = ("_cache", "level", "modules", "writer")

    def __init__(self, writer: AccessLogWriter | None, level: int,
                 modules: Mapping[str, int]) -> None:
        self.writer = writer                 # None: stderr
        self.level = level
        self.modules = dict(modules)         # "portico.<module>" logger name -> level
        self._cache: dict[str, int] = {}

    def threshold(self, logger_name: str) -> int:
        """The level a record of ``logger_name`` must reach: its module's, else the base."""
        found = self._cache.get(logger_name)
        if found is None:
            name = logger_name
            found = self.level
            while name:
                if name in self.modules:
                    found = self.modules[name]
                    break
                name = name.rpartition(".")[0]
            self._cache[logger_name] = found
        return found


class _ErrorLogHandler(logging.Handler):
    """Writes each record at once to a file, a piped log program or stderr: the main
    server's, or the one of the virtual host the record names (``vhost``), at that
    server's levels (the loggers let through the lowest level any server asks for)."""

    def __init__(self, main: _Destination,
                 hosts: Mapping[Source, _Destination] | None = None) -> None:
        super().__init__()
        self.main = main
        self.hosts = dict(hosts or {})       # by the <VirtualHost> section's source
        self.module_loggers: list[str] = []  # loggers whose level this setup changed
        self.setFormatter(HttpdFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            where = self.main
            if self.hosts:
                host = getattr(record, "vhost", None)
                if host is not None:
                    where = self.hosts.get(host.source, where)
                if record.levelno < where.threshold(record.name):
                    return
            line = self.format(record) + "\n"
            writer = where.writer
            if writer is None:
                # sys.stderr looked up per line: it may be replaced after setup (tests, daemons).
                sys.stderr.write(line)
                sys.stderr.flush()
            else:
                writer.write(line)
                writer.flush()
        except Exception:  # logging's contract: a handler never raises into the caller
            self.handleError(record)

    def close(self) -> None:
        writers = (d.writer for d in (self.main, *self.hosts.values()))
        for writer in {id(w): w for w in writers if w is not None}.values():
            writer.close()
        super().close()


_DEFAULT_NAME = "the default ErrorLog logs/error_log (there is no ErrorLog directive)"


def _describe(target: str, server_root: str) -> str:
    """How an error about the log at ``target`` names it, when the config is not at hand."""
    if target == os.path.join(server_root, "logs/error_log"):
        return _DEFAULT_NAME
    return f"ErrorLog {target}"


def log_file_problem(path: str) -> str | None:
    """Why the log file ``path`` could not be opened for appending, or None (creates
    nothing). httpd's -t checks the error log's directory the same way."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        return f"cannot access directory {directory}/: it does not exist"
    if os.path.isdir(path):
        return f"{path} is a directory"
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            return f"{path} is not writable"
    elif not os.access(directory, os.W_OK | os.X_OK):
        return f"cannot create {path}: directory {directory}/ is not writable"
    return None


@dataclass(frozen=True, slots=True)
class HostLogging:
    """A virtual host's own ErrorLog and LogLevel (None where it has none of its own)."""

    target: str | None
    level: str | None
    module_levels: Mapping[str, str]


def host_error_logs(config: ServerConfig) -> dict[Source, HostLogging]:
    """The virtual hosts with an ErrorLog or LogLevel of their own, by section source."""
    return {host.source: HostLogging(host.error_log, host.log_level, host.module_log_levels)
            for host in config.vhosts
            if host.error_log or host.log_level or host.module_log_levels}


def _file_problem(target: str, server_root: str) -> str | None:
    if target in ("", "stderr") or target.startswith(("|", "syslog")):
        return None
    return log_file_problem(os.path.join(server_root, target))


def check_error_log(config: ServerConfig) -> None:
    """Raise ConfigError, naming the ErrorLog line (or the default), if one of ``config``'s
    error logs (the main server's, or a virtual host's) is a file that cannot be opened for
    appending. For ``-t`` and before serving or reloading, so the reason is told before
    anything is switched."""
    problem = _file_problem(config.error_log, config.server_root)
    if problem is not None:
        source = config.error_log_source
        if source is None:
            raise ConfigError(f"{_DEFAULT_NAME}: {problem}", config.source_file)
        raise ConfigError(problem, source.file, source.line, "ErrorLog")
    for host in config.vhosts:
        if host.error_log:
            problem = _file_problem(host.error_log, config.server_root)
            if problem is not None:
                where = host.error_log_source or host.source
                raise ConfigError(problem, where.file, where.line, "ErrorLog")


def _register_level_names() -> None:
    for name, number in _LEVELS.items():
        if logging.getLevelName(number) == f"Level {number}":
            logging.addLevelName(number, name.upper())


def setup_error_log(
    target: str, level: str, module_levels: Mapping[str, str], server_root: str,
    hosts: Mapping[Source, HostLogging] | None = None,
) -> None:
    """Send the "portico" loggers to ``target`` at ``level``, httpd style, and the messages
    about one virtual host's requests to its own ErrorLog at its own LogLevel (``hosts``:
    host_error_logs(); a host's LogLevel is merged over the main server's, as in httpd).

    ``target`` is a file (relative to ``server_root``), a ``|command`` piped log, or
    ``"stderr"`` / ``""`` (``syslog[:facility]`` is refused). ``module_levels`` maps module
    names (``proxy``, ``mod_proxy.c``) to levels for the "portico.<module>" loggers.
    Raises ``ValueError`` for an unknown level and ``LogOpenError`` for a destination that
    cannot be opened; either way the previous setup stays in place. Safe to call again: it
    replaces what an earlier call set up.
    """
    main_level = httpd_level(level)
    per_module = {_module_logger_name(m): httpd_level(v) for m, v in module_levels.items()}
    host_levels = {
        source: (httpd_level(h.level) if h.level else main_level,
                 {**per_module, **{_module_logger_name(m): httpd_level(v)
                                   for m, v in h.module_levels.items()}})
        for source, h in (hosts or {}).items()}
    for where in (target, *(h.target for h in (hosts or {}).values() if h.target)):
        if where == "syslog" or where.startswith("syslog:"):
            # httpd's syslog:facility target; not a file called "syslog" in ServerRoot.
            raise ValueError(f"ErrorLog {where}: logging to syslog is not supported yet")
    opened: dict[str, AccessLogWriter | None] = {}

    def open_once(where: str) -> AccessLogWriter | None:
        """One writer per destination, shared by the hosts that name it."""
        if where in opened:
            return opened[where]
        writer = None
        if where not in ("", "stderr"):
            writer = AccessLogWriter(on_error=_report_own_failure)
            try:
                writer.open(where, server_root)
            except LogOpenError as exc:
                for done in opened.values():
                    if done is not None:
                        done.close()
                raise LogOpenError(f"{_describe(where, server_root)}: {exc}") from None
        opened[where] = writer
        return writer

    main = _Destination(open_once(target), main_level, per_module)
    destinations = {
        source: _Destination(open_once(h.target) if h.target else main.writer,
                             *host_levels[source])
        for source, h in (hosts or {}).items()}
    handler = _ErrorLogHandler(main, destinations)
    _register_level_names()
    close_error_log()
    logger = logging.getLogger(ROOT_LOGGER)
    logger.addHandler(handler)
    # The loggers let through the lowest level any server asks for; the handler then keeps
    # what the record's own server asked for.
    logger.setLevel(min([main_level, *(lv for lv, _ in host_levels.values())]))
    # The error log is the destination; records must not also reach whatever the root
    # logger prints to.
    logger.propagate = False
    module_names = set(per_module).union(*(mods for _, mods in host_levels.values()))
    for name in module_names:
        logging.getLogger(name).setLevel(min(
            d.threshold(name) for d in (main, *destinations.values())))
    handler.module_loggers = list(module_names)


def close_error_log() -> None:
    """Undo ``setup_error_log()``: flush and close the destination, reset levels, propagate
    to the root logger again. Does nothing when no error log is set up."""
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler, _ErrorLogHandler):
            logger.removeHandler(handler)
            for name in handler.module_loggers:
                logging.getLogger(name).setLevel(logging.NOTSET)
            handler.close()
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
