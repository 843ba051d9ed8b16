"""htpasswd files and the password hashes httpd's ``htpasswd`` tool writes (§19).

``verify_hash(password, stored)`` checks one password against one stored hash: bcrypt
(``$2y$``, ``$2a$``, ``$2b$``, via the ``bcrypt`` package), Apache's MD5 (``$apr1$``,
implemented here with hashlib) and ``{SHA}`` (base64 of SHA-1). Traditional crypt() hashes
are not supported (Python 3.13 drops the ``crypt`` module): they never match.

``HtpasswdFile`` is one ``AuthUserFile``: read when the config loads (a missing or unreadable
file is an ``HtpasswdError`` then) and read again whenever its mtime or size changes, so an
edited file takes effect without a reload. If a later read fails the last good content stays.

bcrypt is deliberately slow (~100 ms) and runs on the event loop, so successful checks are
remembered for a short time in a bounded cache keyed by (user, stored hash, SHA-256 of the
password): a changed password or hash never hits a stale entry, and the password itself is
not kept.
"""

from __future__ import annotations

__all__ = ["HtpasswdError", "HtpasswdFile", "apr1_md5", "verify_hash"]

import base64
import hashlib
import hmac
import os
import time
from collections import OrderedDict

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CACHE_SIZE = 512
_CACHE_TTL = 60.0


class HtpasswdError(ValueError):
    """The user file cannot be read (the config loader adds file:line)."""


def apr1_md5(password: bytes, salt: bytes) -> str:
    """Apache's ``$apr1$`` MD5 hash of ``password`` with ``salt`` (at most 8 bytes used)."""
    magic = b"$apr1$"
    salt = salt[:8]
    alternate = hashlib.md5(password + salt + password).digest()
    data = bytearray(password + magic + salt)
    remaining = len(password)
    while remaining > 0:
        data += alternate[:min(16, remaining)]
        remaining -= 16
    bits = len(password)
    while bits:
        # The algorithm's quirk: a set bit adds a NUL byte, a clear bit the first password byte.
        data += b"\0" if bits & 1 else password[:1]
        bits >>= 1
    digest = hashlib.md5(bytes(data)).digest()
    for round_ in range(1000):   # the fixed 1000 rounds that make it (mildly) slow
        step = bytearray(password if round_ & 1 else digest)
        if round_ % 3:
            step += salt
        if round_ % 7:
            step += password
        step += digest if round_ & 1 else password
        digest = hashlib.md5(bytes(step)).digest()
    groups = ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))
    encoded = "".join(_to64((digest[a] << 16) | (digest[b] << 8) | digest[c], 4)
                      for a, b, c in groups) + _to64(digest[11], 2)
    return f"$apr1${salt.decode('latin-1')}${encoded}"


def verify_hash(password: bytes, stored: str) -> bool:
    """True if ``password`` matches the htpasswd hash ``stored``; False for a mismatch or a
    format this module does not know. Never raises for any input."""
    try:
        if stored.startswith(("$2y$", "$2a$", "$2b$")):
            import bcrypt  # imported here so a config without bcrypt hashes never needs it

            # $2y$ (what htpasswd writes) and $2b$ are the same algorithm; the package
            # wants $2b$. bcrypt only ever used the first 72 bytes, and bcrypt>=5 refuses
            # longer input instead of ignoring the rest, so cut it as the hash did.
            normal = "$2b$" + stored[4:] if stored.startswith("$2y$") else stored
            return bcrypt.checkpw(password[:72], normal.encode("ascii"))
        if stored.startswith("$apr1$"):
            salt = stored[6:].split("$", 1)[0]
            return hmac.compare_digest(apr1_md5(password, salt.encode("latin-1")), stored)
        if stored.startswith("{SHA}"):
            expected = base64.b64encode(hashlib.sha1(password).digest()).decode("ascii")
            return hmac.compare_digest(expected, stored[5:])
    except (ValueError, UnicodeError):
        return False
    return False


class HtpasswdFile:
    """One ``AuthUserFile``: ``user:hash`` lines, re-read when the file changes.

    Promise: ``check`` never raises; it answers from the newest content that could be read.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, str] = {}
        self._cache: OrderedDict[tuple[str, str, bytes], float] = OrderedDict()
        try:
            self._load()
        except OSError as exc:
            raise HtpasswdError(f"cannot read AuthUserFile {path!r}: "
                                f"{exc.strerror or exc}") from None

    def check(self, user: str, password: bytes) -> bool:
        """True if ``user`` is in the file and ``password`` matches its hash."""
        try:
            self._refresh()
        except OSError:
            pass   # keep the last good content rather than lock everybody out
        stored = self._users.get(user)
        if stored is None:
            return False
        key = (user, stored, hashlib.sha256(password).digest())
        now = time.monotonic()
        seen = self._cache.get(key)
        if seen is not None and now - seen < _CACHE_TTL:
            return True
        if not verify_hash(password, stored):
            return False
        self._cache[key] = now
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return True

    def _refresh(self) -> None:
        info = os.stat(self.path)
        if (info.st_mtime_ns, info.st_size) != self._stamp:
            self._load()

    def _load(self) -> None:
        with open(self.path, "rb") as handle:
            info = os.fstat(handle.fileno())
            text = handle.read().decode("utf-8", "replace")
        users: dict[str, str] = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or ":" not in line:
                continue
            name, stored = line.split(":", 1)
            users.setdefault(name, stored.strip())   # httpd uses the first line for a user
        self._users = users
        self._stamp = (info.st_mtime_ns, info.st_size)


def _to64(value: int, count: int) -> str:
    out = []
    for _ in range(count):
        out.append(_ITOA64[value & 0x3F])
        value >>= 6
    return "".join(out)
