"""An error log that cannot be opened (§ErrorLog): -t fails naming the ErrorLog line, or the
default logs/error_log when there is none, and serving (-X or the master) exits non-zero
with that message and no traceback. An ErrorLog inside <VirtualHost> gets the messages about
that host's requests."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.e2e.rawhttp import RawConn
from tests.support.proxy import Portico, free_port, server_kind

HTTPD = server_kind() == "httpd"

# The prologue has its own ErrorLog; these configs replace it, so they are written whole.
BASE = """\
Listen 127.0.0.1:{{port}}
ServerName proxy.test
PidFile {{pid_file}}
"""


def run(tmp_path, template: str, *args: str, **subs: object):
    conf, _ = Portico.write_config(BASE + template, tmp_path, prologue=False, **subs)
    return subprocess.run(Portico.command(conf, tmp_path, *args), capture_output=True,
                          text=True, timeout=20, stdin=subprocess.DEVNULL)


MODES = [("-t",), ("-X",), ()]


def refused(tmp_path, template: str, *args: str) -> str:
    """Run ``template`` in mode ``args``; it must exit non-zero without a traceback (nor
    "Syntax OK"). Its output."""
    r = run(tmp_path, template, *args)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "Syntax OK" not in out
    assert "Traceback" not in out
    return out


@pytest.mark.parametrize("args", MODES, ids=["check", "single", "master"])
def test_error_log_in_a_missing_directory(tmp_path, args):
    out = refused(tmp_path, "ErrorLog {{tmp}}/no-such-dir/error.log\n", *args)
    assert f"{tmp_path}/no-such-dir/" in out, out
    if not HTTPD:   # httpd's message names no directive or line
        assert re.search(rf"portico\.conf:{BASE.count(chr(10)) + 1}: ErrorLog: ", out), out


@pytest.mark.skipif(HTTPD, reason="httpd's message names the main error log, not the default")
@pytest.mark.parametrize("args", MODES, ids=["check", "single", "master"])
def test_default_error_log_without_a_logs_directory(tmp_path, args):
    # No ErrorLog: logs/error_log under ServerRoot (the config's directory), which has no
    # logs/ directory.
    out = refused(tmp_path, "", *args)
    assert "the default ErrorLog logs/error_log" in out, out
    assert f"cannot access directory {tmp_path}/logs/" in out, out


def test_error_log_of_a_virtual_host_in_a_missing_directory(tmp_path):
    conf = (
        "ErrorLog {{error_log}}\n"
        "<VirtualHost *:{{port}}>\n"
        "    ServerName vh.test\n"
        "    ErrorLog {{tmp}}/no-such-dir/vh.log\n"
        "</VirtualHost>\n")
    out = refused(tmp_path, conf, "-t")
    assert f"{tmp_path}/no-such-dir/" in out, out
    if not HTTPD:
        line = BASE.count("\n") + 4
        assert re.search(rf"portico\.conf:{line}: ErrorLog: ", out), out


VHOST_LOGS = """
<VirtualHost *:{{port}}>
    ServerName vh.test
    ErrorLog {{tmp}}/vh-error.log
    ProxyPass /down/ http://127.0.0.1:{{closed_vh}}/
</VirtualHost>
<VirtualHost *:{{port}}>
    ServerName other.test
    ProxyPass /down/ http://127.0.0.1:{{closed_other}}/
</VirtualHost>
"""


def test_a_virtual_hosts_request_messages_go_to_its_own_error_log(proxy_factory):
    # Nothing listens on these ports: each request fails to connect (503).
    closed_vh, closed_other = free_port(), free_port()
    p = proxy_factory(VHOST_LOGS, closed_vh=closed_vh, closed_other=closed_other)
    with RawConn(p.port) as conn:
        assert conn.request("GET", "/down/a", host="vh.test").status == 503
    with RawConn(p.port) as conn:
        assert conn.request("GET", "/down/b", host="other.test").status == 503
    p.wait_for_log("vh-error.log", f"127.0.0.1:{closed_vh}")
    p.wait_for_log("error_log", f"127.0.0.1:{closed_other}")
    # Each message went to one log only: the host's own, else the main server's.
    assert f":{closed_other}" not in p.log_file("vh-error.log")
    assert f":{closed_vh}" not in p.error_log


VHOST_LEVELS = """
LogLevel crit
<VirtualHost *:{{port}}>
    ServerName vh.test
    LogLevel error
    ProxyPass /down/ http://127.0.0.1:{{closed_vh}}/
</VirtualHost>
<VirtualHost *:{{port}}>
    ServerName quiet.test
    ErrorLog {{tmp}}/quiet-error.log
    ProxyPass /down/ http://127.0.0.1:{{closed_quiet}}/
</VirtualHost>
<VirtualHost *:{{port}}>
    ServerName other.test
    ProxyPass /down/ http://127.0.0.1:{{closed_other}}/
</VirtualHost>
"""


def test_a_virtual_hosts_log_level_applies_to_its_request_messages(proxy_factory):
    # The main server logs crit and worse; vh.test lowers that to error for its own
    # requests. quiet.test has its own log but inherits crit.
    closed = {name: free_port() for name in ("vh", "quiet", "other")}
    p = proxy_factory(VHOST_LEVELS,
                      **{f"closed_{k}": v for k, v in closed.items()})
    for host in ("other.test", "quiet.test", "vh.test"):
        with RawConn(p.port) as conn:
            assert conn.request("GET", "/down/x", host=host).status == 503
    p.wait_for_log("error_log", f"127.0.0.1:{closed['vh']}")   # logged last
    assert f":{closed['other']}" not in p.error_log
    assert f":{closed['quiet']}" not in p.error_log + p.log_file("quiet-error.log")
