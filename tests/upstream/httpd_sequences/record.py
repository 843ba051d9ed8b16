"""Record member sequences from real Apache httpd for the lbmethod replay tests.

Run by hand (pytest does not collect it), optionally naming scenarios::

    .venv/bin/python tests/upstream/httpd_sequences/record.py [NAME ...]

For each scenario it starts N tiny backends on 127.0.0.1 (each answers with its id in an
``X-Member`` header and a body of the scenario's size for that member), writes an httpd config
with one balancer in a temp dir, runs ``apache2 -X`` on a free high port, sends the scenario's
requests one after another, and stores the config, the members and the observed sequence in
``<scenario>.json`` beside this file. httpd and the backends are stopped by PID / shutdown.

A sequence entry is the member id that answered, or ``"503"`` when httpd answered 503.
The backends also record how many bytes of request head each request had, because httpd's
``transferred`` counter (bytraffic) includes the request head it sends; its ``read`` counter
holds the status line (without CRLF) plus the body, which the replay test relies on.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
APACHE = "/usr/sbin/apache2"
MODULES = (
    "mpm_event", "authz_core", "proxy", "proxy_http", "proxy_balancer", "slotmem_shm",
    "lbmethod_byrequests", "lbmethod_bytraffic", "lbmethod_bybusyness",
)
N_REQUESTS = 30
DEADLINE = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Backend(ThreadingHTTPServer):
    """Answers every request with ``X-Member: <id>`` and a body of ``size`` bytes."""

    daemon_threads = True

    def __init__(self, member_id: str, size: int) -> None:
        self.member_id = member_id
        self.size = size
        self.heads: list[int] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: Backend = self.server  # type: ignore[assignment]
        head = len(self.raw_requestline) + sum(
            len(k) + 2 + len(v) + 2 for k, v in self.headers.items()) + 2
        server.heads.append(head)
        body = (server.member_id.encode() * server.size)[:server.size]
        self.send_response(200)
        self.send_header("X-Member", server.member_id)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def member_line(m: dict, url: str) -> str:
    params = []
    if "loadfactor" in m:
        params.append(f"loadfactor={m['loadfactor']}")
    for key in ("lbset", "route", "redirect", "status", "retry"):
        if key in m:
            params.append(f"{key}={m[key]}")
    return f"    BalancerMember {url} {' '.join(params)}".rstrip()


def render_config(sc: dict, port: int, tmp: Path, urls: list[str]) -> str:
    mods = "".join(f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so\n"
                   for m in MODULES)
    members = "\n".join(member_line(m, u) for m, u in zip(sc["members"], urls, strict=True))
    bal = " ".join(f"{k}={v}" for k, v in sc.get("balancer", {}).items())
    return f"""{mods}User www-data
Group www-data
DefaultRuntimeDir {tmp}
Mutex file:{tmp} default
PidFile {tmp}/httpd.pid
ErrorLog {tmp}/error.log
LogLevel warn
ServerName recorder.test
Listen 127.0.0.1:{port}
<Proxy "balancer://lb">
{members}
    ProxySet lbmethod={sc["lbmethod"]} {bal}
