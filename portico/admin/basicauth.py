"""The per-request access decision with Basic authentication (§19).

``authorize`` is what the pipeline calls for a request under a Require rule. It follows
httpd 2.4's order: the rule is asked first without a user; only if that does not grant and
the rule has a ``Require user|valid-user`` are the request's credentials checked against the
Location's ``AuthUserFile`` and the rule asked again with the user name. "Could a user change
the answer" is the rule's DENIED_NO_USER result (portico.admin.access), so a RequireAll whose
``Require ip`` failed is a 403 without a credentials prompt, as in httpd.

Answers (httpd's): allowed → None; refused by a rule that no user could change → 403;
credentials missing, malformed or wrong, or a user the rule does not accept → 401 with
``WWW-Authenticate: Basic realm="…"``; a rule that needs a user where no ``AuthType Basic``
with ``AuthName`` and ``AuthUserFile`` applies → 500 (httpd's "AuthType not set").
"""

from __future__ import annotations

__all__ = ["Denial", "authorize", "basic_credentials"]

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portico.admin.access import Result

if TYPE_CHECKING:
    from portico.admin.access import AccessRule
    from portico.config.model import ProxySettings


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a request is refused: the status and the extra response headers to send."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...] = ()


_FORBIDDEN = Denial(403)
_NOT_SET = Denial(500)


def authorize(rule: AccessRule, settings: ProxySettings, client_ip: str, local_ip: str,
              headers: list[tuple[bytes, bytes]], hostname: str | None = None,
              **request: Any) -> Denial | None:
    """None if the request may go on, else the Denial to answer with. Never raises for any
    header bytes (bad credentials are just a 401). ``request``: method, env and context, for
    ``AccessRule.decide``."""
    first = rule.decide(client_ip, local_ip, None, hostname, **request)
    if first is Result.GRANTED:
        return None
    if first is not Result.DENIED_NO_USER:
        return _FORBIDDEN
    users = settings.auth_user_file
    if settings.auth_type != "basic" or not settings.auth_name or users is None:
        return _NOT_SET
    credentials = basic_credentials(headers)
    if credentials is not None:
        user, password = credentials
        if users.check(user, password) and rule.allows(client_ip, local_ip, user, hostname,
                                                       **request):
            return None
    return Denial(401, ((b"WWW-Authenticate", _challenge(settings.auth_name)),))


def basic_credentials(headers: list[tuple[bytes, bytes]]) -> tuple[str, bytes] | None:
    """(user, password) from the request's ``Authorization: Basic …`` header, or None if
    there is none or it does not decode. The user name is read as UTF-8 (latin-1 for bytes
    that are not UTF-8, so a name is never lost); the password stays bytes, as hashed."""
    for name, value in headers:
        if name.lower() != b"authorization":
            continue
        scheme, _, token = value.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, colon, password = decoded.partition(b":")
        if not colon:
            return None
        try:
            return user.decode("utf-8"), password
        except UnicodeDecodeError:
            return user.decode("latin-1"), password
    return None


def _challenge(realm: str) -> bytes:
    # A quoted-string: escape the two characters that would end or break it.
    quoted = realm.replace("\\", "\\\\").replace('"', '\\"')
    return b'Basic realm="' + quoted.encode("utf-8") + b'"'
