"""server-status (mod_status and ProxyStatus, §14): ``SetHandler server-status``.

``GET <location>`` answers an HTML page: server version and times, the totals of every
serving process (live and retired) from the shared scoreboard, one row per process slot
and, with ``ProxyStatus On``, one table per balancer with a row per member (Sch Host Stat
Route Redir F Set Acc Busy Wr Rd, as httpd). ``?auto`` answers httpd's machine-readable
text with the same key names; ``?refresh=N`` adds a Refresh header (and meta tag);
``?notable`` leaves the tables out of the HTML.

Where portico's numbers differ from httpd's (documented in docs/guide.md): a "worker" here
is a serving process (httpd counts threads), so BusyWorkers counts processes with an open
client connection and IdleWorkers the serving ones without; ConnsTotal is the number of
client connections open now, as in httpd. Total Duration, CPU times and the per-request
slot table are not kept by the scoreboard and are left out rather than invented.
"""

from __future__ import annotations

__all__ = ["StatusReport", "collect", "render_auto", "render_html", "server_status"]

import html
import os
import time
from dataclasses import dataclass, field
from typing import Any

from portico import SERVER_SOFTWARE
from portico.proxy.local import LocalRequest, LocalResponse, handler
from portico.state.flags import status_string
from portico.state.scoreboard import ProcState

_SLOT_CHAR = {ProcState.FREE: ".", ProcState.STARTING: "S", ProcState.DRAINING: "G",
              ProcState.GONE: "."}
_MAX_REFRESH = 86400   # a refresh longer than a day is a typo; clamp it


@dataclass(slots=True)
class MemberRow:
    """One balancer member as server-status shows it."""

    scheme: str
    host: str
    name: str
    status: str
    route: str
    redirect: str
    factor: float
    lbset: int
    elected: int
    busy: int
    sent: int
    read: int


@dataclass(slots=True)
class BalancerTable:
    name: str
    sticky: str
    timeout: float
    method: str
    members: list[MemberRow] = field(default_factory=list)


@dataclass(slots=True)
class StatusReport:
    """Everything one status answer shows, read from the scoreboard once."""

    host: str
    now: float
    restart: float
    generation: int
    totals: dict[str, int]
    processes: list[dict[str, Any]]
    extended: bool
    balancers: list[BalancerTable] | None   # None when ProxyStatus is Off

    @property
    def uptime(self) -> int:
        return max(0, int(self.now - self.restart))

    def slot_char(self, process: dict[str, Any]) -> str:
        state = ProcState[process["state"].upper()]
        # A bound process stays STARTING until the server marks it SERVING; one that has a
        # pid and took connections is serving either way.
        if state is ProcState.SERVING or (state is ProcState.STARTING and process["pid"]):
            return "W" if process["conns"] > 0 else "_"
        return _SLOT_CHAR[state]

    @property
    def busy(self) -> int:
        return sum(1 for p in self.processes if self.slot_char(p) == "W")

    @property
    def idle(self) -> int:
        return sum(1 for p in self.processes if self.slot_char(p) == "_")


@handler("server-status")
def server_status(request: LocalRequest) -> LocalResponse:
    """The SetHandler entry point (GET and HEAD; anything else is 405 as in httpd)."""
    if request.method not in ("GET", "HEAD"):
        return LocalResponse(405, b"", headers=[(b"Allow", b"GET, HEAD")])
    report = collect(request.pipeline, request.host)
    refresh = _refresh(request.query.get("refresh"))
    headers = [(b"Cache-Control", b"no-cache")]
    if refresh is not None:
        headers.append((b"Refresh", str(refresh).encode()))
    if "auto" in request.query:
        return LocalResponse(200, render_auto(report).encode(), "text/plain; charset=ISO-8859-1",
                             headers)
    page = render_html(report, refresh, notable="notable" in request.query)
    return LocalResponse(200, page.encode("utf-8"), headers=headers)


