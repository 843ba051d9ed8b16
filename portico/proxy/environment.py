"""Evaluating the request environment (SetEnvIf*, SetEnvIfExpr, SetEnv/UnsetEnv/PassEnv).

The rules were compiled at load (portico/config/directives/env.py); here they run against
one request's facts. The pipeline calls ``run_conditions`` twice, with the server's rules
before routing and with the Locations' after, then ``apply_sets``. Nothing here runs for a
configuration without environment rules.
"""

from __future__ import annotations

__all__ = ["RequestFacts", "apply_sets", "expr_context", "merged_fields", "run_conditions"]

import re
from collections.abc import Mapping, Sequence

from portico.config.model import SETENVIF_ATTRIBUTES, EnvCondition, EnvSet
from portico.expr import EvalContext

_REFERENCE = re.compile(r"\\(\$)|\$(\d)")

# Request headers that httpd's expression language offers as %{HTTP_...} variables.
_HEADER_VARIABLES = {"accept": "HTTP_ACCEPT", "cookie": "HTTP_COOKIE",
                     "forwarded": "HTTP_FORWARDED", "host": "HTTP_HOST",
                     "proxy-connection": "HTTP_PROXY_CONNECTION", "referer": "HTTP_REFERER",
                     "user-agent": "HTTP_USER_AGENT"}


def merged_fields(headers: Sequence[tuple[bytes, bytes]]) -> dict[str, tuple[str, str]]:
    """Lowercased name → (name as sent first, value): repeated fields joined with ", ", as
    httpd merges them."""
    found: dict[str, tuple[str, str]] = {}
    for name, value in headers:
        text = name.decode("latin-1")
        key = text.lower()
        known = found.get(key)
        value_text = value.decode("latin-1")
        found[key] = (text, value_text) if known is None else (
            known[0], f"{known[1]}, {value_text}")
    return found


class RequestFacts:
    """What mod_setenvif may test in one request; header values are joined per name the way
    httpd merges repeated request fields ("a, b")."""

    __slots__ = ("_headers", "local_ip", "method", "peer_ip", "protocol", "query",
                 "raw_headers", "uri")

    def __init__(self, peer_ip: str, local_ip: str, method: bytes, version: bytes,
                 uri: str, headers: Sequence[tuple[bytes, bytes]],
                 query: str | None = None) -> None:
        """``uri`` is the path (Request_URI); ``query`` the query string, for expressions."""
        self.peer_ip = peer_ip
        self.local_ip = local_ip
        self.method = method.decode("latin-1")
        self.protocol = "HTTP/" + version.decode("latin-1")
        self.uri = uri
        self.query = query
        self.raw_headers = headers
        self._headers: dict[str, tuple[str, str]] | None = None

    def headers(self) -> dict[str, tuple[str, str]]:
        """``merged_fields`` of the request's headers, built on first use."""
        found = self._headers
        if found is None:
            found = self._headers = merged_fields(self.raw_headers)
        return found

    def special(self, attribute: str) -> str:
        """One of mod_setenvif's named facts (the spelling the config loader stored)."""
        if attribute == "Remote_Addr" or attribute == "Remote_Host":
            return self.peer_ip   # no reverse lookups: httpd gives the address then too
        if attribute == "Server_Addr":
            return self.local_ip
        if attribute == "Request_Method":
            return self.method
        if attribute == "Request_Protocol":
            return self.protocol
        return self.uri


def run_conditions(rules: Sequence[EnvCondition], env: dict[str, str],
                   facts: RequestFacts) -> None:
    """Apply every rule that holds, in order; later rules see what earlier ones set."""
    for rule in rules:
        if rule.expr is not None:
            if rule.expr.evaluate(expr_context(facts, env)):
                _apply(rule.sets, env, None)
            continue
        pattern = rule.pattern
        assert pattern is not None
        if rule.attribute_pattern is not None:
            # A regex attribute: the first header whose name and value both match.
            for name, value in facts.headers().values():
                if rule.attribute_pattern.search(name):
                    found = pattern.search(value)
                    if found is not None:
                        _apply(rule.sets, env, found)
                        break
            continue
        if rule.attribute in SETENVIF_ATTRIBUTES:
            value = facts.special(rule.attribute)
        else:
            # No such header: an environment variable set by an earlier rule; absent tests
            # as "" so that ^$ can match a missing field, as in httpd.
            header = facts.headers().get(rule.attribute.lower())
            value = header[1] if header is not None else env.get(rule.attribute, "")
        found = pattern.search(value)
        if found is not None:
            _apply(rule.sets, env, found)


def apply_sets(sets: Sequence[EnvSet], env: dict[str, str]) -> None:
    """SetEnv / UnsetEnv / PassEnv, in order."""
    _apply(sets, env, None)


def _apply(sets: Sequence[EnvSet], env: dict[str, str], found: re.Match[str] | None) -> None:
    for item in sets:
        value = item.value
        if value is None:
            env.pop(item.name, None)
        elif found is not None and "$" in value:
            env[item.name] = _expand(value, found)
        else:
            env[item.name] = value


def _expand(value: str, found: re.Match[str]) -> str:
    """``$0``-``$9`` → the match's groups (a missing group is empty); ``\\$`` → ``$``."""
    groups = found.re.groups

    def replace(ref: re.Match[str]) -> str:
        if ref.group(1) is not None:
            return "$"
        index = int(ref.group(2))
        return (found.group(index) or "") if index <= groups else ""

    return _REFERENCE.sub(replace, value)


def expr_context(facts: RequestFacts, env: Mapping[str, str], status: int = 0,
                 response: Sequence[tuple[bytes, bytes]] | None = None) -> EvalContext:
    """An expression context for a request: its headers, method and URI, the connection's
    addresses, and the environment so far (``env('X')``, ``reqenv('X')``); for a finished
    request also its status and response headers (``resp('X')``)."""
    headers = {name: value for name, value in facts.headers().values()}
    variables = dict(env)
    variables["REMOTE_ADDR"] = variables["REMOTE_HOST"] = facts.peer_ip
    variables["SERVER_ADDR"] = facts.local_ip
    variables["SERVER_PROTOCOL"] = facts.protocol
    for key, (_, value) in facts.headers().items():
        name = _HEADER_VARIABLES.get(key)
        if name is not None:
            variables[name] = value
    uri = facts.uri if facts.query is None else f"{facts.uri}?{facts.query}"
    response_headers = (None if response is None
                        else {name: value for name, value in merged_fields(response).values()})
    return EvalContext(status=status, headers=headers, method=facts.method, uri=uri,
                       variables=variables, response_headers=response_headers)
