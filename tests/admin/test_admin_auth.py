"""Basic authentication (§19): htpasswd hashes as Debian's ``htpasswd`` writes them, the
Auth* directives, and 401/403/200 over real sockets with a real origin behind the proxy."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from portico.admin.basicauth import basic_credentials
from portico.admin.htpasswd import HtpasswdError, HtpasswdFile, apr1_md5, verify_hash
from portico.config import ConfigError, load_config
from tests.support.idservers import IdServers
from tests.support.lbclient import fetch
from tests.support.lbconf import start_balanced
from tests.support.proxy import server_kind

HTPASSWD = shutil.which("htpasswd")
needs_htpasswd = pytest.mark.skipif(
    HTPASSWD is None, reason="htpasswd (Debian package apache2-utils) is not installed")

# htpasswd flag → the prefix of the hash it writes.
FORMATS = {"-B": "$2y$", "-m": "$apr1$", "-s": "{SHA}"}


def _htpasswd(path: Path, flag: str, user: str, password: str) -> None:
    """Add or replace ``user`` in ``path`` with the real tool (creating the file if needed)."""
    assert HTPASSWD is not None
    args = [HTPASSWD, "-b", flag]
    if not path.exists():
        args.insert(1, "-c")
    if flag == "-B":
        args += ["-C", "5"]   # the lowest cost keeps the test fast; the format is the same
    subprocess.run([*args, str(path), user, password], check=True, capture_output=True,
                   timeout=30)


def _auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


# ------------------------------------------------------------------------------ hashes

@needs_htpasswd
@pytest.mark.parametrize("flag", sorted(FORMATS))
def test_hashes_written_by_htpasswd(tmp_path: Path, flag: str) -> None:
    path = tmp_path / "users"
    for user, password in (("ann", "s3cret"), ("bo", ""), ("cy", "pässwörd:with colon")):
        _htpasswd(path, flag, user, password)
    stored = dict(line.split(":", 1) for line in path.read_text().splitlines())
    assert all(value.startswith(FORMATS[flag]) for value in stored.values()), stored
    users = HtpasswdFile(str(path))
    assert users.check("ann", b"s3cret")
    assert not users.check("ann", b"s3cret ")
    assert not users.check("ann", b"S3cret")
    assert users.check("bo", b"")
    assert not users.check("bo", b"x")
    assert users.check("cy", "pässwörd:with colon".encode())
    assert not users.check("nobody", b"s3cret")


def test_apr1_known_value() -> None:
    # A hash written by `htpasswd -m` (salt mykZZlXE, password "secret").
    stored = "$apr1$mykZZlXE$q3gedLK21wUxcFUSSQ/2s1"
    assert apr1_md5(b"secret", b"mykZZlXE") == stored
    assert verify_hash(b"secret", stored)
    assert not verify_hash(b"secreT", stored)


def test_sha_and_unknown_formats() -> None:
    assert verify_hash(b"pw", "{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=")
    assert not verify_hash(b"pw2", "{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=")
    for stored in ("", "plain", "$2y$05$short", "$apr1$", "$6$salt$xyz", "{SHA}!!"):
        assert not verify_hash(b"pw", stored), stored


def test_bcrypt_2a_2b_and_long_passwords() -> None:
    bcrypt = pytest.importorskip("bcrypt")
    long_password = b"x" * 100
    hashed = bcrypt.hashpw(long_password[:72], bcrypt.gensalt(rounds=4)).decode()
    assert hashed.startswith("$2b$")
    for prefix in ("$2a$", "$2b$", "$2y$"):
        assert verify_hash(long_password, prefix + hashed[4:])
    assert not verify_hash(b"y" * 100, hashed)


def test_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("ann:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n")   # "pw"
    users = HtpasswdFile(str(path))
    assert users.check("ann", b"pw")
    assert not users.check("bo", b"pw")
    path.write_text("# comment\n\nbo:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))   # a new mtime for sure
    assert users.check("bo", b"pw")
    assert not users.check("ann", b"pw")
    path.unlink()
    assert users.check("bo", b"pw")   # a vanished file keeps the last good content


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(HtpasswdError, match="cannot read AuthUserFile"):
        HtpasswdFile(str(tmp_path / "absent"))


def test_basic_credentials() -> None:
    header = [(b"authorization", b"Basic " + base64.b64encode(b"ann:a:b"))]
    assert basic_credentials(header) == ("ann", b"a:b")
    assert basic_credentials([(b"AUTHORIZATION", b"basic " + base64.b64encode(b"x:"))]) == (
        "x", b"")
    for bad in (b"Bearer abc", b"Basic !!!", b"Basic " + base64.b64encode(b"nocolon"), b""):
        assert basic_credentials([(b"Authorization", bad)]) is None, bad
    assert basic_credentials([(b"Host", b"a")]) is None


# ------------------------------------------------------------------------------ config

def _load(tmp_path: Path, body: str):
    conf = tmp_path / "a.conf"
    conf.write_text(f"ServerName x\n<Location /x>\n{body}\n</Location>\n")
    return load_config(str(conf))


def test_directives_set_the_location(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("ann:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n")
    config = _load(tmp_path, f'AuthType Basic\nAuthName "Staff only"\n'
                             f"AuthBasicProvider file\nAuthUserFile {users}\n"
                             "Require user ann bo")
    (loc,) = config.main.locations
    assert loc.overrides["auth_type"] == "basic"
    assert loc.overrides["auth_name"] == "Staff only"
    assert loc.overrides["auth_user_file"].check("ann", b"pw")
    rule = loc.overrides["access"]
    assert rule.needs_user
    assert not rule.allows("127.0.0.1")
    assert rule.allows("127.0.0.1", "", "bo")
    assert not rule.allows("127.0.0.1", "", "cy")


@pytest.mark.parametrize(("body", "line", "directive", "words"), [
    ("AuthUserFile /nonexistent/portico-users", 3, "AuthUserFile", "cannot read AuthUserFile"),
    ("AuthType Digest", 3, "AuthType", "not supported"),
    ("AuthBasicProvider dbm", 3, "AuthBasicProvider", "'dbm' is not supported"),
    ("Require user", 3, "Require", "at least one user"),
    ("Require valid-user bob", 3, "Require", "takes no arguments"),
    ("Require group staff", 3, "Require", "not supported"),
    ("AuthGroupFile /etc/group", 3, "AuthGroupFile", "not supported"),
])
def test_config_errors(tmp_path: Path, body: str, line: int, directive: str,
                       words: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, body)
    err = info.value
    assert (err.line, err.directive) == (line, directive), str(err)
    assert words in err.message


# ------------------------------------------------------------------------- real sockets

AUTH_CONF = """\
<Location "/any">
    AuthType Basic
    AuthName "Any staff"
    AuthUserFile "{{users}}"
    Require valid-user
