"""Balancer member status for the lb code: the flag bits, the usable/spare/standby
predicates, httpd's status text (§6.3), and the per-member state the load-balancing code
reads and writes.

The bits and the shared helpers (``is_usable``, the status string, letters) are the
scoreboard's (``portico.state.flags``), so a member's ``status`` means the same in shared
memory, in the manager and here; this module only names them for the lb code.

"Usable" (httpd's PROXY_WORKER_IS_USABLE) means: initialised (``O``) and none of
``D S E C U`` set. Draining (``N``) does not make a member unusable: the sticky lookup still
accepts it; only the lbmethod walk leaves it out (see ``candidates``).
"""

from __future__ import annotations

__all__ = [
    "CONFIG_LETTERS", "DISABLED", "DRAIN", "ERROR", "FREE", "GENERIC", "HCFAIL", "IGNORE_ERRORS",
    "INIT", "LETTERS", "LocalMemberState", "MemberState", "SHUTDOWN", "SPARE", "STANDBY",
    "STOPPED", "UNUSABLE", "apply_status_param", "is_draining", "is_spare", "is_standby",
    "is_usable", "status_letters", "status_text",
]

from dataclasses import dataclass
from typing import Protocol

from portico.state.flags import CONFIG_LETTERS, Status, is_usable, to_letters
from portico.state.flags import status_string as status_text

DISABLED = int(Status.DISABLED)        # D  "Dis"   takes no requests; not cleared by retry
STOPPED = int(Status.STOPPED)          # S  "Stop"  administratively stopped; never retried
IGNORE_ERRORS = int(Status.IGNORE)     # I  "Ign"   never enters E; a retry always succeeds
SPARE = int(Status.SPARE)              # R  "Spar"  stands in for an unusable member of its lbset
STANDBY = int(Status.STANDBY)          # H  "Stby"  only when nothing else in the lbset is usable
ERROR = int(Status.ERROR)              # E  "Err"   in error until `retry` seconds pass
DRAIN = int(Status.DRAIN)              # N  "Drn"   sticky traffic only
HCFAIL = int(Status.HCFAIL)            # C  "HcFl"  failed the health check
INIT = int(Status.INIT)                # O  "Init"  initialised
GENERIC = int(Status.GENERIC)          # G  "Gen"   a default (generic) worker
SHUTDOWN = int(Status.SHUTDOWN)        # U  "Shut"  in shutdown
FREE = int(Status.FREE)                # F  "Free"  an unused (growth) slot

#: Letter → bit for every flag.
LETTERS: dict[str, int] = {
    "D": DISABLED, "S": STOPPED, "I": IGNORE_ERRORS, "R": SPARE, "H": STANDBY, "E": ERROR,
    "N": DRAIN, "C": HCFAIL, "O": INIT, "G": GENERIC, "U": SHUTDOWN, "F": FREE,
}

#: Any of these makes a member unusable (so does a missing INIT).
UNUSABLE = DISABLED | STOPPED | ERROR | HCFAIL | SHUTDOWN


def is_spare(status: int) -> bool:
    """The member is a hot spare (``R``)."""
    return bool(status & SPARE)


def is_standby(status: int) -> bool:
    """The member is a hot standby (``H``)."""
    return bool(status & STANDBY)


def is_draining(status: int) -> bool:
    """The member is draining (``N``): sticky requests only."""
    return bool(status & DRAIN)


def status_letters(status: int) -> str:
    """The letters of the set flags (``INIT | DISABLED`` → ``"OD"``)."""
    return to_letters(status)


def apply_status_param(status: int, spec: str) -> int:
    """``status`` changed by a ``status=`` value such as ``+H``, ``S-E`` or ``-DE`` (§6.3).

    ``+``/``-`` switch the mode for every following letter (default: set); letters are
    case-insensitive; only ``CONFIG_LETTERS`` may appear. ValueError names an unknown letter.
    """
    setting = True
    for char in spec:
        if char == "+":
            setting = True
        elif char == "-":
            setting = False
        else:
            letter = char.upper()
            if letter not in CONFIG_LETTERS:
                raise ValueError(f"unknown status flag {char!r} in status={spec}")
            bit = LETTERS[letter]
            status = status | bit if setting else status & ~bit
    return status


class MemberState(Protocol):
    """The shared, mutable state of one balancer member, as the lb code uses it.

    The scoreboard's ``WorkerSlot`` implements this over shared memory; `LocalMemberState`
    implements it in one process. Settings and scores (``status lbfactor lbset lbstatus
    error_time retries route redirect``) are read and written as attributes. The per-request
    counters (``elected busy transferred read requests errors``) are only read as
    attributes; they change through ``add_busy``/``add_elected``/``end``, which the
    scoreboard turns into adds on the calling process's own lane (no lost updates).
    """

    status: int          # flag bits (this module)
    lbfactor: int        # loadfactor x 100 (loadfactor 1.5 → 150)
    lbset: int
    lbstatus: int        # byrequests/bybusyness running score
    elected: int         # times chosen (sticky and balanced)
    busy: int            # requests in flight
    transferred: int     # bytes sent to the backend
    read: int            # bytes read from the backend
    requests: int
    errors: int
    error_time: float    # when E was last set, same clock as the `now` callers pass
    retries: int
    route: str
    redirect: str

    def add_busy(self, n: int = 1) -> None:
        """busy += n (n may be negative)."""

    def add_elected(self, n: int = 1) -> None:
        """elected += n."""

    def end(self, transferred: int = 0, read: int = 0, error: bool = False) -> None:
        """A request finished: busy -= 1, requests += 1, bytes added, errors += error."""


@dataclass(slots=True)
class LocalMemberState:
    """`MemberState` held in plain attributes: one process, and tests."""

    status: int = INIT
    lbfactor: int = 100
    lbset: int = 0
    lbstatus: int = 0
    elected: int = 0
    busy: int = 0
    transferred: int = 0
    read: int = 0
    requests: int = 0
    errors: int = 0
    error_time: float = 0.0
    retries: int = 0
    route: str = ""
    redirect: str = ""

    def add_busy(self, n: int = 1) -> None:
        self.busy += n

    def add_elected(self, n: int = 1) -> None:
        self.elected += n

    def end(self, transferred: int = 0, read: int = 0, error: bool = False) -> None:
        self.busy -= 1
        self.requests += 1
        self.errors += int(error)
        self.transferred += transferred
        self.read += read
