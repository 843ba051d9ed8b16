"""``portico ctl``: a command-line client of the balancer-manager's JSON API.

    portico ctl [--url URL] [--json] COMMAND ...

``URL`` is the manager location (default ``http://127.0.0.1:8080/balancer-manager``); the
API lives below it at ``/api`` (docs/manager.md, docs/openapi.yaml). Commands:

* ``list`` — every balancer's members as one table;
* ``show BALANCER`` — one balancer's settings and members;
* ``enable|disable|drain|stop|standby BALANCER MEMBER`` — status flags of one member;
* ``set BALANCER MEMBER [--lf X] [--lbset N] [--route R] [--redirect R]``;
* ``lbmethod BALANCER NAME``;
* ``balancer BALANCER [--timeout S] [--maxattempts N] [--sticky S] [--nofailover on|off]``;
* ``add BALANCER URL`` — a new member in a growth slot (it starts Disabled);
* ``remove BALANCER MEMBER`` — removes a member added at run time (not one from the config);
* ``export`` — the live state as httpd-syntax ``<Proxy balancer://…>`` sections.

``BALANCER`` is ``name`` or ``balancer://name``; ``MEMBER`` is a member's index, its URL or
its route. Promises: exit status 0 on success and 1 with one ``portico ctl: …`` line on
stderr for any refusal (an HTTP error with the API's message, an unknown balancer or member,
an unreachable manager, an answer that is not the API's JSON). ``--json`` prints the API's
JSON answer to the request that did the work instead of the human-readable text. Every write
first reads the balancer to learn its nonce and sends it in ``X-Portico-Nonce``.
"""

from __future__ import annotations

__all__ = ["CtlError", "ManagerClient", "export_config", "main", "resolve_member"]

import argparse
import functools
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, TextIO

DEFAULT_URL = "http://127.0.0.1:8080/balancer-manager"
_NONCE_HEADER = "X-Portico-Nonce"
_HTTP_TIMEOUT = 10.0

#: Flag changes per state command. ``enable`` makes a member an ordinary active one again,
#: so it also clears drain and hot standby, not only Disabled/Stopped.
_STATE_COMMANDS: dict[str, dict[str, bool]] = {
    "enable": {"D": False, "S": False, "N": False, "H": False},
    "disable": {"D": True},
    "drain": {"N": True},
    "stop": {"S": True},
    "standby": {"H": True},
}

#: Flags that record an operator's intent and so belong in an exported config. E (error) and
#: C (health check failed) are observations the proxy makes at run time, not settings.
_EXPORTED_FLAGS = "DSIRHN"


class CtlError(Exception):
    """A refusal to report on stderr with exit status 1; the message is the whole story."""


