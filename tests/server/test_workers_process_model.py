"""The master/worker process model over real processes and sockets (DESIGN rule 11):
reloads under load drop nothing, a killed worker is replaced, -w/-X/Workers choose the
process count, a bad config on reload changes nothing, SIGTERM drains."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.server.loadgen import Load, children, get_marker, wait_until
from tests.support.origin import Origin
from tests.support.proxy import Portico, prologue_line_count, run_cli, server_kind

pytestmark = pytest.mark.skipif(server_kind() != "portico",
                                reason="portico's own process model")

TEMPLATE = """\
LogLevel notice
KeepAliveTimeout 5
ProxyPass /app/ {{o}}/echo/gen{{gen}}/
"""


def start(tmp_path: Path, origin: Origin, *args: str, template: str = TEMPLATE,
          gen: int = 1) -> Portico:
    """Start ``portico -f CONF ARGS`` exactly as given (``Portico.start`` adds ``-X`` unless
    it sees ``-w``; a test of the Workers directive needs neither)."""
    conf, port = Portico.write_config(template, tmp_path, o=origin.url, gen=gen)
    p = Portico(conf, tmp_path, port, Portico.command(conf, tmp_path, *args))
    p._spawn()
    return p


def rewrite(p: Portico, origin: Origin, gen: int, template: str = TEMPLATE) -> None:
    Portico.write_config(template, p.workdir, port=p.port, o=origin.url, gen=gen)


def wait_workers(p: Portico, n: int, timeout: float = 10.0,
                 without: int | None = None) -> set[int]:
    """Wait until the master has exactly ``n`` workers (none of them ``without``)."""
    def check() -> set[int] | None:
        kids = children(p.pid)
        return kids if len(kids) == n and without not in kids else None
    try:
        return wait_until(check, timeout, f"{n} worker processes")  # type: ignore[return-value]
    except AssertionError as exc:
        raise AssertionError(f"{exc}: have {children(p.pid)}\n--- error log ---\n"
                             f"{p.error_log}\n--- stderr ---\n{p.stderr}") from None


def test_reloads_under_load_fail_no_request(tmp_path: Path, origin: Origin):
    p = start(tmp_path, origin, "-w", "2")
    with p:
        wait_workers(p, 2)
        with Load(p.port, keepalive=3, fresh=3) as load:
            wait_until(lambda: load.count() >= 50, 10, "load to get going")
            for gen in range(2, 7):
                rewrite(p, origin, gen)
                if gen % 2:
                    r = run_cli(["-f", str(p.conf), "-k", "graceful"])
                    assert r.returncode == 0, r.stdout + r.stderr
                else:
                    os.kill(p.pid, signal.SIGHUP)
                marker = f"gen{gen}"
                wait_until(lambda m=marker: get_marker(p.port) == m, 10, f"{marker} to answer")
                # The running clients, keep-alive ones included, move over as well.
                since = time.monotonic()
                wait_until(lambda m=marker, s=since: load.count(s, m) >= 20, 10,
                           f"the load to reach {marker}")
            seen_last = time.monotonic()
            wait_until(lambda: load.count(seen_last) >= 20, 10, "more load after the reloads")
        outcomes = load.snapshot()
        failures = load.failures()
        assert not failures, (failures[:5], p.error_log)
        assert not [o for o in outcomes if o.reset]
        assert len(outcomes) > 200
        assert {o.marker for o in outcomes} == {f"gen{g}" for g in range(1, 7)}
        # Old generations are gone: two workers remain, the ones of the last generation.
        wait_workers(p, 2)
        assert p.error_log.count("graceful reload done") == 5, p.error_log
    assert p.proc is not None and p.proc.returncode == 0


def test_killed_worker_is_replaced_and_service_continues(tmp_path: Path, origin: Origin):
    p = start(tmp_path, origin, "-w", "2")
    with p:
        before = wait_workers(p, 2)
        with Load(p.port, keepalive=2, fresh=2) as load:
            wait_until(lambda: load.count() >= 30, 10, "load to get going")
            victim = min(before)
            os.kill(victim, signal.SIGKILL)
            after = wait_workers(p, 2, without=victim)
            replaced_at = time.monotonic()
            wait_until(lambda: load.count(replaced_at) >= 100, 10, "load after the restart")
        assert len(after - before) == 1
        late_failures = load.failures(since=replaced_at)
        assert not late_failures, late_failures[:5]
        p.wait_for_log("error_log", f"worker pid {victim} (slot")
        assert "exit signal SIGKILL (9)" in p.error_log


def test_w_sets_the_number_of_workers(tmp_path: Path, origin: Origin):
    with start(tmp_path, origin, "-w", "2") as p:
        kids = wait_workers(p, 2)
        assert get_marker(p.port) == "gen1"
        # Each worker listens on a socket of its own (one reuseport slot each).
        def listening() -> dict[int, set[str]] | None:
            found = {pid: _listening_inodes(pid, p.port) for pid in kids}
            return found if all(found.values()) else None
        sockets = wait_until(listening, 10, "both workers to listen")
        assert all(len(found) == 1 for found in sockets.values()), sockets
        assert len(set.union(*sockets.values())) == 2, sockets


def _listening_inodes(pid: int, port: int) -> set[str]:
    """Inodes of the LISTEN sockets on 127.0.0.1:port that process ``pid`` has open."""
    listening = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
                listening.add(fields[9])
    mine = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in listening:
            mine.add(target[8:-1])
    return mine


def test_workers_directive_and_single_process_mode(tmp_path: Path, origin: Origin):
    template = "Workers 3\nLogLevel info\n" + TEMPLATE
    with start(tmp_path / "three", origin, template=template) as p:
        wait_workers(p, 3)
    with start(tmp_path / "cli-wins", origin, "-w", "1", template=template) as p:
        wait_workers(p, 1)
    with start(tmp_path / "single", origin, "-X", template=template) as p:
        assert get_marker(p.port) == "gen1"
        assert children(p.pid) == set()


def test_bad_config_on_reload_keeps_the_old_one(tmp_path: Path, origin: Origin):
    p = start(tmp_path, origin, "-w", "2")
    with p:
        kids = wait_workers(p, 2)
        bad = TEMPLATE + "ProxyPass /broken\n"
        rewrite(p, origin, 2, template=bad)
        os.kill(p.pid, signal.SIGHUP)
        bad_line = prologue_line_count() + bad.count("\n")
        text = p.wait_for_log("error_log", "reload failed")
        assert f"portico.conf:{bad_line}" in text, text
        assert "ProxyPass" in text
        assert get_marker(p.port) == "gen1"
        assert children(p.pid) == kids

        # A config that parses but cannot bind its new Listen address changes nothing either.
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            rewrite(p, origin, 3, template=f"Listen 127.0.0.1:{busy}\n" + TEMPLATE)
            since = len(p.error_log)
            os.kill(p.pid, signal.SIGUSR1)
            text = p.wait_for_log("error_log", "reload failed", since=since)
            assert f"could not bind to address 127.0.0.1:{busy}" in text, text
        assert get_marker(p.port) == "gen1"
        assert children(p.pid) == kids

        # And a good one afterwards is taken.
        rewrite(p, origin, 4)
        os.kill(p.pid, signal.SIGHUP)
        wait_until(lambda: get_marker(p.port) == "gen4", 10, "gen4 to answer")


def test_sigterm_drains_in_flight_requests_then_exits(tmp_path: Path, origin: Origin):
    template = "ProxyPass /slow/ {{o}}/slow/\n" + TEMPLATE
    p = start(tmp_path, origin, "-w", "2", template=template)
    pid_file = tmp_path / "portico.pid"
    with p:
        kids = wait_workers(p, 2)
        assert pid_file.read_text().strip() == str(p.pid)
        result: list[bytes] = []
        with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
            s.sendall(b"GET /slow/1500 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            wait_until(lambda: any(r.path == "/slow/1500" for r in origin.requests), 5,
                       "the slow request to reach the origin")
            os.kill(p.pid, signal.SIGTERM)

            def read() -> None:
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
                result.append(data)

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            reader.join(10)
        assert result and result[0].startswith(b"HTTP/1.1 200"), result
        assert p.proc is not None
        assert p.proc.wait(10) == 0
        assert not pid_file.exists()
        assert not any(os.path.exists(f"/proc/{k}/stat") and k in children(p.pid)
                       for k in kids)


def test_second_sigterm_stops_at_once(tmp_path: Path, origin: Origin):
    template = "ProxyPass /hang {{o}}/hang\n" + TEMPLATE
    p = start(tmp_path, origin, "-w", "2", template=template)
    with p:
        wait_workers(p, 2)
        with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
            s.sendall(b"GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
            wait_until(lambda: any(r.path == "/hang" for r in origin.requests), 5,
                       "the hanging request to reach the origin")
            os.kill(p.pid, signal.SIGTERM)
            p.wait_for_log("error_log", "shutting down")
            assert p.alive()  # still draining the hanging request
            t0 = time.monotonic()
            os.kill(p.pid, signal.SIGTERM)
            assert p.proc is not None
            p.proc.wait(10)
            assert time.monotonic() - t0 < 5


def test_fast_crashes_back_off(tmp_path: Path, origin: Origin):
    with start(tmp_path, origin, "-w", "1") as p:
        victim = next(iter(wait_workers(p, 1)))
        for _ in range(3):
            os.kill(victim, signal.SIGKILL)
            victim = next(iter(wait_workers(p, 1, without=victim)))
        log = p.error_log
        delays = [line.rsplit("restarting it in ", 1)[1] for line in log.splitlines()
                  if "restarting it in" in line]
        assert delays == ["0.00 s", "0.25 s", "0.50 s"], log
        assert get_marker(p.port) == "gen1"


def test_a_worker_that_cannot_start_fails_the_startup(tmp_path: Path, origin: Origin):
    template = "CustomLog {{tmp}}/missing/dir/access.log common\n" + TEMPLATE
    conf, _ = Portico.write_config(template, tmp_path, o=origin.url, gen=1)
    r = run_cli(["-f", str(conf), "-w", "2"])
    assert r.returncode == 1
    assert r.stderr.count("CustomLog") == 1, r.stderr
    assert "portico.conf:" in r.stderr
    assert not (tmp_path / "portico.pid").exists()


def test_workers_stop_when_the_master_is_killed(tmp_path: Path, origin: Origin):
    p = start(tmp_path, origin, "-w", "2")
    with p:
        kids = wait_workers(p, 2)
        os.kill(p.pid, signal.SIGKILL)
        assert p.proc is not None
        p.proc.wait(5)
        wait_until(lambda: not any(_running(k) for k in kids), 10,
                   "the orphaned workers to exit")


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("mode", [("-X",), ("-w", "2")], ids=["single", "master"])
def test_a_reload_that_names_another_pid_file_moves_it(tmp_path: Path, origin: Origin, mode):
    p = start(tmp_path, origin, *mode)
    first, moved = tmp_path / "portico.pid", tmp_path / "moved.pid"
    with p:
        wait_until(lambda: first.exists() and first.read_text().strip() == str(p.pid), 10,
                   "the first pid file")
        Portico.write_config(TEMPLATE, p.workdir, port=p.port, o=origin.url, gen=2,
                             pid_file=moved)
        os.kill(p.pid, signal.SIGHUP)
        wait_until(lambda: get_marker(p.port) == "gen2", 10, "gen2 to answer")
        wait_until(lambda: moved.exists() and moved.read_text().strip() == str(p.pid), 10,
                   "the moved pid file")
        assert not first.exists()
    assert p.proc is not None and p.proc.wait(10) == 0
    assert not moved.exists()
