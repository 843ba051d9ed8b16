"""Command line: argv → action, nothing else (mirrors httpd / apachectl).

    portico -f CONF            serve in the foreground: a master and N worker processes
    portico -w N -f CONF       ... with N workers (else the Workers directive, else one per CPU)
    portico -X -f CONF         one process in the foreground (httpd's debug mode)
    portico -t -f CONF         check the configuration: "Syntax OK" or the error
    portico -D NAME ...        define NAME for <IfDefine> / ${NAME}
    portico -k graceful|stop   signal the running server through its PidFile
    portico -v                 version
    portico demo               run the built-in demo (origins + examples/demo.conf)
    portico ctl ...            control a running server's balancers (portico/admin/ctl.py)
"""

from __future__ import annotations

__all__ = ["main"]

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence

from portico import __version__

_DEFAULT_CONF = "/etc/portico/portico.conf"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="portico", description="A reverse proxy that speaks httpd's mod_proxy config.")
    p.add_argument("-f", dest="config", default=None, help="configuration file")
    p.add_argument("-d", dest="server_root", default=None, help="ServerRoot")
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME",
                   help="define a name for <IfDefine> and ${NAME}")
    p.add_argument("-t", dest="test", action="store_true", help="check the configuration")
    p.add_argument("-k", dest="signal", choices=["start", "stop", "graceful", "restart",
                                                  "graceful-stop"],
                   help="signal the running server through its PidFile")
    p.add_argument("-X", dest="single", action="store_true",
                   help="one process in the foreground")
    p.add_argument("-w", dest="workers", type=_positive, default=None, metavar="N",
                   help="number of worker processes (default: Workers, else one per CPU)")
    p.add_argument("-v", dest="version", action="store_true", help="print the version")
    p.add_argument("command", nargs="?", choices=["demo"], help="demo: run the demo")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["ctl"]:
        # ctl has its own options and subcommands; everything after the word is its argv.
        from portico.admin.ctl import main as ctl_main
        return ctl_main(words[1:])
    args = _parser().parse_args(words)
    if args.version:
        from portico.protocols.http1 import head_parsers
        print(f"Server version: portico/{__version__}")
        print(f"HTTP/1 head parsers: {head_parsers()}")
        return 0
    if args.command == "demo":
        from portico.demo import run_demo
        return run_demo()
    config_path = os.path.abspath(args.config or _DEFAULT_CONF)
    if args.test:
        return _check(config_path, args.defines, args.server_root)
    if args.signal in ("stop", "graceful", "restart", "graceful-stop"):
        return _signal(config_path, args.defines, args.server_root, args.signal)
    if not args.single:
        from portico.server.workers import run_master
        return run_master(config_path, args.defines, args.server_root, args.workers)
    return _serve(config_path, args.defines, args.server_root)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expects a whole number of at least 1, got {text!r}")
    return value


def _check(path: str, defines: list[str], root: str | None) -> int:
    from portico.config import ConfigError, load_config
    from portico.logs.errorlog import check_error_log
    from portico.server.accesslog import build_access_logs
    try:
        config = load_config(path, defines, root)
        build_access_logs(config, open_files=False).close()
        check_error_log(config)
    except ConfigError as exc:
        print(f"Syntax error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"Syntax error: {exc}", file=sys.stderr)
        return 1
    print("Syntax OK")
    return 0


def _signal(path: str, defines: list[str], root: str | None, action: str) -> int:
    from portico.config import ConfigError, load_config
    try:
        config = load_config(path, defines, root)
    except ConfigError as exc:
        print(f"Syntax error: {exc}", file=sys.stderr)
        return 1
    if not config.pid_file:
        print("no PidFile in the configuration: cannot find the running server",
              file=sys.stderr)
        return 1
    pid_path = config.pid_file if os.path.isabs(config.pid_file) else os.path.join(
        config.server_root, config.pid_file)
    try:
        with open(pid_path) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        print(f"portico is not running (no valid pid in {pid_path})", file=sys.stderr)
        return 1
    signum = signal.SIGTERM if action in ("stop", "graceful-stop") else signal.SIGUSR1
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        print(f"portico (pid {pid}) is not running", file=sys.stderr)
        return 1
    if signum == signal.SIGTERM:
        # Wait until the server has drained: it removes its PidFile last (a process we did
        # not start may linger as a zombie, so its pid alone proves nothing).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not os.path.exists(pid_path) or not _alive(pid):
                return 0
            time.sleep(0.05)
        print(f"portico (pid {pid}) did not stop within 30 s", file=sys.stderr)
        return 1
    return 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _serve(path: str, defines: list[str], root: str | None) -> int:
    """``-X``: one process serving in the foreground; reloads happen inside it."""
    import asyncio

    from portico.config import ConfigError, load_config
    from portico.server.serve import ProxyServer
    try:
        config = load_config(path, defines, root)
    except ConfigError as exc:
        print(f"Syntax error: {exc}", file=sys.stderr)
        return 1
    server = ProxyServer(path, defines, root)
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency; stock loop still works
        runner = asyncio.run
    try:
        runner(server.run(config))
    except ConfigError as exc:
        print(f"portico: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
