"""Prometheus metrics: ``SetHandler metrics`` answers the text exposition format 0.0.4.

Every value comes from the shared scoreboard, so any serving process answers for all of
them. Names start with ``portico_``; each family has one HELP and one TYPE line; label
values are escaped as the format requires (backslash, double quote, newline).

Families (labels ``balancer`` and ``member``; ``balancer`` is "" for a standalone worker):
per member ``requests_total``, ``errors_total``, ``elected_total``, ``busy``,
``sent_bytes_total``, ``received_bytes_total``, ``status{flag=…}`` (one 0/1 gauge per
status letter), ``usable``, ``lbstatus``, ``lbfactor``, ``lbset``, and health
(``health_last_ok`` once a check ran, ``health_last_check_timestamp_seconds``,
``health_consecutive_passes``/``failures``, ``health_recent_passed``/``failed`` over the
history ring), and the histogram ``member_request_duration_seconds`` (time from sending a
request to the end of its response, for requests whose response completed: cumulative
``_bucket{le=…}`` series over ``layout.LATENCY_BOUNDS`` and ``+Inf``, ``_sum``, ``_count``;
``_count`` equals the ``+Inf`` bucket); per process (label ``process``, the slot index)
``process_connections``, ``process_connections_accepted_total``, ``process_requests_total``,
``process_received_bytes_total``, ``process_sent_bytes_total``, ``process_up``; and
server-wide totals that include retired processes.
"""

from __future__ import annotations

__all__ = ["CONTENT_TYPE", "Exposition", "metrics", "render"]

import math
from typing import Any

from portico.proxy.local import LocalRequest, LocalResponse, handler
from portico.state.flags import LETTERS, Status, is_usable
from portico.state.layout import LATENCY_BOUNDS
from portico.state.scoreboard import ProcState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_FLAG_LETTERS = tuple(letter for letter, _ in sorted(LETTERS.items(), key=lambda kv: kv[1])
                      if letter != "F")