</Proxy>
ProxyPass "/" "balancer://lb/"
"""


def get(port: int, path: str, cookie: str | None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    try:
        headers = {"Cookie": cookie} if cookie else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("X-Member") or ""
    finally:
        conn.close()


def wait_listening(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("httpd exited before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError("httpd did not listen")


def record(sc: dict) -> dict:
    backends: list[Backend | None] = []
    urls = []
    for m in sc["members"]:
        if m.get("dead"):
            backends.append(None)  # nothing listens there: connection refused
            urls.append(f"http://127.0.0.1:{free_port()}")
            continue
        b = Backend(m["id"], m.get("size", 2))
        threading.Thread(target=b.serve_forever, daemon=True).start()
        backends.append(b)
        urls.append(f"http://127.0.0.1:{b.server_address[1]}")
    tmp = Path(tempfile.mkdtemp(prefix="lbrec-"))
    os.chmod(tmp, 0o777)  # httpd's child drops to www-data and writes here
    port = free_port()
    conf_text = render_config(sc, port, tmp, urls)
    (tmp / "httpd.conf").write_text(conf_text)
    proc = subprocess.Popen([APACHE, "-X", "-d", str(tmp), "-f", str(tmp / "httpd.conf")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    sequence: list[str] = []
    heads: list[int] = []
    config_error = ""
    try:
        try:
            wait_listening(port, proc)
        except RuntimeError:
            # httpd refused the config (e.g. loadfactor 0.5): keep its message instead.
            assert proc.stderr is not None
            config_error = proc.stderr.read().decode(errors="replace").strip()
        requests = sc.get("requests") or [{} for _ in range(N_REQUESTS)]
        for i, req in enumerate([] if config_error else requests):
            path = req.get("path", f"/p/{i:02d}")
            status, member = get(port, path, req.get("cookie"))
            if status == 200:
                b = backends[[m["id"] for m in sc["members"]].index(member)]
                assert b is not None
                heads.append(b.heads[-1])
            else:
                heads.append(0)
            sequence.append(member if status == 200 else str(status))
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        for b in backends:
            if b is not None:
                b.shutdown()
                b.server_close()
    # Store the config with the ports replaced, so the file does not change run to run.
    shown = conf_text.replace(str(tmp), "TMP").replace(f":{port}", ":PORT")
    for i, u in enumerate(urls):
        shown = shown.replace(u, f"http://127.0.0.1:BACKEND{i}")
    return {**sc, "httpd": subprocess.run([APACHE, "-v"], capture_output=True, text=True,
                                          check=True).stdout.splitlines()[0],
            "config": shown, "request_head_bytes": heads, "sequence": sequence,
            **({"config_error": config_error.replace(str(tmp), "TMP")} if config_error else {})}


def m(ident: str, **kw: object) -> dict:
    return {"id": ident, **kw}


def cookie_requests(cookies: list[str | None], paths: list[str] | None = None) -> list[dict]:
    out = []
    for i, c in enumerate(cookies):
        req: dict = {"path": paths[i] if paths else f"/p/{i:02d}"}
        if c:
            req["cookie"] = c
        out.append(req)
    return out


SCENARIOS: list[dict] = [
    {"name": "byrequests_1_1_1", "lbmethod": "byrequests",
     "members": [m("a"), m("b"), m("c")]},
    {"name": "byrequests_1_2_3", "lbmethod": "byrequests",
     "members": [m("a", loadfactor=1), m("b", loadfactor=2), m("c", loadfactor=3)]},
    {"name": "byrequests_3_1", "lbmethod": "byrequests",
     "members": [m("a", loadfactor=3), m("b", loadfactor=1)]},
    {"name": "byrequests_1_3", "lbmethod": "byrequests",
     "members": [m("a", loadfactor=1), m("b", loadfactor=3)]},
    {"name": "byrequests_decimal", "lbmethod": "byrequests",
     "members": [m("a", loadfactor=1.5), m("b", loadfactor=1.75), m("c", loadfactor=2.25)]},
    {"name": "byrequests_70_30", "lbmethod": "byrequests",
     "members": [m("a", loadfactor=70), m("b", loadfactor=30)]},
    {"name": "byrequests_disabled", "lbmethod": "byrequests",
     "members": [m("a"), m("b", status="+D"), m("c"), m("d")]},
    {"name": "byrequests_lbset", "lbmethod": "byrequests",
     "members": [m("a", lbset=1), m("b", lbset=0, loadfactor=2), m("c", lbset=0),
                 m("d", lbset=1)]},
    {"name": "byrequests_lbset_lower_down", "lbmethod": "byrequests",
     "members": [m("a", lbset=1, loadfactor=2), m("b", lbset=0, status="+D"),
                 m("c", lbset=1), m("d", lbset=0, status="+S")]},
    {"name": "byrequests_standby", "lbmethod": "byrequests",
     "members": [m("a", status="+D"), m("b", status="+H"), m("c", status="+H", loadfactor=2)]},
    {"name": "byrequests_standby_unused", "lbmethod": "byrequests",
     "members": [m("a"), m("b", status="+H"), m("c")]},
    {"name": "byrequests_spare", "lbmethod": "byrequests",
     "members": [m("a"), m("b", status="+D"), m("c", status="+R"), m("d", status="+R"),
                 m("e")]},
    {"name": "byrequests_spare_two_down", "lbmethod": "byrequests",
     "members": [m("a", status="+D"), m("b", status="+S"), m("c", status="+R"),
                 m("d", status="+R", loadfactor=3), m("e")]},
    {"name": "byrequests_drain", "lbmethod": "byrequests",
     "members": [m("a"), m("b", status="+N"), m("c", status="+R"), m("d")]},
    {"name": "byrequests_dead_member", "lbmethod": "byrequests",
     "members": [m("a"), m("b", dead=True, retry=60), m("c", loadfactor=2)]},
    {"name": "byrequests_dead_with_spare", "lbmethod": "byrequests",
     "members": [m("a"), m("b", dead=True, retry=60), m("c", status="+R"), m("d")]},
    {"name": "bybusyness_1_1_1", "lbmethod": "bybusyness",
     "members": [m("a"), m("b"), m("c")]},
    {"name": "bybusyness_1_2_3", "lbmethod": "bybusyness",
     "members": [m("a", loadfactor=1), m("b", loadfactor=2), m("c", loadfactor=3)]},
    {"name": "bybusyness_0.5_1.5_2", "lbmethod": "bybusyness",
     "members": [m("a", loadfactor=0.5), m("b", loadfactor=1.5), m("c", loadfactor=2)]},
    {"name": "bybusyness_1.5_1.25_2", "lbmethod": "bybusyness",
     "members": [m("a", loadfactor=1.5), m("b", loadfactor=1.25), m("c", loadfactor=2)]},
    {"name": "bybusyness_lbset_standby", "lbmethod": "bybusyness",
     "members": [m("a", lbset=0, status="+D"), m("b", lbset=0, status="+H"),
                 m("c", lbset=1, loadfactor=3)]},
    {"name": "bytraffic_equal_sizes", "lbmethod": "bytraffic",
     "members": [m("a", size=100), m("b", size=100), m("c", size=100)]},
    {"name": "bytraffic_sizes_1_2_3", "lbmethod": "bytraffic",
     "members": [m("a", size=1000), m("b", size=2000), m("c", size=3000)]},
    {"name": "bytraffic_weighted", "lbmethod": "bytraffic",
     "members": [m("a", size=5000, loadfactor=3), m("b", size=1000, loadfactor=1),
                 m("c", size=2500, loadfactor=2)]},
    {"name": "bytraffic_decimal", "lbmethod": "bytraffic",
     "members": [m("a", size=777, loadfactor=1.25), m("b", size=1500, loadfactor=1.5),
                 m("c", size=64, loadfactor=2)]},
    {"name": "bytraffic_lbset_spare", "lbmethod": "bytraffic",
     "members": [m("a", size=300, status="+D"), m("b", size=500, status="+R"),
                 m("c", size=400), m("d", size=50, lbset=1)]},
    {"name": "sticky_cookie", "lbmethod": "byrequests",
     "balancer": {"stickysession": "ROUTEID"},
     "members": [m("a", route="r1"), m("b", route="r2"), m("c", route="r3")],
     "requests": cookie_requests(
         ["ROUTEID=.r2", "ROUTEID=.r2", None, "ROUTEID=r2", "ROUTEID=abc.r3", "ROUTEID=x.r9",
          "ROUTEID=a.b.r1", "other=1; ROUTEID=.r1", "XROUTEID=.r2", None, "ROUTEID=.r3",
          "ROUTEID=.r3", "ROUTEID=.r3", None, None, None, "ROUTEID=.", "ROUTEID=.r1",
          None, None])},
    {"name": "sticky_url", "lbmethod": "byrequests",
     "balancer": {"stickysession": "JSESSIONID|jsessionid"},
     "members": [m("a", route="n1"), m("b", route="n2"), m("c", route="n3")],
     "requests": cookie_requests(
         ["JSESSIONID=abc.n1", "JSESSIONID=abc.n1", None, None, "JSESSIONID=abc.n1", None,
          None, None, "jsessionid=abc.n2", None, None, None],
         ["/p/00", "/p/01?jsessionid=abc.n2", "/p/02;jsessionid=zz.n3", "/p/03?x=1&jsessionid=.n3",
          "/p/04", "/p/05?xjsessionid=q.n2", "/p/06?jsessionid=n2", "/p/07", "/p/08",
          "/p/09;jsessionid=q.n1?a=b", "/p/10", "/p/11"])},
    {"name": "sticky_redirect_drain", "lbmethod": "byrequests",
     "balancer": {"stickysession": "ROUTEID"},
     "members": [m("a", route="r1", status="+D", redirect="r2"), m("b", route="r2"),
                 m("c", route="r3", status="+N"), m("d", route="r4")],
     "requests": cookie_requests(
         ["ROUTEID=.r1", None, "ROUTEID=.r3", "ROUTEID=.r3", None, None, "ROUTEID=.r1",
          None, "ROUTEID=.r4", None, None, None])},
    {"name": "sticky_nofailover", "lbmethod": "byrequests",
     "balancer": {"stickysession": "ROUTEID", "nofailover": "On"},
     "members": [m("a", route="r1", status="+D"), m("b", route="r2"), m("c", route="r3")],
     "requests": cookie_requests(
         ["ROUTEID=.r1", "ROUTEID=.r2", None, "ROUTEID=.r9", None, "ROUTEID=.r1", None])},
    {"name": "sticky_sep_off_scolon", "lbmethod": "byrequests",
     "balancer": {"stickysession": "SID|sid", "stickysessionsep": "Off",
                  "scolonpathdelim": "On"},
     "members": [m("a", route="r1"), m("b", route="r2"), m("c", route="r3")],
     "requests": cookie_requests(
         ["SID=r3", None, None, None, None, "SID=x.r3", None],
         ["/p/00", "/p/01?sid=r2", "/p/02;sid=r1;x=y", "/p/03?sid=r3&z=1", "/p/04",
          "/p/05", "/p/06"])},
    {"name": "sticky_standby_route", "lbmethod": "byrequests",
     "balancer": {"stickysession": "ROUTEID"},
     "members": [m("a", route="r1", status="+H"), m("b", route="r2"), m("c", route="r1")],
     "requests": cookie_requests(
         ["ROUTEID=.r1", "ROUTEID=.r1", None, None, None])},
]


def main(names: list[str]) -> None:
    for sc in SCENARIOS:
        if names and sc["name"] not in names:
            continue
        result = record(sc)
        path = HERE / f"{sc['name']}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"{sc['name']}: {' '.join(result['sequence'])}")


if __name__ == "__main__":
    main(sys.argv[1:])
