"""Worker status flags as stored in the scoreboard, and httpd's status string (§6.3).

The bit values are ours (the scoreboard layout is versioned, so they may change with it);
their *order* is the order in which httpd prints the names, so ``status_string`` is a walk
over the bits from low to high.

Letters: the eight a config or the manager may set (``D S I R H E N C``) plus four internal
ones (``O`` initialised, ``G`` generic/default worker, ``U`` in shutdown, ``F`` free slot).
"""

from __future__ import annotations

__all__ = [
    "CONFIG_LETTERS", "LETTERS", "Status", "UNUSABLE", "apply_letters", "from_letters",
    "is_usable", "status_string", "to_letters",
]

import enum


class Status(enum.IntFlag):
    """One bit per flag, in httpd's display order (Init Ign Drn Gen Shut Dis Stop Err …)."""

    INIT = 1 << 0        # O  "Init"
    IGNORE = 1 << 1      # I  "Ign"   ignore errors
    DRAIN = 1 << 2       # N  "Drn"   sticky requests only
    GENERIC = 1 << 3     # G  "Gen"   a default (generic) worker
    SHUTDOWN = 1 << 4    # U  "Shut"  in shutdown
    DISABLED = 1 << 5    # D  "Dis"
    STOPPED = 1 << 6     # S  "Stop"
    ERROR = 1 << 7       # E  "Err"
    STANDBY = 1 << 8     # H  "Stby"  hot standby
    SPARE = 1 << 9       # R  "Spar"  hot spare
    FREE = 1 << 10       # F  "Free"  an unused (growth) slot
    HCFAIL = 1 << 11     # C  "HcFl"  failed the health check


#: Letter → bit, for every letter the scoreboard knows.
LETTERS: dict[str, Status] = {
    "O": Status.INIT, "I": Status.IGNORE, "N": Status.DRAIN, "G": Status.GENERIC,
    "U": Status.SHUTDOWN, "D": Status.DISABLED, "S": Status.STOPPED, "E": Status.ERROR,
    "H": Status.STANDBY, "R": Status.SPARE, "F": Status.FREE, "C": Status.HCFAIL,
}

#: The letters ``status=`` (config) and the manager may name.
CONFIG_LETTERS = "DSIRHENC"

#: Any of these makes a worker unusable (with INIT missing, §6.3). Drain does not.
UNUSABLE = Status.DISABLED | Status.STOPPED | Status.ERROR | Status.HCFAIL | Status.SHUTDOWN

_NAMES: tuple[tuple[int, str], ...] = (
    (Status.INIT, "Init "), (Status.IGNORE, "Ign "), (Status.DRAIN, "Drn "),
    (Status.GENERIC, "Gen "), (Status.SHUTDOWN, "Shut "), (Status.DISABLED, "Dis "),
    (Status.STOPPED, "Stop "), (Status.ERROR, "Err "), (Status.STANDBY, "Stby "),
    (Status.SPARE, "Spar "), (Status.FREE, "Free "), (Status.HCFAIL, "HcFl "),
)


def is_usable(flags: int) -> bool:
    """True when the worker is initialised and none of D, S, E, C, U is set (N is allowed)."""
    return bool(flags & Status.INIT) and not flags & UNUSABLE


def status_string(flags: int) -> str:
    """httpd's status text: flag names each followed by a space, then ``Ok `` when usable.

    >>> status_string(Status.INIT)
    'Init Ok '
    >>> status_string(Status.INIT | Status.DISABLED)
    'Init Dis '
    """
    parts = [name for bit, name in _NAMES if flags & bit]
    if is_usable(flags):
        parts.append("Ok ")
    return "".join(parts)


def from_letters(letters: str) -> Status:
    """The bits for a string of letters (case-insensitive); ValueError names an unknown one."""
    bits = Status(0)
    for char in letters:
        bit = LETTERS.get(char.upper())
        if bit is None:
            raise ValueError(f"unknown status flag {char!r}")
        bits |= bit
    return bits


def to_letters(flags: int) -> str:
    """The letters of the set bits, in display order (``Status.INIT|DISABLED`` → ``"OD"``)."""
    return "".join(letter for letter, bit in sorted(LETTERS.items(), key=lambda kv: kv[1])
                   if flags & bit)


def apply_letters(flags: int, set_letters: str = "", clear_letters: str = "") -> int:
    """``flags`` with ``set_letters`` set and then ``clear_letters`` cleared.

    The pair is what ``portico.config.params.parse_status`` produces from ``status=``.
    """
    return (flags | from_letters(set_letters)) & ~from_letters(clear_letters) & 0xFFFFFFFF
