"""The command line, as with httpd/apachectl: -t, -D with <IfDefine>, -k stop|graceful, -v,
and a clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.e2e.rawhttp import RawConn
from tests.support.origin import Origin
from tests.support.proxy import Portico, prologue_line_count, run_cli, server_kind

HTTPD = server_kind() == "httpd"


def check(tmp_path, template: str, **subs: object) -> subprocess.CompletedProcess[str]:
    conf, _ = Portico.write_config(template, tmp_path, **subs)
    return subprocess.run(Portico.command(conf, tmp_path, "-t"), capture_output=True,
                          text=True, timeout=10, stdin=subprocess.DEVNULL)


def test_syntax_check_ok(tmp_path):
    r = check(tmp_path, "ProxyPass /a http://127.0.0.1:9/\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Syntax OK" in r.stdout + r.stderr


def assert_located(out: str, conf_line: int, directive: str) -> None:
    """The error names the file and line (file:line, or httpd's "line N of FILE") and the
    directive."""
    assert re.search(rf"portico\.conf:{conf_line}\b|line {conf_line} of \S*portico\.conf",
                     out), out
    assert directive in out, out


def test_syntax_check_unknown_directive(tmp_path):
    r = check(tmp_path, "ProxyPass /a http://127.0.0.1:9/\nNoSuchDirective on\n")
    assert r.returncode != 0
    assert "Syntax OK" not in r.stdout + r.stderr
    assert_located(r.stdout + r.stderr, prologue_line_count() + 2, "NoSuchDirective")


def test_syntax_check_bad_worker_parameter(tmp_path):
    r = check(tmp_path, "ProxyPass /a http://127.0.0.1:9/ bogus=1\n")
    assert r.returncode != 0
    assert_located(r.stdout + r.stderr, prologue_line_count() + 1, "ProxyPass")


IFDEFINE = """
<IfDefine WITH_FOO>
    ProxyPass /d {{o}}/on
</IfDefine>
<IfDefine !WITH_FOO>
    ProxyPass /d {{o}}/off
</IfDefine>
"""


@pytest.mark.parametrize(("args", "seen"), [(["-D", "WITH_FOO"], "/on/x"), ([], "/off/x")])
def test_define_selects_ifdefine_sections(tmp_path, origin: Origin, args, seen):
    with Portico.start(IFDEFINE, tmp_path, extra_args=args, o=origin.url) as p, \
            RawConn(p.port) as conn:
        assert conn.request("GET", "/d/x").status == 200
    assert origin.requests[0].target == seen


def test_dash_x_is_accepted(tmp_path, origin: Origin):
    with Portico.start("ProxyPass / {{o}}/\n", tmp_path, extra_args=["-X"], o=origin.url) as p, \
            RawConn(p.port) as conn:
        assert conn.request("GET", "/echo").status == 200


def test_version(tmp_path):
    r = run_cli(["-v"])
    assert r.returncode == 0
    out = r.stdout + r.stderr
    assert ("Apache/2.4" if HTTPD else "portico") in out, out


BUILT = importlib.util.find_spec("portico.protocols._speedups") is not None


@pytest.mark.skipif(HTTPD, reason="portico's own build information")
@pytest.mark.parametrize(("pure", "expected"), [
    (False, "compiled" if BUILT else "not built"),
    (True, "PORTICO_PURE_PYTHON is set"),
])
def test_version_says_which_head_parsers_run(pure, expected):
    env = {k: v for k, v in os.environ.items() if k != "PORTICO_PURE_PYTHON"}
    if pure:
        env["PORTICO_PURE_PYTHON"] = "1"
    r = subprocess.run([sys.executable, "-m", "portico", "-v"], capture_output=True,
                       text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("HTTP/1 head parsers: "))
    assert expected in line, r.stdout


def test_k_stop_stops_the_running_server(tmp_path, origin: Origin):
    p = Portico.start("ProxyPass / {{o}}/\n", tmp_path, o=origin.url)
    try:
        r = subprocess.run(Portico.command(p.conf, tmp_path, "-k", "stop"), capture_output=True,
                           text=True, timeout=10, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stdout + r.stderr
        assert p.proc is not None
        p.proc.wait(10)
    finally:
        p.stop()
    assert not p.alive()


def test_k_graceful_keeps_serving(tmp_path, origin: Origin):
    if HTTPD:
        pytest.skip("a one-process httpd -X exits on graceful; portico reloads in place")
    with Portico.start("ProxyPass / {{o}}/\n", tmp_path, o=origin.url) as p:
        r = subprocess.run(Portico.command(p.conf, tmp_path, "-k", "graceful"),
                           capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stdout + r.stderr
        deadline = time.monotonic() + 5
        status = 0
        while time.monotonic() < deadline and status != 200:
            try:
                with RawConn(p.port) as conn:
                    status = conn.request("GET", "/echo").status
            except OSError:
                time.sleep(0.05)  # the listener may be swapped during the reload
        assert status == 200
        assert p.alive()


def _start_for_signals(tmp_path, origin: Origin) -> Portico:
    if not HTTPD:
        return Portico.start("ProxyPass / {{o}}/\n", tmp_path, o=origin.url)
    # httpd 2.4.71's one-process debug mode (-X) dies of SIGSEGV on about one SIGTERM or
    # SIGINT in ten (in its main thread, at exit); its parent process exits cleanly every
    # time, so the reference is run that way, in the foreground.
    conf, port = Portico.write_config("ProxyPass / {{o}}/\n", tmp_path, o=origin.url)
    p = Portico(conf, tmp_path, port, Portico.command(conf, tmp_path, "-D", "FOREGROUND"))
    p._spawn()
    return p


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_gives_a_clean_exit(tmp_path, origin: Origin, sig):
    p = _start_for_signals(tmp_path, origin)
    assert p.proc is not None
    try:
        with RawConn(p.port) as conn:
            assert conn.request("GET", "/echo").status == 200
        p.proc.send_signal(sig)
        code = p.proc.wait(10)
    finally:
        p.stop()
    assert code == 0, p.stderr
    assert "Traceback" not in p.stderr


# One process, then the multi-process model: portico's master with `-w 2` worker processes;
# httpd's parent with its children (httpd has no -w; -D FOREGROUND keeps it from detaching).
MULTI_PROCESS = ["-D", "FOREGROUND"] if HTTPD else ["-w", "2"]


@pytest.mark.parametrize("mode", [["-X"], MULTI_PROCESS])
def test_a_second_server_on_a_taken_address_refuses_to_start(tmp_path, origin: Origin, mode):
    """httpd: "could not bind to address". SO_REUSEPORT must not let a second server share
    the port (and split the traffic between two configs)."""
    with Portico.start("ProxyPass / {{o}}/\n", tmp_path / "first", o=origin.url) as first:
        conf, _ = Portico.write_config("ProxyPass / {{o}}/\n", tmp_path / "second",
                                       port=first.port, o=origin.url)
        second = subprocess.run(Portico.command(conf, tmp_path / "second", *mode),
                                capture_output=True, text=True, timeout=20,
                                stdin=subprocess.DEVNULL)
        assert second.returncode != 0
        assert "could not bind to address" in second.stderr + second.stdout
        with RawConn(first.port) as conn:
            assert conn.request("GET", "/echo").status == 200