</Location>
<Location "/ann">
    AuthType Basic
    AuthName "Ann's \\"room\\""
    AuthBasicProvider file
    AuthUserFile "{{users}}"
    Require user ann
</Location>
<Location "/local">
    AuthType Basic
    AuthName "Local or staff"
    AuthUserFile "{{users}}"
    <RequireAny>
        Require ip 127.0.0.1
        Require valid-user
    </RequireAny>
</Location>
<Location "/far">
    AuthType Basic
    AuthName "Far or staff"
    AuthUserFile "{{users}}"
    <RequireAny>
        Require ip 10.0.0.0/8
        Require valid-user
    </RequireAny>
</Location>
<Location "/both">
    AuthType Basic
    AuthName "Both"
    AuthUserFile "{{users}}"
    <RequireAll>
        Require ip 10.0.0.0/8
        Require valid-user
    </RequireAll>
</Location>
<Location "/noauth">
    Require valid-user
</Location>
ProxyPass "/" "{{a}}/"
"""


@needs_htpasswd
@pytest.mark.skipif(server_kind() != "portico", reason="reads portico's listener")
def test_basic_auth_over_sockets(tmp_path: Path) -> None:
    users = tmp_path / "users"
    _htpasswd(users, "-B", "ann", "ann-pw")
    _htpasswd(users, "-m", "bo", "bo-pw")
    _htpasswd(users, "-s", "cy", "cy-pw")
    with IdServers(["a"]) as servers:
        with start_balanced(AUTH_CONF, tmp_path, servers, users=users) as proxy:
            bare = fetch(proxy.port, "/any/1")
            challenge = dict((k.lower(), v) for k, v in bare.headers)["www-authenticate"]
            got = {
                "bare": bare.status,
                "wrong": fetch(proxy.port, "/any/2", headers=_auth("ann", "nope")).status,
                "stranger": fetch(proxy.port, "/any/3", headers=_auth("zed", "ann-pw")).status,
                "ann": fetch(proxy.port, "/any/ann", headers=_auth("ann", "ann-pw")).status,
                "ann-again": fetch(proxy.port, "/any/ann2",
                                   headers=_auth("ann", "ann-pw")).status,
                "bo": fetch(proxy.port, "/any/bo", headers=_auth("bo", "bo-pw")).status,
                "cy": fetch(proxy.port, "/any/cy", headers=_auth("cy", "cy-pw")).status,
                "only-ann": fetch(proxy.port, "/ann/x", headers=_auth("ann", "ann-pw")).status,
                "not-bo": fetch(proxy.port, "/ann/bo", headers=_auth("bo", "bo-pw")).status,
                "local": fetch(proxy.port, "/local/x").status,
                "far": fetch(proxy.port, "/far/x").status,
                "far-bo": fetch(proxy.port, "/far/bo", headers=_auth("bo", "bo-pw")).status,
                "both": fetch(proxy.port, "/both/x", headers=_auth("bo", "bo-pw")).status,
                "noauth": fetch(proxy.port, "/noauth/x").status,
            }
            not_bo = fetch(proxy.port, "/ann/bo2", headers=_auth("bo", "bo-pw"))
            # Edit the file while the proxy runs: bo's password changes, dee is added.
            time.sleep(0.02)
            _htpasswd(users, "-m", "bo", "new-bo-pw")
            _htpasswd(users, "-B", "dee", "dee-pw")
            later = {
                "bo-old": fetch(proxy.port, "/any/bo3", headers=_auth("bo", "bo-pw")).status,
                "bo-new": fetch(proxy.port, "/any/bo4", headers=_auth("bo", "new-bo-pw")).status,
                "dee": fetch(proxy.port, "/any/dee", headers=_auth("dee", "dee-pw")).status,
            }
        hits = sorted(h.target for h in servers.hits)
    assert challenge == 'Basic realm="Any staff"'
    assert dict(not_bo.headers).get("WWW-Authenticate") == 'Basic realm="Ann\'s \\"room\\""'
    assert got == {"bare": 401, "wrong": 401, "stranger": 401, "ann": 200, "ann-again": 200,
                   "bo": 200, "cy": 200, "only-ann": 200, "not-bo": 401, "local": 200,
                   "far": 401, "far-bo": 200, "both": 403, "noauth": 500}
    assert later == {"bo-old": 401, "bo-new": 200, "dee": 200}
    # Only the requests that were let in reached the origin.
    assert hits == sorted(["/any/ann", "/any/ann2", "/any/bo", "/any/cy", "/ann/x",
                           "/local/x", "/far/bo", "/any/bo4", "/any/dee"])


# Results checked against httpd 2.4 (mod_authz_core) from 127.0.0.1: a plain DENIED in a
# RequireAll refuses before any credentials are asked for, whatever the order.
@pytest.mark.parametrize(("body", "anonymous", "as_bo"), [
    ("<RequireAll>\nRequire ip 10.0.0.0/8\nRequire valid-user\n</RequireAll>", "DENIED",
     False),
    ("<RequireAll>\nRequire valid-user\nRequire ip 10.0.0.0/8\n</RequireAll>", "DENIED",
     False),
    ("<RequireAll>\nRequire valid-user\nRequire not user bo\n</RequireAll>",
     "DENIED_NO_USER", False),
    ("<RequireAny>\nRequire ip 10.0.0.0/8\nRequire user bo\n</RequireAny>",
     "DENIED_NO_USER", True),
    ("<RequireAny>\nRequire ip 127.0.0.1\nRequire valid-user\n</RequireAny>", "GRANTED",
     True),
    ("Require all denied\nRequire user bo", "DENIED_NO_USER", True),
])
def test_lazy_authentication_results(tmp_path: Path, body: str, anonymous: str,
                                     as_bo: bool) -> None:
    (loc,) = _load(tmp_path, body).main.locations
    rule = loc.overrides["access"]
    assert rule.decide("127.0.0.1").name == anonymous
    assert rule.allows("127.0.0.1", "", "bo") is as_bo