def collect(pipeline: Any, host: str) -> StatusReport:
    """Read the pipeline's scoreboard and settings into a report (no side effects)."""
    sb = pipeline.scoreboard
    config = pipeline.config
    vhost = _vhost_for(config, host)
    snapshot_processes = [sb.process(n).snapshot() for n in range(sb.processes)]
    starts = [p["start_time"] for p in snapshot_processes if p["start_time"] > 0]
    balancers = None
    if vhost.settings.proxy_status:
        names = list(vhost.balancers) or sb.balancer_names()
        balancers = [_balancer_table(sb, name) for name in names
                     if name in sb.balancer_names()]
    return StatusReport(
        host=_host_name(host) or vhost.server_name, now=time.time(),
        restart=min(starts) if starts else time.time(), generation=sb.generation,
        totals=sb.totals(), processes=snapshot_processes,
        extended=config.core.extended_status, balancers=balancers)


def _balancer_table(sb: Any, name: str) -> BalancerTable:
    record = sb.balancer(name)
    sticky = record.sticky
    if record.sticky_path and record.sticky_path != sticky:
        sticky = f"{sticky} | {record.sticky_path}" if sticky else record.sticky_path
    table = BalancerTable(name, sticky or "-", record.timeout, record.lbmethod)
    for slot in sb.members(name):
        scheme, _, rest = slot.name.partition("://")
        table.members.append(MemberRow(
            scheme=scheme, host=rest.split("/", 1)[0], name=slot.name,
            status=status_string(slot.status), route=slot.route, redirect=slot.redirect,
            factor=slot.lbfactor / 100, lbset=slot.lbset, elected=slot.elected,
            busy=slot.busy, sent=slot.transferred, read=slot.read))
    return table


# -- ?auto ---------------------------------------------------------------------------------

def render_auto(report: StatusReport) -> str:
    """httpd's ``?auto`` text: ``Key: value`` lines in httpd's order (§14)."""
    up = report.uptime
    t = report.totals
    lines = [
        report.host,
        f"ServerVersion: {SERVER_SOFTWARE}",
        "ServerMPM: portico",
        f"CurrentTime: {_httpd_time(report.now)}",
        f"RestartTime: {_httpd_time(report.restart)}",
        f"ParentServerConfigGeneration: {report.generation}",
        f"ServerUptimeSeconds: {up}",
        f"ServerUptime: {_duration(up)}",
    ]
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()
        lines += [f"Load1: {load[0]:.2f}", f"Load5: {load[1]:.2f}", f"Load15: {load[2]:.2f}"]
    if report.extended:
        accesses, sent = t["requests"], t["bytes_out"]
        lines += [f"Total Accesses: {accesses}", f"Total kBytes: {sent >> 10}",
                  f"Uptime: {up}"]
        if up > 0:
            lines += [f"ReqPerSec: {_num(accesses / up)}", f"BytesPerSec: {_num(sent / up)}"]
        if accesses > 0:
            lines.append(f"BytesPerReq: {_num(sent / accesses)}")
    serving = [p for p in report.processes if report.slot_char(p) in "W_G"]
    lines += [
        f"BusyWorkers: {report.busy}",
        "GracefulWorkers: 0",
        f"IdleWorkers: {report.idle}",
        f"Processes: {len(serving)}",
        f"Stopping: {sum(1 for p in serving if p['state'] == 'draining')}",
        f"ConnsTotal: {t['conns']}",
        "Scoreboard: " + "".join(report.slot_char(p) for p in report.processes),
    ]
    for b, table in enumerate(report.balancers or ()):
        lines.append(f"ProxyBalancer[{b}]Name: {table.name}")
        for w, m in enumerate(table.members):
            key = f"ProxyBalancer[{b}]Worker[{w}]"
            lines += [f"{key}Name: {m.name}", f"{key}Status: {m.status}",
                      f"{key}Elected: {m.elected}", f"{key}Busy: {m.busy}",
                      f"{key}Sent: {m.sent >> 10}K", f"{key}Rcvd: {m.read >> 10}K"]
    return "\n".join(lines) + "\n"


