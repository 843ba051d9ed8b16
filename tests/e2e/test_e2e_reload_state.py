"""Balancer state survives a graceful reload (issue 3): the new configuration generation takes
over lbstatus, elected and flags of the members it still has, so a byrequests schedule goes on
where it was instead of starting again."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.idservers import IdServers
from tests.support.lbclient import member_sequence
from tests.support.lbconf import start_balanced
from tests.support.proxy import Portico, server_kind

RECORDED = Path(__file__).resolve().parent.parent / "upstream" / "httpd_sequences"

TEMPLATE = """
LogLevel info
<Proxy "balancer://lb">
    BalancerMember {{a}} loadfactor=1
    BalancerMember {{b}} loadfactor=2
    BalancerMember {{c}} loadfactor=3
    ProxySet lbmethod=byrequests
</Proxy>
ProxyPass "/" "balancer://lb/"
"""

pytestmark = pytest.mark.skipif(server_kind() == "httpd",
                                reason="checks portico's scoreboard migration")


def _reload(p: Portico, tmp_path: Path, marker: str) -> None:
    # The reload changes the configuration (a new rule), so a new model and, under the
    # master, a new generation of processes and a new scoreboard are built.
    p.conf.write_text(p.conf.read_text() + "ProxyPass /elsewhere !\n")
    since = len(p.error_log)
    r = subprocess.run(Portico.command(p.conf, tmp_path, "-k", "graceful"), timeout=10,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    p.wait_for_log("error_log", marker, timeout=10, since=since)


@pytest.mark.parametrize(("args", "marker"), [
    ((), "reloaded configuration"),                # -X: one process reloads in place
    (("-w", "1"), "graceful reload done"),         # master: a new generation of workers
])
def test_byrequests_schedule_continues_across_a_reload(tmp_path, args, marker) -> None:
    expected = json.loads((RECORDED / "byrequests_1_2_3.json").read_text())["sequence"]
    with IdServers(["a", "b", "c"]) as servers:
        p = start_balanced(TEMPLATE, tmp_path, servers, extra_args=args)
        try:
            before = member_sequence(p.port, [("/x", None)] * 7)
            _reload(p, tmp_path, marker)
            after = member_sequence(p.port, [("/x", None)] * 23)
        finally:
            p.stop()
    assert before + after == expected
