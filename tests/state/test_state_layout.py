"""Byte layout: alignment, field round trips, size limits, header/version checks."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from portico.state import LayoutMismatch, Scoreboard, Status
from portico.state import layout as L


@pytest.mark.parametrize("rec", [L.HEADER, L.WORKER, L.BALANCER, L.PROCESS])
def test_records_are_aligned(rec: L.Record) -> None:
    assert rec.size % 64 == 0
    end = 0
    for f in sorted(rec.fields.values(), key=lambda f: f.offset):
        assert f.offset >= end, f"{f.name} overlaps the previous field"
        if f.kind in ("q", "d", "r"):
            assert f.offset % 8 == 0, f.name
        else:
            assert f.offset % 4 == 0, f.name
        end = f.offset + f.size + (4 if f.kind == "s" else 0)
    assert end <= rec.size
    assert L.HEADER.offset("magic") == 0


def test_fingerprint_changes_with_the_layout() -> None:
    fp = L.fingerprint()
    assert fp == L.fingerprint()
    other = L.Record("worker", [("status", "I"), ("extra", "q")])
    assert other.describe() != L.WORKER.describe()


def test_worker_fields_round_trip() -> None:
    sb = Scoreboard.create(["http://a/"], processes=1)
    try:
        w = sb.worker("http://a/")
        w.status = Status.INIT | Status.DISABLED
        w.lbfactor = 250
        w.lbset = 3
        w.lbstatus = -(2**62)
        w.error_time = 1234.5
        w.retries = 7
        w.route = "r" * 63
        w.redirect = "héllo"
        w.pcount, w.fcount = 4, 2
        again = sb.worker("http://a/")
        assert again is w
        got = (w.status, w.lbfactor, w.lbset, w.lbstatus, w.error_time, w.retries, w.route,
               w.redirect, w.pcount, w.fcount, w.name, w.balancer)
        assert got == (Status.INIT | Status.DISABLED, 250, 3, -(2**62), 1234.5, 7, "r" * 63,
                       "héllo", 4, 2, "http://a/", None)
        w.route = ""
        assert w.route == ""
    finally:
        sb.close()


def test_balancer_fields_round_trip() -> None:
    sb = Scoreboard.create(balancers={"balancer://c1": ["http://m/"]})
    try:
        b = sb.balancer("balancer://c1")
        assert (b.lbmethod, b.sticky_sep, b.maxattempts, b.timeout) == ("byrequests", ".", 0, 0)
        assert len(b.nonce) == 36
        b.lbmethod = "bybusyness"
        b.sticky, b.sticky_path, b.sticky_sep = "JSESSIONID", "jsessionid", "_"
        b.nofailover, b.forcerecovery, b.need_reset, b.maxattempts = 1, 0, 1, 3
        b.timeout = 2.5
        b.nonce = "n" * 36
        assert b.snapshot() | {"updated": 0} == {
            "name": "balancer://c1", "lbmethod": "bybusyness", "sticky": "JSESSIONID",
            "sticky_path": "jsessionid", "sticky_sep": "_", "nofailover": True,
            "timeout": 2.5, "maxattempts": 3, "forcerecovery": False, "need_reset": True,
            "nonce": "n" * 36, "max_members": 1, "growth": 0, "growth_used": 0,
            "updated": 0, "edits": b.edits,
        }
        assert b.edits >= 5
    finally:
        sb.close()


@pytest.mark.parametrize(("field", "limit"), [("route", 63), ("redirect", 63)])
def test_worker_string_limits(field: str, limit: int) -> None:
    sb = Scoreboard.create(["http://a/"])
    try:
        w = sb.worker("http://a/")
        setattr(w, field, "x" * limit)
        with pytest.raises(ValueError, match=f"limit is {limit}"):
            setattr(w, field, "x" * (limit + 1))
        assert getattr(w, field) == "x" * limit   # a refused write changes nothing
        with pytest.raises(ValueError):          # bytes count, not characters
            setattr(w, field, "é" * 32)
    finally:
        sb.close()


def test_name_limits() -> None:
    ok = "http://h/" + "p" * (384 - 9)
    sb = Scoreboard.create([ok])
    assert sb.worker(ok).name == ok
    sb.close()
    with pytest.raises(ValueError, match="worker name"):
        Scoreboard.create([ok + "p"])
    with pytest.raises(ValueError, match="balancer name"):
        Scoreboard.create(balancers=["balancer://" + "b" * 200])
    sb = Scoreboard.create(balancers=["balancer://c"])
    b = sb.balancer("balancer://c")
    b.lbmethod = "m" * 16
    with pytest.raises(ValueError):
        b.lbmethod = "m" * 17
    with pytest.raises(ValueError):
        b.nonce = "n" * 37
    with pytest.raises(ValueError):
        b.sticky = "s" * 64
    with pytest.raises(ValueError):
        b.sticky_sep = "ab"
    sb.close()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Scoreboard.create(["http://a/", "http://a/"])
    with pytest.raises(ValueError, match="duplicate"):
        Scoreboard.create(balancers={"balancer://c": ["http://a/", "http://a/"]})
    with pytest.raises(ValueError):
        Scoreboard.create(processes=0)
    with pytest.raises(ValueError):
        Scoreboard.create(balancers=["balancer://c"], growth=-1)


def _made(tmp_path: Path) -> Path:
    path = tmp_path / "scoreboard"
    sb = Scoreboard.create(["http://a/"], {"balancer://c": ["http://m/"]}, processes=2,
                           path=path, generation=7)
    sb.bind(1)
    sb.worker("http://m/", "balancer://c").begin()
    sb.close()
    return path


def test_attach_reads_a_named_board(tmp_path: Path) -> None:
    sb = Scoreboard.attach(_made(tmp_path))
    try:
        assert sb.generation == 7
        w = sb.worker("http://m/", "balancer://c")
        assert (w.elected, w.busy) == (1, 1)
        assert sb.process(1).pid > 0
        with pytest.raises(RuntimeError):
            sb.lock("balancer://c")
        with pytest.raises(RuntimeError):
            w.status = 0
    finally:
        sb.close()


def _patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("version", L.LAYOUT_VERSION + 1, "layout version"),
    ("fingerprint", 0xDEADBEEF, "fingerprint"),
    ("worker_size", 64, "worker_size"),
])
def test_attach_refuses_another_layout(tmp_path: Path, field: str, value: int,
                                       message: str) -> None:
    path = _made(tmp_path)
    _patch(path, L.HEADER.offset(field), struct.pack("I", value))
    with pytest.raises(LayoutMismatch, match=message):
        Scoreboard.attach(path)


def test_attach_refuses_other_files(tmp_path: Path) -> None:
    path = _made(tmp_path)
    _patch(path, 0, b"NOTMINE!")
    with pytest.raises(LayoutMismatch, match="magic"):
        Scoreboard.attach(path)
    small = tmp_path / "small"
    small.write_bytes(b"x" * 10)
    with pytest.raises(LayoutMismatch, match="too small"):
        Scoreboard.attach(small)
    cut = _made(tmp_path)
    with open(cut, "r+b") as f:
        f.truncate(L.HEADER.size + 64)
    with pytest.raises(LayoutMismatch, match="mapped"):
        Scoreboard.attach(cut)