# -- HTML ----------------------------------------------------------------------------------

_STYLE = ("body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse;"
          "margin:.5em 0 1em}th,td{border:1px solid #bbb;padding:2px 8px;text-align:left}"
          "th{background:#eee}td.n{text-align:right}")


def render_html(report: StatusReport, refresh: int | None = None,
                notable: bool = False) -> str:
    """The status page. Every value is escaped; ``notable`` drops the tables."""
    e = html.escape
    t = report.totals
    up = report.uptime
    out = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">"]
    if refresh is not None:
        out.append(f"<meta http-equiv=\"refresh\" content=\"{refresh}\">")
    out += [f"<title>Server Status for {e(report.host)}</title>",
            f"<style>{_STYLE}</style></head><body>",
            f"<h1>Server Status for {e(report.host)}</h1>",
            "<dl>",
            f"<dt>Server Version: {e(SERVER_SOFTWARE)}</dt>",
            "<dt>Server MPM: portico (one serving process per core)</dt>",
            "</dl><hr><dl>",
            f"<dt>Current Time: {e(_httpd_time(report.now))}</dt>",
            f"<dt>Restart Time: {e(_httpd_time(report.restart))}</dt>",
            f"<dt>Parent Server Config. Generation: {report.generation}</dt>",
            f"<dt>Server uptime: {e(_duration(up))}</dt>"]
    if report.extended:
        out.append(f"<dt>Total accesses: {t['requests']} - Total Traffic: "
                   f"{e(_size(t['bytes_out']))} - Received: {e(_size(t['bytes_in']))}</dt>")
        if up > 0:
            out.append(f"<dt>{_num(t['requests'] / up)} requests/sec - "
                       f"{e(_size(int(t['bytes_out'] / up)))}/second</dt>")
    out += [f"<dt>Connections: {t['conns']} open, {t['conns_total']} accepted since start"
            "</dt>",
            f"<dt>{report.busy} processes serving a connection, {report.idle} idle</dt>",
            "</dl>",
            "<pre>" + "".join(report.slot_char(p) for p in report.processes) + "</pre>",
            "<p>Legend: \"<b><code>_</code></b>\" idle, \"<b><code>W</code></b>\" serving a "
            "connection, \"<b><code>S</code></b>\" starting, \"<b><code>G</code></b>\" "
            "draining (graceful), \"<b><code>.</code></b>\" open slot.</p>"]
    if not notable:
        out += _process_table(report)
        for table in report.balancers or ():
            out += _balancer_html(table)
        if report.balancers:
            out.append(_MEMBER_LEGEND)
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _process_table(report: StatusReport) -> list[str]:
    rows = ["<table><tr><th>Slot</th><th>PID</th><th>Gen</th><th>Mode</th><th>Acc</th>"
            "<th>Conns</th><th>Accepted</th><th>In</th><th>Out</th><th>Up</th></tr>"]
    for p in report.processes:
        up = _duration(int(report.now - p["start_time"])) if p["start_time"] else "-"
        rows.append(
            f"<tr><td class=n>{p['index']}</td><td class=n>{p['pid'] or '-'}</td>"
            f"<td class=n>{p['generation']}</td><td>{html.escape(report.slot_char(p))} "
            f"{html.escape(p['state'])}</td><td class=n>{p['requests']}</td>"
            f"<td class=n>{p['conns']}</td><td class=n>{p['conns_total']}</td>"
            f"<td class=n>{html.escape(_size(p['bytes_in']))}</td>"
            f"<td class=n>{html.escape(_size(p['bytes_out']))}</td>"
            f"<td>{html.escape(up)}</td></tr>")
    rows.append("</table>")
    return rows


