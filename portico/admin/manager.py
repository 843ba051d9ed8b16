"""balancer-manager (reference §13): ``<Location …> SetHandler balancer-manager``.

What it promises
----------------
* ``GET <location>`` answers an HTML page (no JavaScript) with every balancer's settings
  and, per member, httpd's columns (Worker URL, Route, RouteRedir, Factor, Set, Status,
  Elected, Busy, Load, To, From) plus the health state and the last health results, and a
  form per member and per balancer.
* Edits take httpd's own form fields (§13.2: ``b``, ``w``, ``w_lf``, ``w_ls``, ``w_wr``,
  ``w_rr``, ``w_status_X``, ``b_lbm``, ``b_tmo``, ``b_max``, ``b_sforce``, ``b_ss``,
  ``b_nwrkr`` + ``b_wyes``, ``nonce``) in a urlencoded **POST** body, so scripts written
  for httpd keep working. As in httpd, a GET query is only read for ``b``, ``w``, ``nonce``
  and ``xml``; it never changes anything.
* Protections (§13.3), stricter than httpd where httpd silently ignores: a POST that carries
  parameters must have a ``Referer`` whose host is the request's host (else 403), name a
  balancer (``b``) and carry its nonce (else 403). The nonce check is off only when the
  config says ``nonce=None``: httpd 2.4.71 then refuses every edit, the manual says the
  check is off, and we follow the manual (docs/manager.md). Bad field values are ignored,
  as in httpd; a failed member add answers 400.
* Edits write the shared scoreboard (flags with set/clear under the edit lock, lbfactor x 100,
  lbset, route, redirect, the balancer record), so every serving process obeys them at
  once. A changed lbfactor sets every member's lbstatus to its lbfactor (httpd's
  recalc_factors); an edit that makes an unusable member usable again resets the lbmethod
  state.
* ``GET <location>?xml=1`` with a same-host Referer answers httpd's ``<httpd:manager>`` XML
  document for every balancer (``render_xml``; without the Referer httpd ignores the
  parameter and so do we).
* httpd's health-check fields (``w_hm w_hu w_hi w_hp w_hf w_he``) are ignored: the
  scoreboard has no room for those settings, so the page shows the configured ones
  read-only next to the live pass/fail counts.
* ``<location>/api/…`` is the JSON API (`portico.admin.manager_api`).

Members added into growth slots are routed to by every serving process once it notices
them (its next pick for that balancer); a member added at run time can be removed again
through the JSON API (``remove_member``), which frees its slot.
"""

from __future__ import annotations

__all__ = [
    "BalancerEdit", "EditError", "MemberEdit", "apply_balancer_edit", "apply_member_edit",
    "balancer_manager", "effective_nonce", "find_balancer", "nonce_matches", "parse_lbfactor",
    "parse_lbset", "parse_lbmethod", "parse_maxattempts", "parse_member_url",
    "parse_route", "parse_sticky", "parse_timeout", "referer_matches", "remove_member",
    "render_xml", "sticky_setting",
]

import functools
import hmac
import html
import importlib.resources
import logging
import math
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape as xml_escape

from portico import SERVER_SOFTWARE
from portico.config.model import WorkerParams
from portico.config.urls import DEFAULT_PORTS
from portico.proxy.local import LocalRequest, LocalResponse, handler
from portico.state import layout as L
from portico.state import persist
from portico.state.flags import LETTERS, Status, is_usable, status_string
from portico.upstream.lbmethods.registry import default_registry
from portico.upstream.shared import persist_path, persistence_enabled

#: Flags the manager may set or clear (httpd: ``E`` cannot be edited).
EDITABLE_FLAGS = "IDNHRSC"
_FLAG_LABELS = {"I": "Ignore errors", "D": "Disabled", "N": "Draining", "H": "Hot standby",
                "R": "Hot spare", "S": "Stopped", "C": "Health check failed"}
