"""The balancer-manager's JSON API, below ``<manager location>/api`` (docs/manager.md,
docs/openapi.yaml).

Routes (``{name}`` is the balancer name without ``balancer://``; ``{index}`` a member's
position as listed, configured members first, then added ones):

* ``GET /balancers`` — every balancer with its settings and members;
* ``GET /balancers/{name}`` — one balancer;
* ``PATCH /balancers/{name}`` — ``lbmethod``, ``timeout``, ``maxattempts``, ``nofailover``,
  ``stickysession``;
* ``PATCH /balancers/{name}/members/{index}`` — ``loadfactor``, ``lbset``, ``route``,
  ``redirect``, ``status`` (an object of flag letter → bool);
* ``POST /balancers/{name}/members`` — ``{"url": …}`` adds a member into a growth slot
  (Disabled, as the form does);
* ``DELETE /balancers/{name}/members/{index}`` — removes a member added at run time and
  frees its growth slot (409 for a member from the config); the answer is the member as it
  was, with ``"removed": true``. Later members' indexes move down by one.

Promises: a write (PATCH, POST, DELETE) needs the balancer's nonce in ``X-Portico-Nonce``
(403 otherwise, unless the config says ``nonce=None``); PATCH and POST also need a JSON body
sent as ``application/json`` (415 otherwise; a cross-site HTML form can send neither).
Values go through the same validators as the HTML form, but here a bad value or an unknown
key is a 400 with ``{"error": …}`` and nothing is changed: the whole body is validated
before anything is written.
"""

from __future__ import annotations

__all__ = ["NONCE_HEADER", "balancer_state", "handle_api"]

import json
from typing import Any

from portico.admin.manager import (
    BalancerEdit,
    EditError,
    MemberEdit,
    apply_balancer_edit,
    apply_member_edit,
    effective_nonce,
    find_balancer,
    flag_bit,
    nonce_matches,
    parse_lbfactor,
    parse_lbmethod,
    parse_lbset,
    parse_maxattempts,
    parse_member_url,
    parse_route,
    parse_sticky,
    parse_timeout,
    remove_member,
    sticky_setting,
)
from portico.proxy.local import LocalRequest, LocalResponse
from portico.state.flags import status_string, to_letters

NONCE_HEADER = "X-Portico-Nonce"
_JSON = "application/json"