class ManagerClient:
    """Blocking calls to the manager API at ``base_url`` (the manager location).

    Every method returns the decoded JSON answer or raises `CtlError`; nothing is retried.
    """

    def __init__(self, base_url: str, timeout: float = _HTTP_TIMEOUT) -> None:
        self.api = base_url.rstrip("/") + "/api"
        self.timeout = timeout

    def balancers(self) -> list[dict[str, Any]]:
        """Every balancer with settings and members (``GET /balancers``)."""
        return self.request("GET", "/balancers")["balancers"]

    def balancer(self, name: str) -> dict[str, Any]:
        """One balancer by ``name`` or ``balancer://name``."""
        return self.request("GET", f"/balancers/{_quote(balancer_id(name))}")

    def patch_balancer(self, balancer: dict[str, Any], changes: dict[str, Any]
                       ) -> dict[str, Any]:
        """PATCH the balancer's settings with its nonce; the balancer afterwards."""
        return self.request("PATCH", f"/balancers/{_quote(balancer['id'])}", changes,
                            balancer.get("nonce"))

    def patch_member(self, balancer: dict[str, Any], index: int, changes: dict[str, Any]
                     ) -> dict[str, Any]:
        """PATCH member ``index`` with the balancer's nonce; the member afterwards."""
        return self.request(
            "PATCH", f"/balancers/{_quote(balancer['id'])}/members/{index}", changes,
            balancer.get("nonce"))

    def add_member(self, balancer: dict[str, Any], url: str) -> dict[str, Any]:
        """POST a new member; the member as added (Disabled)."""
        return self.request("POST", f"/balancers/{_quote(balancer['id'])}/members",
                            {"url": url}, balancer.get("nonce"))

    def remove_member(self, balancer: dict[str, Any], index: int) -> dict[str, Any]:
        """DELETE member ``index`` (one added at run time); the member as it was."""
        return self.request(
            "DELETE", f"/balancers/{_quote(balancer['id'])}/members/{index}", None,
            balancer.get("nonce"))

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                nonce: str | None = None) -> Any:
        """One API call; the decoded JSON, or `CtlError` naming the request and the reason."""
        url = self.api + path
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if nonce:
            headers[_NONCE_HEADER] = nonce
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            raise CtlError(f"{method} {url}: {exc.code} {_error_text(exc)}") from None
        except urllib.error.URLError as exc:
            raise CtlError(f"cannot reach {url}: {exc.reason}") from None
        except (OSError, ValueError) as exc:  # timeouts, resets, a malformed URL
            raise CtlError(f"cannot reach {url}: {exc}") from None
        try:
            return json.loads(payload)
        except ValueError:
            raise CtlError(f"{method} {url}: the answer is not JSON; is --url the "
                           "balancer-manager location?") from None


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _error_text(exc: urllib.error.HTTPError) -> str:
    """The API's ``{"error": …}`` message, else the HTTP reason phrase."""
    try:
        document = json.loads(exc.read())
    except (ValueError, OSError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return document["error"]
    return str(exc.reason)


def balancer_id(name: str) -> str:
    """``balancer://lb`` or ``lb`` → ``lb`` (the API's ``{name}``)."""
    return name.split("://", 1)[1] if name.lower().startswith("balancer://") else name


def resolve_member(balancer: dict[str, Any], member: str) -> int:
    """The index of ``member`` in ``balancer``: an index, a member URL or a route.

    An index wins over a route that happens to be a number; a URL matches with or without a
    trailing slash, case-insensitively; a route must name exactly one member. Raises
    `CtlError` listing the members when nothing (or more than one route) matches.
    """
    members = balancer["members"]
    if member.isdigit() and int(member) < len(members):
        return int(member)
    wanted = member.rstrip("/").lower()
    for m in members:
        if m["name"].rstrip("/").lower() == wanted:
            return int(m["index"])
    routed = [m for m in members if m["route"] and m["route"] == member]
    if len(routed) == 1:
        return int(routed[0]["index"])
    known = ", ".join(f"{m['index']} {m['name']}" + (f" ({m['route']})" if m["route"] else "")
                      for m in members)
    why = "more than one member has route" if routed else "no member"
    raise CtlError(f"{why} {member!r} in {balancer['name']}; members: {known or 'none'}")


# ---------------------------------------------------------------------- text output

def _number(value: float) -> str:
    """1.0 → "1", 2.5 → "2.5" (loadfactor and timeout as a person writes them)."""
    return f"{value:g}"


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        out.write("  ".join(cells).rstrip() + "\n")


_MEMBER_HEADER = ["#", "URL", "ROUTE", "LF", "SET", "STATUS", "ELECTED", "BUSY"]


def _member_row(m: dict[str, Any]) -> list[str]:
    return [str(m["index"]), m["name"], m["route"] or "-", _number(m["loadfactor"]),
            str(m["lbset"]), m["status"], str(m["elected"]), str(m["busy"])]


def _print_list(balancers: list[dict[str, Any]], out: TextIO) -> None:
    rows = [["BALANCER", *_MEMBER_HEADER]]
    rows += [[b["name"], *_member_row(m)] for b in balancers for m in b["members"]]
    if len(rows) == 1:
        out.write("no balancers\n")
        return
    _table(rows, out)


def _print_balancer(b: dict[str, Any], out: TextIO) -> None:
    out.write(f"{b['name']}\n")
    settings = [("lbmethod", b["lbmethod"]), ("stickysession", b["stickysession"] or "-"),
                ("timeout", _number(b["timeout"])), ("maxattempts", str(b["maxattempts"])),
                ("nofailover", "on" if b["nofailover"] else "off"),
                ("growth", f"{b['growth_used']}/{b['growth']} used"),
                ("paths", " ".join(b["paths"]) or "-")]
    for key, value in settings:
        out.write(f"  {key:<14}{value}\n")
    if b["members"]:
        _table([_MEMBER_HEADER, *(_member_row(m) for m in b["members"])], out)


def _print_member(b: dict[str, Any], m: dict[str, Any], out: TextIO) -> None:
    out.write(f"{b['name']} member {m['index']} {m['name']}: {m['status']} "
              f"(lf {_number(m['loadfactor'])}, set {m['lbset']}, "
              f"route {m['route'] or '-'}, redirect {m['redirect'] or '-'})\n")


def _print_removed(m: dict[str, Any], out: TextIO) -> None:
    out.write(f"removed member {m['index']} {m['name']}\n")


# ---------------------------------------------------------------------- export

def _word(text: str) -> str:
    """One config argument, quoted when it holds blanks or quotes (the lexer's rules)."""
    if text and not any(c.isspace() or c in "\"'" for c in text):
        return text
    return '"' + text.replace('"', '\\"') + '"'


def export_config(balancers: list[dict[str, Any]], source: str) -> str:
    """The live state of ``balancers`` as httpd-syntax config, one ``<Proxy>`` per balancer.

    Members carry loadfactor, lbset, route, redirect and the operator's status flags
    (``_EXPORTED_FLAGS``); ProxySet carries lbmethod, maxattempts, nofailover, and timeout,
    stickysession, the unused growth and ``nonce=None`` when they differ from the default.
    Settings the API does not show (connection timeouts, health checks, …) are not included.
    """
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %z")
    lines = [f"# Live balancer state exported by `portico ctl export` from {source}",
             f"# at {stamp}. Member settings the API does not show are not included."]
    for b in balancers:
        lines.append(f"<Proxy \"{b['name']}\">")
        for m in b["members"]:
            params = [f"loadfactor={_number(m['loadfactor'])}", f"lbset={m['lbset']}"]
            if m["route"]:
                params.append(_word(f"route={m['route']}"))
            if m["redirect"]:
                params.append(_word(f"redirect={m['redirect']}"))
            flags = "".join(c for c in m["flags"] if c in _EXPORTED_FLAGS)
            if flags:
                params.append(f"status=+{flags}")
            lines.append(f"    BalancerMember {_word(m['name'])} {' '.join(params)}")
        proxyset = [f"lbmethod={b['lbmethod']}", f"maxattempts={b['maxattempts']}",
                    f"nofailover={'On' if b['nofailover'] else 'Off'}"]
        if b["timeout"]:
            proxyset.append(f"timeout={_number(b['timeout'])}")
        if b["stickysession"]:
            proxyset.append(_word(f"stickysession={b['stickysession']}"))
        if b["growth"] > b["growth_used"]:
            proxyset.append(f"growth={b['growth'] - b['growth_used']}")
        if b["nonce"] is None:
            proxyset.append("nonce=None")
        lines.append(f"    ProxySet {' '.join(proxyset)}")
        lines.append("</Proxy>")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- commands

def _on_off(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expects on or off, got {text!r}")
    return lowered == "on"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="portico ctl",
                                description="Control a running portico's balancers.")
    p.add_argument("--url", default=DEFAULT_URL,
                   help=f"the balancer-manager location (default {DEFAULT_URL})")
    p.add_argument("--json", action="store_true", help="print the API's JSON answer")
    # The same two options after the command word too (`portico ctl list --json`);
    # SUPPRESS keeps a subcommand from overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = functools.partial(sub.add_parser, parents=[common])
    add("list", help="every balancer and member as a table")
    add("show", help="one balancer").add_argument("balancer")
    for name in _STATE_COMMANDS:
        s = add(name, help=f"{name} a member")
        s.add_argument("balancer")
        s.add_argument("member", help="index, URL or route")
    s = add("set", help="change a member's loadfactor, lbset, route, redirect")
    s.add_argument("balancer")
    s.add_argument("member", help="index, URL or route")
    s.add_argument("--lf", dest="loadfactor", type=float)
    s.add_argument("--lbset", type=int)
    s.add_argument("--route")
    s.add_argument("--redirect")
    s = add("lbmethod", help="change the balancer's lbmethod")
    s.add_argument("balancer")
    s.add_argument("lbmethod")
    s = add("balancer", help="change the balancer's settings")
    s.add_argument("balancer")
    s.add_argument("--timeout", type=int)
    s.add_argument("--maxattempts", type=int)
    s.add_argument("--sticky", dest="stickysession", help='"name", "cookie|param" or -')
    s.add_argument("--nofailover", type=_on_off, metavar="on|off")
    s = add("add", help="add a member into a growth slot (starts Disabled)")
    s.add_argument("balancer")
    s.add_argument("member_url", metavar="URL")   # not "url": that is the manager's --url
    s = add("remove", help="remove a member added at run time (frees its slot)")
    s.add_argument("balancer")
    s.add_argument("member", help="index, URL or route")
    add("export", help="print the live state as httpd-syntax config")
    return p


def _changes(args: argparse.Namespace, keys: Sequence[str]) -> dict[str, Any]:
    changes = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    if not changes:
        raise CtlError(f"{args.command}: nothing to change (give one of "
                       + ", ".join(f"--{'lf' if k == 'loadfactor' else k}" for k in keys)
                       + ")")
    return changes


def _run(args: argparse.Namespace, client: ManagerClient, out: TextIO) -> None:
    """Do ``args.command``; output to ``out``; refusals raise `CtlError`."""
    document, show = _dispatch(args, client)
    if args.json:
        out.write(json.dumps(document, indent=1, sort_keys=True) + "\n")
    else:
        show(document, out)


_Printer = Callable[[Any, TextIO], None]


def _dispatch(args: argparse.Namespace, client: ManagerClient) -> tuple[Any, _Printer]:
    """Make the API calls for ``args.command``: the last answer and how to print it."""
    command = args.command
    if command == "list":
        return {"balancers": client.balancers()}, lambda d, o: _print_list(d["balancers"], o)
    if command == "export":
        return {"balancers": client.balancers()}, lambda d, o: o.write(
            export_config(d["balancers"], args.url))
    balancer = client.balancer(args.balancer)
    if command == "show":
        return balancer, _print_balancer
    if command in ("lbmethod", "balancer"):
        keys = ["lbmethod"] if command == "lbmethod" else [
            "timeout", "maxattempts", "stickysession", "nofailover"]
        return client.patch_balancer(balancer, _changes(args, keys)), _print_balancer
    member_printer: _Printer = functools.partial(_print_member, balancer)
    if command == "add":
        return client.add_member(balancer, args.member_url), member_printer
    index = resolve_member(balancer, args.member)
    if command == "remove":
        return client.remove_member(balancer, index), _print_removed
    changes = ({"status": _STATE_COMMANDS[command]} if command in _STATE_COMMANDS
               else _changes(args, ["loadfactor", "lbset", "route", "redirect"]))
    return client.patch_member(balancer, index, changes), member_printer


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run ``portico ctl`` with ``argv`` (the words after ``ctl``); the exit status.

    0 on success, 1 for a refusal (message on stderr), 2 for bad usage (argparse's).
    """
    args = _parser().parse_args(argv)
    try:
        _run(args, ManagerClient(args.url), out or sys.stdout)
    except CtlError as exc:
        print(f"portico ctl: {exc}", file=sys.stderr)
        return 1
    return 0