_GET_KEYS = frozenset({"b", "w", "nonce", "xml"})
_MAX_FORM = 4096       # httpd reads ~1 KB of form; a little more room, still bounded
_SCHEMES = frozenset({"http", "https", "h2", "h2c", "ws", "wss", "fcgi", "scgi", "uwsgi",
                      "ajp", "unix"})
_HISTORY_SHOWN = 10
_DEFAULT_PARAMS = WorkerParams()   # what a member added at run time gets

log = logging.getLogger("portico.admin")


class EditError(ValueError):
    """A value the manager refuses (the JSON API answers 400 with the message)."""


# -- values: one validator per field, shared by the form and the JSON API ----------------------
def parse_lbfactor(value: object) -> int:
    """Load factor 1-100 (two decimals) → the scoreboard's integer (x 100)."""
    number = _number(value, "loadfactor")
    scaled = round(number * 100)
    if not 100 <= scaled <= 10000:
        raise EditError("loadfactor must be between 1 and 100")
    return scaled


def parse_lbset(value: object) -> int:
    return _int_in(value, "lbset", 0, 99)


def parse_route(value: object, what: str = "route") -> str:
    """A route or redirect: under 64 characters; "" clears it."""
    if not isinstance(value, str):
        raise EditError(f"{what} must be a string")
    if len(value.encode()) > L.MAX_ROUTE:
        raise EditError(f"{what} must be shorter than 64 characters")
    return value


def parse_lbmethod(value: object) -> str:
    if not isinstance(value, str) or value not in default_registry():
        raise EditError(f"unknown lbmethod {value!r}")
    return value.lower()


def parse_timeout(value: object) -> float:
    return float(_int_in(value, "timeout", 0, 7200))


def parse_maxattempts(value: object) -> int:
    return _int_in(value, "maxattempts", 0, 99)


def parse_sticky(value: object) -> tuple[str, str]:
    """``name`` or ``cookie|param`` → (cookie, url parameter); ``-`` or "" removes both."""
    if not isinstance(value, str):
        raise EditError("stickysession must be a string")
    if value in ("-", ""):
        return "", ""
    cookie, bar, url = value.partition("|")
    if not bar:
        url = cookie
    if not cookie or not url:
        raise EditError("stickysession needs a name")
    if len(cookie.encode()) > L.MAX_STICKY or len(url.encode()) > L.MAX_STICKY:
        raise EditError("each stickysession name must be shorter than 64 characters")
    return cookie, url


def parse_member_url(value: object) -> str:
    """A new member's URL: ``scheme://host[:port][/path]`` with a scheme portico knows."""
    if not isinstance(value, str) or not value:
        raise EditError("a member needs a URL")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as exc:
        raise EditError(f"bad member URL {value!r}: {exc}") from None
    if parts.scheme.lower() not in _SCHEMES or not parts.hostname:
        raise EditError(f"bad member URL {value!r}: need scheme://host[:port]")
    if parts.query or parts.fragment or any(c.isspace() for c in value):
        raise EditError(f"bad member URL {value!r}")
    if len(value.encode()) > L.MAX_WORKER_NAME:
        raise EditError("member URL too long")
    return value


def _number(value: object, what: str) -> float:
    if isinstance(value, bool):
        raise EditError(f"{what} must be a number")
    number = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise EditError(f"{what} must be a number")
    return number