class _Refused(Exception):
    """An API answer other than 2xx, raised inside a route and turned into a response once."""

    def __init__(self, status: int, message: str, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.allow = allow


def handle_api(request: LocalRequest, rest: str) -> LocalResponse:
    """Answer ``rest`` (the path after ``<location>/api``)."""
    try:
        status, document = _route(request, [p for p in rest.split("/") if p])
    except _Refused as exc:
        headers = [(b"Allow", exc.allow.encode())] if exc.allow else []
        return _json(exc.status, {"error": str(exc)}, headers)
    return _json(status, document)


def _json(status: int, document: Any, headers: list[tuple[bytes, bytes]] | None = None
          ) -> LocalResponse:
    body = json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"
    return LocalResponse(status, body, _JSON,
                         [(b"Cache-Control", b"no-store"), *(headers or [])])


def _route(request: LocalRequest, parts: list[str]) -> tuple[int, Any]:
    method = request.method
    pipeline = request.pipeline
    if parts == ["balancers"]:
        _allow(method, "GET")
        return 200, {"balancers": [balancer_state(pipeline, b)
                                   for b in pipeline.balancers.values()]}
    if len(parts) < 2 or parts[0] != "balancers":
        raise _Refused(404, "no such API resource")
    balancer = find_balancer(pipeline, parts[1])
    if balancer is None:
        raise _Refused(404, f"no balancer {parts[1]!r}")
    if len(parts) == 2:
        _allow(method, "GET, PATCH")
        if method == "PATCH":
            body = _write_body(request, balancer)
            apply_balancer_edit(pipeline, balancer, _balancer_edit(body))
        return 200, balancer_state(pipeline, balancer)
    if parts[2] != "members":
        raise _Refused(404, "no such API resource")
    members = pipeline.scoreboard.members(balancer.name)
    if len(parts) == 3:
        _allow(method, "GET, POST")
        if method == "GET":
            return 200, [_member_state(n, m) for n, m in enumerate(members)]
        body = _write_body(request, balancer)
        unknown = set(body) - {"url"}
        if unknown:
            raise _Refused(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        try:
            url = parse_member_url(body.get("url"))
            slot = apply_balancer_edit(pipeline, balancer, BalancerEdit(add_member=url))
        except EditError as exc:
            raise _Refused(400, str(exc)) from None
        index = list(pipeline.scoreboard.members(balancer.name)).index(slot)
        return 201, _member_state(index, slot)
    if len(parts) == 4:
        _allow(method, "GET, PATCH, DELETE")
        try:
            index = int(parts[3])
            slot = members[index] if index >= 0 else None
        except (ValueError, IndexError):
            slot = None
        if slot is None:
            raise _Refused(404, f"no member {parts[3]!r} in {balancer.name}")
        if method == "DELETE":
            _check_nonce(request, balancer)
            gone = {**_member_state(index, slot), "removed": True}
            try:
                remove_member(pipeline, balancer, slot)
            except EditError as exc:
                raise _Refused(409, str(exc)) from None
            return 200, gone
        if method == "PATCH":
            body = _write_body(request, balancer)
            apply_member_edit(pipeline, balancer, slot, _member_edit(body))
        return 200, _member_state(index, slot)
    raise _Refused(404, "no such API resource")


def _allow(method: str, allowed: str) -> None:
    if method not in allowed.split(", "):
        raise _Refused(405, f"{method} is not allowed here", allowed)


def _write_body(request: LocalRequest, balancer: Any) -> dict[str, Any]:
    """The checks every write with a body passes: nonce header, JSON media type, a JSON
    object."""
    _check_nonce(request, balancer)
    ctype = (request.header("Content-Type") or "").split(";", 1)[0].strip().lower()
    if ctype != _JSON:
        raise _Refused(415, "send the body as application/json")
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Refused(400, f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _Refused(400, "the body must be a JSON object")
    return body


def _check_nonce(request: LocalRequest, balancer: Any) -> None:
    """403 unless the request carries the balancer's nonce (or the check is off)."""
    if not nonce_matches(balancer, request.header(NONCE_HEADER)):
        raise _Refused(403, f"a write needs the balancer's nonce in {NONCE_HEADER}")


_BALANCER_FIELDS = {"lbmethod": parse_lbmethod, "timeout": parse_timeout,
                    "maxattempts": parse_maxattempts, "stickysession": parse_sticky}
_MEMBER_FIELDS = {"loadfactor": parse_lbfactor, "lbset": parse_lbset, "route": parse_route,
                  "redirect": lambda v: parse_route(v, "redirect")}


def _balancer_edit(body: dict[str, Any]) -> BalancerEdit:
    unknown = set(body) - set(_BALANCER_FIELDS) - {"nofailover"}
    if unknown:
        raise _Refused(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    edit = BalancerEdit()
    try:
        for key, parse in _BALANCER_FIELDS.items():
            if key in body:
                value = parse(body[key])
                setattr(edit, "sticky" if key == "stickysession" else key, value)
    except EditError as exc:
        raise _Refused(400, str(exc)) from None
    if "nofailover" in body:
        if not isinstance(body["nofailover"], bool):
            raise _Refused(400, "nofailover must be true or false")
        edit.nofailover = body["nofailover"]
    return edit


def _member_edit(body: dict[str, Any]) -> MemberEdit:
    unknown = set(body) - set(_MEMBER_FIELDS) - {"status"}
    if unknown:
        raise _Refused(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    edit = MemberEdit()
    try:
        for key, parse in _MEMBER_FIELDS.items():
            if key in body:
                setattr(edit, "lbfactor" if key == "loadfactor" else key, parse(body[key]))
        flags = body.get("status", {})
        if not isinstance(flags, dict):
            raise EditError('status must be an object like {"D": true}')
        for letter, on in flags.items():
            bit = flag_bit(letter)
            if not isinstance(on, bool):
                raise EditError(f"status.{letter} must be true or false")
            if on:
                edit.set_flags |= bit
            else:
                edit.clear_flags |= bit
    except EditError as exc:
        raise _Refused(400, str(exc)) from None
    return edit


def balancer_state(pipeline: Any, balancer: Any) -> dict[str, Any]:
    """One balancer as the API shows it (JSON-able)."""
    record = balancer.record
    sticky = sticky_setting(record)
    members = pipeline.scoreboard.members(balancer.name)
    return {
        "name": balancer.name, "id": balancer.name.split("://", 1)[-1],
        "lbmethod": record.lbmethod, "stickysession": sticky,
        "timeout": record.timeout, "maxattempts": record.maxattempts,
        "nofailover": bool(record.nofailover), "nonce": effective_nonce(balancer),
        "max_members": record.max_members, "growth": record.growth,
        "growth_used": record.growth_used, "paths": list(balancer.spec.frontends),
        "members": [_member_state(n, m) for n, m in enumerate(members)],
    }


def _member_state(index: int, slot: Any) -> dict[str, Any]:
    status = slot.status
    last = slot.hc_last
    return {
        "index": index, "name": slot.name, "route": slot.route, "redirect": slot.redirect,
        "loadfactor": slot.lbfactor / 100, "lbset": slot.lbset,
        "flags": to_letters(status), "status": status_string(status).strip(),
        "elected": slot.elected, "busy": slot.busy, "lbstatus": slot.lbstatus,
        "transferred": slot.transferred, "read": slot.read, "errors": slot.errors,
        "health": {
            "last_ok": last, "pcount": slot.pcount, "fcount": slot.fcount,
            "history": [{"time": t, "ok": ok, "latency_ms": ms}
                        for t, ok, ms in slot.health_history()],
        },
    }
