"""Access and error logs: mod_log_config formats, buffered file and piped writers, and the
httpd-style error log on top of the standard ``logging`` module."""

from portico.logs.errorlog import close_error_log, httpd_level, setup_error_log
from portico.logs.format import LogFormatter, compile_format, escape_bytes, escape_str
from portico.logs.record import AccessRecord
from portico.logs.writer import AccessLog, AccessLogWriter, WriterPool

__all__ = [
    "AccessLog",
    "AccessLogWriter",
    "AccessRecord",
    "LogFormatter",
    "WriterPool",
    "close_error_log",
    "compile_format",
    "escape_bytes",
    "escape_str",
    "httpd_level",
    "setup_error_log",
]