def _int_in(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise EditError(f"{what} must be an integer")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise EditError(f"{what} must be an integer") from None
    if not isinstance(value, int) or not low <= value <= high:
        raise EditError(f"{what} must be an integer from {low} to {high}")
    return value


# -- edits -------------------------------------------------------------------------------------
@dataclass(slots=True)
class MemberEdit:
    """What to change on one member; None/0 means leave it."""

    lbfactor: int | None = None
    lbset: int | None = None
    route: str | None = None
    redirect: str | None = None
    set_flags: int = 0
    clear_flags: int = 0


@dataclass(slots=True)
class BalancerEdit:
    """What to change on one balancer; None means leave it."""

    lbmethod: str | None = None
    timeout: float | None = None
    maxattempts: int | None = None
    nofailover: bool | None = None
    sticky: tuple[str, str] | None = None
    add_member: str | None = None


def flag_bit(letter: str) -> int:
    """The status bit of an editable flag letter; EditError for any other letter."""
    up = letter.upper()
    if len(up) != 1 or up not in EDITABLE_FLAGS:
        raise EditError(f"flag {letter!r} cannot be edited (one of {EDITABLE_FLAGS})")
    return int(LETTERS[up])


def find_balancer(pipeline: Any, name: str) -> Any | None:
    """The serving process's Balancer for ``name`` (``balancer://x`` or just ``x``)."""
    key = name if "://" in name else f"balancer://{name}"
    return pipeline.balancers.get(key.lower()) or pipeline.balancers.get(key)


def effective_nonce(balancer: Any) -> str | None:
    """The nonce edits must carry; None when the config turned the check off (nonce=None)."""
    configured = balancer.spec.params.nonce
    if configured == "":
        return None
    return balancer.record.nonce


def sticky_setting(record: Any) -> str:
    """The balancer record's stickysession as ProxySet writes it: ``cookie``,
    ``cookie|param``, or "" for none."""
    cookie, url = record.sticky, record.sticky_path
    if not cookie and not url:
        return ""
    return cookie if url in ("", cookie) else f"{cookie}|{url}"


def nonce_matches(balancer: Any, given: str | None) -> bool:
    wanted = effective_nonce(balancer)
    if wanted is None:
        return True
    return given is not None and _same(given, wanted)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def referer_matches(request: LocalRequest) -> bool:
    """True when the Referer's host is the request's host (case-insensitive, port ignored,
    as httpd compares it with the server name)."""
    referer = request.header("Referer")
    if not referer:
        return False
    try:
        ref_host = urlsplit(referer).hostname
        own_host = urlsplit(f"//{request.host}").hostname
    except ValueError:
        return False
    return bool(ref_host) and ref_host == own_host


def apply_member_edit(pipeline: Any, balancer: Any, slot: Any, edit: MemberEdit) -> None:
    """Write ``edit`` to the member's shared record (every process sees it at once)."""
    was_usable = is_usable(slot.status)
    if edit.lbset is not None:
        slot.lbset = edit.lbset
    if edit.route is not None:
        slot.route = edit.route
    if edit.redirect is not None:
        slot.redirect = edit.redirect
    if edit.set_flags:
        slot.set_flags(edit.set_flags)
    if edit.clear_flags:
        slot.clear_flags(edit.clear_flags)
    board = pipeline.scoreboard
    if edit.lbfactor is not None:
        slot.lbfactor = edit.lbfactor
        with balancer.lock:   # httpd's recalc_factors: every lbstatus starts at its lbfactor
            for member in board.members(balancer.name):
                member.lbstatus = member.lbfactor
    if not was_usable and is_usable(slot.status):
        with balancer.lock:
            balancer.method.reset(balancer.view)
    persist_edits(pipeline)


def apply_balancer_edit(pipeline: Any, balancer: Any, edit: BalancerEdit) -> Any | None:
    """Write ``edit`` to the balancer's shared record; returns the added member's slot.

    EditError when the member add fails (no free growth slot, a duplicate name).
    """
    record = balancer.record
    if edit.timeout is not None:
        record.timeout = edit.timeout
    if edit.maxattempts is not None:
        record.maxattempts = edit.maxattempts
    if edit.nofailover is not None:
        record.nofailover = int(edit.nofailover)
    if edit.sticky is not None:
        record.sticky, record.sticky_path = edit.sticky
    if edit.lbmethod is not None and edit.lbmethod != record.lbmethod.lower():
        with balancer.lock:
            record.lbmethod = edit.lbmethod
            # Shared scores restart; each process swaps its method instance when it
            # notices the change (Balancer.choose), this one right now.
            balancer.sync_from_record()
    added = None
    if edit.add_member is not None:
        try:
            added = pipeline.scoreboard.add_worker(edit.add_member, balancer.name)
        except ValueError as exc:
            raise EditError(str(exc)) from None
    persist_edits(pipeline)
    return added


def remove_member(pipeline: Any, balancer: Any, slot: Any) -> None:
    """Remove a member added at run time and free its growth slot; every serving process
    stops routing to it on its next pick. EditError for a member from the config (those
    stay: change the config instead) or one already gone."""
    try:
        pipeline.scoreboard.remove_worker(slot.name, balancer.name)
    except (KeyError, ValueError) as exc:
        raise EditError(str(exc).strip("'\"")) from None
    persist_edits(pipeline)


def persist_edits(pipeline: Any) -> None:
    """BalancerPersist On: write the edited state where the next start will find it."""
    config = pipeline.config
    if not persistence_enabled(config):
        return
    try:
        persist.save(pipeline.scoreboard, persist_path(config))
    except OSError as exc:
        log.error("BalancerPersist: could not save the balancer state: %s", exc)


def find_member(pipeline: Any, balancer: Any, name: str) -> Any | None:
    """The member slot called ``name`` (a trailing slash is not significant)."""
    want = name.rstrip("/")
    for slot in pipeline.scoreboard.members(balancer.name):
        if slot.name.rstrip("/") == want:
            return slot
    return None


# -- the form protocol -------------------------------------------------------------------------
def _form_fields(request: LocalRequest) -> dict[str, str]:
    """httpd's parameter table: the GET query (``b w nonce xml`` only) or the POST body,
    values URL-decoded twice as httpd does."""
    if request.method == "POST":
        text = request.body[:_MAX_FORM].decode("latin-1")
        pairs = parse_qsl(text, keep_blank_values=True)
        return {k: unquote(v) for k, v in pairs}
    return {k: unquote(v) for k, v in request.query.items() if k in _GET_KEYS}


def _member_edit_from_form(fields: dict[str, str]) -> MemberEdit:
    """A MemberEdit from httpd's fields; bad values are dropped silently, as httpd does."""
    edit = MemberEdit()
    for key, attr, parse in (("w_lf", "lbfactor", parse_lbfactor),
                             ("w_ls", "lbset", parse_lbset),
                             ("w_wr", "route", parse_route),
                             ("w_rr", "redirect", parse_route)):
        if key in fields:
            try:
                setattr(edit, attr, parse(fields[key]))
            except EditError:
                pass
    for letter in EDITABLE_FLAGS:
        value = fields.get(f"w_status_{letter}")
        if value == "1":
            edit.set_flags |= LETTERS[letter]
        elif value == "0":
            edit.clear_flags |= LETTERS[letter]
    return edit


def _balancer_edit_from_form(fields: dict[str, str]) -> BalancerEdit:
    edit = BalancerEdit()
    for key, attr, parse in (("b_lbm", "lbmethod", parse_lbmethod),
                             ("b_tmo", "timeout", parse_timeout),
                             ("b_max", "maxattempts", parse_maxattempts),
                             ("b_ss", "sticky", parse_sticky)):
        if key in fields:
            try:
                setattr(edit, attr, parse(fields[key]))
            except EditError:
                pass
    if fields.get("b_sforce") in ("0", "1"):
        edit.nofailover = fields["b_sforce"] == "1"
    if fields.get("b_wyes") == "1" and "b_nwrkr" in fields:
        edit.add_member = fields["b_nwrkr"]     # validated by the caller: a bad URL is a 400
    return edit


@handler("balancer-manager")
def balancer_manager(request: LocalRequest) -> LocalResponse:
    """The SetHandler entry point: the JSON API below ``<location>/api/``, else the page."""
    rest = request.path[len(request.location.rstrip("/")):]
    if rest == "/api" or rest.startswith("/api/"):
        from portico.admin.manager_api import handle_api

        return handle_api(request, rest[len("/api"):])
    if request.method not in ("GET", "POST"):
        return LocalResponse(405, b"Only GET and POST are accepted.\n", "text/plain",
                             [(b"Allow", b"GET, POST")])
    fields = _form_fields(request)
    if (request.method == "GET" and fields.get("xml") == "1"
            and referer_matches(request)):   # httpd ignores every parameter without one
        return LocalResponse(200, render_xml(request.pipeline).encode(),
                             "text/xml; charset=utf-8", [(b"Cache-Control", b"no-store")])
    notice = ""
    if request.method == "POST" and fields:
        refused = _check_post(request, fields)
        if refused is not None:
            return refused
        outcome = _apply_form(request, fields)
        if isinstance(outcome, LocalResponse):
            return outcome
        notice = outcome
    # A GET's b/w/nonce only select a view in httpd; this page always shows every form.
    page = render_page(request, notice)
    return LocalResponse(200, page.encode(), "text/html; charset=utf-8",
                         [(b"Cache-Control", b"no-store")])


def _refuse(status: int, why: str) -> LocalResponse:
    return LocalResponse(status, (html.escape(why) + "\n").encode(), "text/plain; charset=utf-8")


def _check_post(request: LocalRequest, fields: dict[str, str]) -> LocalResponse | None:
    """The §13.3 protections for a POST with parameters; the refusal, or None to go on."""
    if not referer_matches(request):
        return _refuse(403, "Refused: the Referer must name this server "
                            "(send e.g. -e http://<host>/balancer-manager).")
    balancer = find_balancer(request.pipeline, fields.get("b", ""))
    if balancer is None:
        return _refuse(400, "Unknown balancer (parameter b).")
    if not nonce_matches(balancer, fields.get("nonce")):
        return _refuse(403, "Refused: the nonce does not match this balancer's.")
    return None


def _apply_form(request: LocalRequest, fields: dict[str, str]) -> str | LocalResponse:
    """Carry out a checked POST; the notice to show, or an error response."""
    pipeline = request.pipeline
    balancer = find_balancer(pipeline, fields["b"])
    done: list[str] = []
    if "w" in fields:
        slot = find_member(pipeline, balancer, fields["w"])
        if slot is None:
            return _refuse(400, "Unknown member (parameter w).")
        apply_member_edit(pipeline, balancer, slot, _member_edit_from_form(fields))
        done.append(f"member {slot.name} updated")
    edit = _balancer_edit_from_form(fields)
    if edit.add_member is not None:
        try:
            edit.add_member = parse_member_url(edit.add_member)
        except EditError as exc:
            return _refuse(400, f"Cannot add the member: {exc}")
    if any(v is not None for v in (edit.lbmethod, edit.timeout, edit.maxattempts,
                                   edit.nofailover, edit.sticky, edit.add_member)):
        try:
            added = apply_balancer_edit(pipeline, balancer, edit)
        except EditError as exc:
            return _refuse(400, f"Cannot add the member: {exc}")
        done.append(f"balancer {balancer.name} updated")
        if added is not None:
            done.append(f"member {added.name} added (Disabled)")
    return "; ".join(done)


# -- the XML view (?xml=1, §13.3) --------------------------------------------------------------
_XML_NS = "http://httpd.apache.org"


def render_xml(pipeline: Any) -> str:
    """httpd's ``?xml=1`` document: ``<httpd:manager>`` with every balancer and its workers,
    element names and order as httpd 2.4 writes them (reference §13.3). Unlike httpd every
    text is XML-escaped, so the document is always well-formed."""
    out = ["<?xml version='1.0' encoding='UTF-8' ?>",
           f"<httpd:manager xmlns:httpd='{_XML_NS}'>", "  <httpd:balancers>"]
    for balancer in pipeline.balancers.values():
        out += _xml_balancer(pipeline, balancer)
    out += ["  </httpd:balancers>", "</httpd:manager>", ""]
    return "\n".join(out)


def _xml_balancer(pipeline: Any, balancer: Any) -> list[str]:
    record = balancer.record
    sticky = sticky_setting(record)
    lines = ["    <httpd:balancer>"]
    lines += _xml_elements("      ", [
        ("name", balancer.name), ("nonce", effective_nonce(balancer) or ""),
        *([("stickysession", sticky)] if sticky else []),
        ("nofailover", "On" if record.nofailover else "Off"),
        ("timeout", f"{int(record.timeout)}"), ("maxattempts", record.maxattempts),
        ("lbmethod", record.lbmethod),
        ("scolonpathdelim", "On" if balancer.spec.params.scolonpathdelim else "Off")])
    lines.append("      <httpd:workers>")
    specs = {w.spec.name: w.spec for w in balancer.members}
    for slot in pipeline.scoreboard.members(balancer.name):
        lines.append("        <httpd:worker>")
        lines += _xml_elements("          ", _xml_worker(slot, specs.get(slot.name)))
        lines.append("        </httpd:worker>")
    lines += ["      </httpd:workers>", "    </httpd:balancer>"]
    return lines


def _xml_worker(slot: Any, spec: Any) -> list[tuple[str, object]]:
    """One worker's elements; the bracketed ones of §13.3 only when set in the config."""
    p = spec.params if spec is not None else _DEFAULT_PARAMS
    if spec is not None:
        scheme, host, port = spec.scheme, spec.host, spec.port
    else:   # added in another process and not adopted here yet: read its URL
        parts = urlsplit(slot.name)
        scheme, host = parts.scheme, parts.hostname or ""
        port = parts.port or DEFAULT_PORTS.get(scheme, 80)
    given = p.explicit
    factor = f"{slot.lbfactor / 100:.2f}"
    elements: list[tuple[str, object]] = [
        ("name", slot.name), ("scheme", scheme), ("hostname", host), ("loadfactor", factor),
        ("port", port), ("min", p.min), ("smax", p.smax if p.smax is not None else p.max),
        ("max", p.max), ("ttl", _num(p.ttl or 0))]
    for key, param, value in (("timeout", "timeout", p.timeout),
                              ("acquire", "acquire", p.acquire),
                              ("recv_buffer_size", "receivebuffersize", p.receivebuffersize),
                              ("io_buffer_size", "iobuffersize", p.iobuffersize),
                              ("keepalive", "keepalive", "On" if p.keepalive else "Off")):
        if param in given and value is not None:
            elements.append((key, _num(value) if isinstance(value, float) else value))
    elements.append(("status", status_string(slot.status).strip()))
    if slot.error_time:
        elements.append(("error_time", f"{int(slot.error_time * 1_000_000)}"))
    elements += [
        ("retries", slot.retries), ("lbstatus", slot.lbstatus), ("loadfactor", factor),
        ("transferred", slot.transferred), ("read", slot.read), ("elected", slot.elected),
        ("route", slot.route), ("redirect", slot.redirect), ("busy", slot.busy),
        ("lbset", slot.lbset)]
    if scheme == "ajp":
        elements += [("flushpackets", p.flushpackets),
                     ("flushwait", round(p.flushwait * 1000)),
                     ("ping", round((p.ping or 0) * 1_000_000))]
    if "enablereuse" in given or "disablereuse" in given:
        elements.append(("disablereuse", "Off" if p.enablereuse else "On"))
    if "connectiontimeout" in given and p.connectiontimeout is not None:
        elements.append(("connectiontimeout", round(p.connectiontimeout * 1000)))
    if "retry" in given:
        elements.append(("retry", _num(p.retry)))
    return elements


def _xml_elements(indent: str, pairs: list[tuple[str, object]]) -> list[str]:
    return [f"{indent}<httpd:{key}>{xml_escape(str(value))}</httpd:{key}>"
            for key, value in pairs]


# -- the page ----------------------------------------------------------------------------------
@functools.cache
def _template(name: str) -> string.Template:
    """A template from portico/admin/templates, read once per process."""
    text = (importlib.resources.files("portico.admin") / "templates" / name).read_text()
    return string.Template(text)


def render_page(request: LocalRequest, notice: str = "") -> str:
    """The whole HTML page for the current scoreboard state."""
    pipeline = request.pipeline
    action = html.escape(request.location or "/", quote=True)
    sections = [_balancer_section(pipeline, b, action)
                for b in pipeline.balancers.values()]
    host = urlsplit(f"//{request.host}").hostname or request.host
    return _template("manager.html").substitute(
        server=html.escape(host), version=html.escape(SERVER_SOFTWARE),
        persist="Off",
        notice=f'<p class="notice">{html.escape(notice)}</p>' if notice else "",
        balancers="\n".join(sections) or "<p>No balancers are configured.</p>")


def _balancer_section(pipeline: Any, balancer: Any, action: str) -> str:
    record = balancer.record
    esc = html.escape
    nonce = effective_nonce(balancer) or ""
    members = pipeline.scoreboard.members(balancer.name)
    specs = {w.spec.name: w.spec for w in balancer.members}
    rows = [_member_row(n, slot, specs.get(slot.name)) for n, slot in enumerate(members)]
    forms = [_member_form(balancer, slot, specs.get(slot.name), action, nonce)
             for slot in members]
    sticky_value = sticky_setting(record)
    sticky_text = sticky_value.replace("|", " | ") or "(None)"
    method = record.lbmethod
    options = "".join(
        f'<option value="{esc(m, quote=True)}"{" selected" if m == method.lower() else ""}>'
        f"{esc(m)}</option>" for m in default_registry().names())
    free = record.growth - record.growth_used
    add_form = _template("manager_add.html").substitute(
        action=action, name=esc(balancer.name, quote=True), nonce=esc(nonce, quote=True),
        free=free) if free > 0 else "<p>No free member slot (growth) left.</p>"
    short = balancer.name.split("://", 1)[-1]
    link = f"{action}?b={quote(short, safe='')}&amp;nonce={quote(nonce, safe='')}"
    return _template("manager_balancer.html").substitute(
        anchor=esc(f"b-{short}", quote=True), name=esc(balancer.name, quote=True),
        self_link=link, ident=esc(f"{short}"),
        max_members=f"{record.max_members} [{record.max_members - free} Used]",
        sticky=esc(sticky_text), sticky_value=esc(sticky_value, quote=True),
        nofailover="On" if record.nofailover else "Off",
        timeout=_num(record.timeout), timeout_int=int(record.timeout),
        maxattempts=record.maxattempts, lbmethod=esc(method),
        paths=esc(", ".join(balancer.spec.frontends)) or "-",
        active="Yes", nonce_text=esc(nonce or "(check off)"), nonce=esc(nonce, quote=True),
        rows="\n".join(rows), member_forms="\n".join(forms), lbmethod_options=options,
        sforce_off="" if record.nofailover else " selected",
        sforce_on=" selected" if record.nofailover else "", action=action, add_form=add_form)


def _member_row(index: int, slot: Any, spec: Any) -> str:
    esc = html.escape
    status = slot.status
    text = status_string(status).strip()
    css = "ok" if is_usable(status) else "bad"
    name = esc(slot.name)
    if slot.name.startswith("unix:"):
        name = f"<i>{name}</i>"
    cells = [
        f'<td class="num">{index}</td>', f"<td>{name}</td>", f"<td>{esc(slot.route)}</td>",
        f"<td>{esc(slot.redirect)}</td>", f'<td class="num">{slot.lbfactor / 100:.2f}</td>',
        f'<td class="num">{slot.lbset}</td>', f'<td class="{css}">{esc(text)}</td>',
        f'<td class="num">{slot.elected}</td>', f'<td class="num">{slot.busy}</td>',
        f'<td class="num">{slot.lbstatus}</td>', f'<td class="num">{_size(slot.transferred)}</td>',
        f'<td class="num">{_size(slot.read)}</td>',
        *(f"<td>{esc(str(v))}</td>" for v in _hc_columns(slot, spec)),
        f"<td>{_health_state(slot, spec)}</td>", f'<td class="hist">{_history(slot)}</td>',
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def _hc_columns(slot: Any, spec: Any) -> tuple[str, str, str, str, str, str]:
    """httpd's hcheck columns: method, interval (ms), "passes (pcount)", "fails (fcount)",
    uri, expr. The scoreboard holds only the live counts, so the settings are the config's
    (a member added at run time has the defaults) and the manager cannot edit them."""
    p = spec.params if spec is not None else _DEFAULT_PARAMS
    return (p.hcmethod, f"{round(p.hcinterval * 1000)}", f"{p.hcpasses} ({slot.pcount})",
            f"{p.hcfails} ({slot.fcount})", p.hcuri or "-", p.hcexpr or "-")


def _health_state(slot: Any, spec: Any) -> str:
    method = (spec.params.hcmethod if spec is not None else "") or ""
    if slot.hc_last is None and method.upper() in ("", "NONE"):
        return "not checked"
    last = {None: "no result yet", True: "passing", False: "failing"}[slot.hc_last]
    failed = " (C)" if slot.status & Status.HCFAIL else ""
    where = f"{html.escape(method)}: " if method else ""
    return f"{where}{last}{failed}; passes {slot.pcount}, fails {slot.fcount}"


def _history(slot: Any) -> str:
    results = slot.health_history()[-_HISTORY_SHOWN:]
    if not results:
        return "-"
    return " ".join(
        f'<span class="{"ok" if ok else "bad"}" title="{latency:.1f} ms">'
        f'{"ok" if ok else "FAIL"}</span>' for _when, ok, latency in results)


def _member_form(balancer: Any, slot: Any, spec: Any, action: str, nonce: str) -> str:
    esc = html.escape
    status = slot.status
    flags = []
    for letter in EDITABLE_FLAGS:
        on = bool(status & LETTERS[letter])
        field = f"w_status_{letter}"
        flags.append(
            f"<label>{esc(_FLAG_LABELS[letter])} ({letter}) <select name=\"{field}\">"
            f'<option value="0"{"" if on else " selected"}>Off</option>'
            f'<option value="1"{" selected" if on else ""}>On</option></select></label>')
    method, interval, passes, fails, uri, expr = _hc_columns(slot, spec)
    hc_summary = esc(f"method {method}, interval {interval} ms, passes {passes}, "
                     f"fails {fails}, uri {uri}, expr {expr}")
    return _template("manager_member.html").substitute(
        hc_summary=hc_summary, action=action, name=esc(slot.name, quote=True),
        balancer=esc(balancer.name, quote=True),
        nonce=esc(nonce, quote=True), factor=f"{slot.lbfactor / 100:.2f}", lbset=slot.lbset,
        route=esc(slot.route, quote=True), redirect=esc(slot.redirect, quote=True),
        flag_inputs="\n".join(flags))


def _num(value: float) -> str:
    return f"{value:g}"


def _size(n: int) -> str:
    """Bytes the way httpd's manager prints them (apr_strfsize: ``512``, ``1.8K``, ``12M``)."""
    if n < 973:
        return f"{n}"
    value = float(n)
    for unit in "KMGTPE":
        value /= 1024
        if value < 973 or unit == "E":
            return f"{value:.1f}{unit}" if value < 9.95 else f"{value:.0f}{unit}"
    return f"{n}"
