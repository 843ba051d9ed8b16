"""Config files and static bodies for the benchmark, written into one private temp dir.

Every path the servers touch (pid files, logs, nginx temp dirs, docroot) lives under that
dir, so a run leaves nothing behind outside it and never needs root.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).resolve().parent / "templates"

# Body name -> size in bytes. The URL path is "/<name>".
BODIES: dict[str, int] = {"small": 100, "64k": 64 * 1024}

_NGINX_TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclass(frozen=True)
class Ports:
    """Loopback ports chosen for this run."""

    origin: int
    nginx: int
    portico: int


def _render(template_name: str, **values: str | int) -> str:
    """Fill a template from bench/templates; a missing key raises KeyError (a bug here)."""
    text = (TEMPLATES / template_name).read_text(encoding="utf-8")
    return Template(text).substitute({k: str(v) for k, v in values.items()})


def _user_line() -> str:
    """nginx's `user` line: workers keep the invoking user's identity.

    When started as root, nginx would otherwise drop its workers to `nobody`, who cannot read
    a 0700 temp dir; running them as the invoking user avoids loosening any permissions.
    """
    if os.geteuid() != 0:
        return "# not root: workers run as the invoking user"
    return f"user {pwd.getpwuid(os.geteuid()).pw_name};"


def _temp_paths(prefix: Path, name: str) -> str:
    """nginx *_temp_path lines under `prefix`, so nothing is written to /var/lib/nginx."""
    lines = []
    for kind in _NGINX_TEMP_KINDS:
        path = prefix / f"{name}-temp" / kind
        path.mkdir(parents=True, exist_ok=True)
        lines.append(f"    {kind}_temp_path {path};")
    return "\n".join(lines)


def write_docroot(prefix: Path) -> Path:
    """Write one file per entry of BODIES (exact byte sizes) and return the docroot."""
    docroot = prefix / "docroot"
    docroot.mkdir(parents=True, exist_ok=True)
    for name, size in BODIES.items():
        line = b"portico benchmark body; the same bytes repeat to fill the requested size.\n"
        body = (line * (size // len(line) + 1))[:size]
        (docroot / name).write_bytes(body)
    return docroot


def write_origin_conf(prefix: Path, ports: Ports, docroot: Path) -> Path:
    """The origin nginx config (1 worker, static files, keep-alive, no access log)."""
    conf = prefix / "origin.nginx.conf"
    conf.write_text(
        _render(
            "origin.nginx.conf",
            user_line=_user_line(),
            prefix=prefix,
            port=ports.origin,
            docroot=docroot,
            temp_paths=_temp_paths(prefix, "origin"),
        ),
        encoding="utf-8",
    )
    return conf


def write_nginx_proxy_conf(prefix: Path, ports: Ports, with_log: bool, keepalive: int) -> Path:
    """The nginx reverse-proxy config; with_log turns its access log on (combined format).

    `keepalive` is the upstream block's idle-connection cache size per worker.
    """
    if with_log:
        access = f"    access_log {prefix}/nginx-access.log combined;"
    else:
        access = "    access_log off;"
    conf = prefix / "proxy.nginx.conf"
    conf.write_text(
        _render(
            "proxy.nginx.conf",
            user_line=_user_line(),
            prefix=prefix,
            port=ports.nginx,
            origin_port=ports.origin,
            access_log_line=access,
            keepalive=keepalive,
            temp_paths=_temp_paths(prefix, "proxy"),
        ),
        encoding="utf-8",
    )
    return conf


def write_portico_conf(prefix: Path, ports: Ports, with_log: bool) -> Path:
    """The portico config (httpd syntax); with_log adds a common-format CustomLog."""
    if with_log:
        access = (
            'LogFormat "%h %l %u %t \\"%r\\" %>s %b" common\n'
            f"CustomLog {prefix}/portico-access.log common"
        )
    else:
        access = "# no access log, like nginx's access_log off"
    conf = prefix / "portico.conf"
    conf.write_text(
        _render(
            "portico.conf",
            prefix=prefix,
            port=ports.portico,
            origin_port=ports.origin,
            access_log_lines=access,
        ),
        encoding="utf-8",
    )
    return conf