class Exposition:
    """Builds one exposition: families in the order first declared, samples grouped."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def sample(self, name: str, kind: str, help_text: str, value: float,
               labels: dict[str, str] | None = None, suffix: str = "") -> None:
        """Add one sample to family ``portico_<name>`` (declared on first use); the sample's
        name is the family's plus ``suffix`` (a histogram's ``_bucket``, ``_sum``, ``_count``)."""
        family_name = f"portico_{name}"
        full = family_name + suffix
        family = self._families.get(family_name)
        if family is None:
            family = self._families[family_name] = (kind, help_text, [])
        label_text = ""
        if labels:
            label_text = "{" + ",".join(f'{k}="{_escape_label(v)}"'
                                        for k, v in labels.items()) + "}"
        family[2].append(f"{full}{label_text} {_value(value)}")

    def text(self) -> str:
        out = []
        for name, (kind, help_text, samples) in self._families.items():
            out.append(f"# HELP {name} {_escape_help(help_text)}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)
        return "\n".join(out) + "\n"


@handler("metrics")
def metrics(request: LocalRequest) -> LocalResponse:
    """The SetHandler entry point (GET and HEAD)."""
    if request.method not in ("GET", "HEAD"):
        return LocalResponse(405, b"", headers=[(b"Allow", b"GET, HEAD")])
    body = render(request.pipeline.scoreboard).encode("utf-8")
    return LocalResponse(200, body, CONTENT_TYPE, [(b"Cache-Control", b"no-cache")])


def render(sb: Any) -> str:
    """The whole exposition for scoreboard ``sb``."""
    ex = Exposition()
    _server(ex, sb)
    for n in range(sb.processes):
        _process(ex, sb.process(n))
    for slot in sb.workers():
        _member(ex, slot)
    for name in sb.balancer_names():
        record = sb.balancer(name)
        ex.sample("balancer_members", "gauge", "Members of the balancer (configured and "
                  "added).", len(sb.members(name)), {"balancer": name})
        ex.sample("balancer_info", "gauge", "Balancer settings as labels (always 1).", 1,
                  {"balancer": name, "lbmethod": record.lbmethod,
                   "stickysession": record.sticky})
    return ex.text()


def _server(ex: Exposition, sb: Any) -> None:
    t = sb.totals()
    ex.sample("requests_total", "counter", "Requests served by every process, including "
              "retired ones.", t["requests"])
    ex.sample("connections_accepted_total", "counter", "Client connections accepted.",
              t["conns_total"])
    ex.sample("connections", "gauge", "Client connections open now.", t["conns"])
    ex.sample("received_bytes_total", "counter", "Bytes read from clients.", t["bytes_in"])
    ex.sample("sent_bytes_total", "counter", "Bytes written to clients.", t["bytes_out"])
    ex.sample("config_generation", "gauge", "Configuration generation being served.",
              sb.generation)


def _process(ex: Exposition, p: Any) -> None:
    state = p.state
    if state in (ProcState.FREE, ProcState.GONE) and not p.pid:
        return
    labels = {"process": str(p.index), "pid": str(p.pid)}
    ex.sample("process_up", "gauge",
              "1 while the process slot is bound (starting, serving or draining), else 0.",
              int(state in (ProcState.STARTING, ProcState.SERVING, ProcState.DRAINING)),
              labels)
    ex.sample("process_connections", "gauge", "Client connections open in the process.",
              p.conns, labels)
    ex.sample("process_connections_accepted_total", "counter",
              "Client connections the process accepted.", p.conns_total, labels)
    ex.sample("process_requests_total", "counter", "Requests the process served.",
              p.requests, labels)
    ex.sample("process_received_bytes_total", "counter", "Bytes the process read from "
              "clients.", p.bytes_in, labels)
    ex.sample("process_sent_bytes_total", "counter", "Bytes the process wrote to clients.",
              p.bytes_out, labels)
    ex.sample("process_start_time_seconds", "gauge", "Unix time the process started.",
              p.start_time, labels)


def _member(ex: Exposition, slot: Any) -> None:
    labels = {"balancer": slot.balancer or "", "member": slot.name}
    status = slot.status
    ex.sample("member_requests_total", "counter", "Requests the member finished.",
              slot.requests, labels)
    ex.sample("member_errors_total", "counter", "Requests to the member that failed.",
              slot.errors, labels)
    ex.sample("member_elected_total", "counter", "Times the member was chosen.",
              slot.elected, labels)
    ex.sample("member_busy", "gauge", "Requests in flight to the member.", slot.busy, labels)
    ex.sample("member_sent_bytes_total", "counter", "Bytes sent to the member.",
              slot.transferred, labels)
    ex.sample("member_received_bytes_total", "counter", "Bytes read from the member.",
              slot.read, labels)
    for letter in _FLAG_LETTERS:
        ex.sample("member_status", "gauge", "1 when the status flag is set (letters as in "
                  "the balancer-manager).", int(bool(status & LETTERS[letter])),
                  {**labels, "flag": letter})
    ex.sample("member_usable", "gauge", "1 when the member may take new requests.",
              int(is_usable(status)), labels)
    ex.sample("member_lbstatus", "gauge", "The lbmethod's score for the member.",
              slot.lbstatus, labels)
    ex.sample("member_lbfactor", "gauge", "Load factor (1 = 100 in scoreboard units).",
              slot.lbfactor / 100, labels)
    ex.sample("member_lbset", "gauge", "Load-balancer set.", slot.lbset, labels)
    _duration(ex, slot, labels)
    _health(ex, slot, labels, status)


_DURATION_HELP = ("Seconds from sending a request to the member to the end of its response "
                  "(completed responses only).")
_LE = (*(repr(float(bound)) for bound in LATENCY_BOUNDS), "+Inf")   # le label values


def _duration(ex: Exposition, slot: Any, labels: dict[str, str]) -> None:
    counts, total = slot.latency()
    running = 0
    for le, n in zip(_LE, counts, strict=True):
        running += n
        ex.sample("member_request_duration_seconds", "histogram", _DURATION_HELP, running,
                  {**labels, "le": le}, "_bucket")
    ex.sample("member_request_duration_seconds", "histogram", _DURATION_HELP, total, labels,
              "_sum")
    ex.sample("member_request_duration_seconds", "histogram", _DURATION_HELP, running,
              labels, "_count")


def _health(ex: Exposition, slot: Any, labels: dict[str, str], status: int) -> None:
    last = slot.hc_last
    if last is not None:
        ex.sample("member_health_last_ok", "gauge", "1 when the last health check passed.",
                  int(last), labels)
        ex.sample("member_health_last_check_timestamp_seconds", "gauge",
                  "Unix time of the last health check.", slot.hc_last_time, labels)
    ex.sample("member_health_failed", "gauge", "1 while the member is out of rotation for "
              "failed health checks (flag C).", int(bool(status & Status.HCFAIL)), labels)
    ex.sample("member_health_consecutive_passes", "gauge", "Health checks passed in a row.",
              slot.pcount, labels)
    ex.sample("member_health_consecutive_failures", "gauge",
              "Health checks failed in a row.", slot.fcount, labels)
    history = slot.health_history()
    ok = sum(1 for _, passed, _ in history if passed)
    ex.sample("member_health_recent_passed", "gauge", "Passed checks in the recent history "
              "ring.", ok, labels)
    ex.sample("member_health_recent_failed", "gauge", "Failed checks in the recent history "
              "ring.", len(history) - ok, labels)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(value: float) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