def _balancer_html(table: BalancerTable) -> list[str]:
    e = html.escape
    rows = [f"<h2>Proxy LoadBalancer Status for {e(table.name)}</h2>",
            "<table><tr><th>SSes</th><th>Timeout</th><th>Method</th></tr>",
            f"<tr><td>{e(table.sticky)}</td><td class=n>{table.timeout:g}</td>"
            f"<td>{e(table.method)}</td></tr></table>",
            "<table><tr><th>Sch</th><th>Host</th><th>Stat</th><th>Route</th><th>Redir</th>"
            "<th>F</th><th>Set</th><th>Acc</th><th>Busy</th><th>Wr</th><th>Rd</th></tr>"]
    for m in table.members:
        rows.append(
            f"<tr><td>{e(m.scheme)}</td><td>{e(m.host)}</td><td>{e(m.status.strip())}</td>"
            f"<td>{e(m.route)}</td><td>{e(m.redirect)}</td><td class=n>{m.factor:.2f}</td>"
            f"<td class=n>{m.lbset}</td><td class=n>{m.elected}</td>"
            f"<td class=n>{m.busy}</td><td class=n>{e(_size(m.sent))}</td>"
            f"<td class=n>{e(_size(m.read))}</td></tr>")
    rows.append("</table>")
    return rows


_MEMBER_LEGEND = (
    "<table><tr><th>Sch</th><td>Connection scheme</td></tr>"
    "<tr><th>Host</th><td>Backend host name</td></tr>"
    "<tr><th>Stat</th><td>Worker status</td></tr>"
    "<tr><th>Route</th><td>Session route</td></tr>"
    "<tr><th>Redir</th><td>Session route redirection</td></tr>"
    "<tr><th>F</th><td>Load balancer factor</td></tr>"
    "<tr><th>Set</th><td>Load balancer set</td></tr>"
    "<tr><th>Acc</th><td>Number of requests the member was elected for</td></tr>"
    "<tr><th>Busy</th><td>Requests in flight</td></tr>"
    "<tr><th>Wr</th><td>Bytes sent to the backend</td></tr>"
    "<tr><th>Rd</th><td>Bytes read from the backend</td></tr></table>")


# -- helpers -------------------------------------------------------------------------------

def _vhost_for(config: Any, host: str) -> Any:
    """The virtual host whose ServerName or ServerAlias is the request's host, else main."""
    name = (_host_name(host) or "").lower()
    for vhost in config.vhosts:
        if name and (vhost.server_name.lower() == name
                     or name in (a.lower() for a in vhost.server_aliases)):
            return vhost
    return config.main


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _refresh(value: str | None) -> int | None:
    """``?refresh=N`` → N seconds (``?refresh`` alone means 1, as httpd)."""
    if value is None:
        return None
    if value == "":
        return 1
    try:
        seconds = int(value)
    except ValueError:
        return None
    return min(max(seconds, 1), _MAX_REFRESH)


def _httpd_time(when: float) -> str:
    """httpd's status time format, e.g. ``Tuesday, 24-Nov-2026 00:14:30 UTC``."""
    return time.strftime("%A, %d-%b-%Y %H:%M:%S UTC", time.gmtime(when))


def _duration(seconds: int) -> str:
    """``ServerUptime``'s spelling: ``1 day 2 hours 3 minutes 4 seconds``."""
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    if seconds or not parts:
        parts.append(f"{seconds} second{'s' if seconds != 1 else ''}")
    return " ".join(parts)


def _num(value: float) -> str:
    """A rate as httpd prints it with %g (six significant digits, no trailing zeros)."""
    return f"{value:g}"


def _size(n: int) -> str:
    """A byte count for people: ``512``, ``1.5K``, ``12M``, ``3.0G`` (httpd's apr_strfsize)."""
    if n < 973:
        return f"{n}"
    for unit in ("K", "M", "G", "T", "P"):
        n_f = n / 1024
        if n_f < 973 or unit == "P":
            return f"{n_f:.1f}{unit}" if n_f < 9.95 else f"{n_f:.0f}{unit}"
        n = int(n_f)
    return f"{n}"


