"""Process-wide runtime state shared by every serving process (the scoreboard).

``Scoreboard`` is the entry point; ``flags`` holds the worker status bits and httpd's
status strings; ``layout`` the byte layout and its limits.
"""

from portico.state.flags import Status, status_string
from portico.state.layout import LayoutMismatch
from portico.state.scoreboard import (
    KEPT_FLAGS,
    BalancerSlot,
    ProcessSlot,
    ProcState,
    Scoreboard,
    SharedLock,
    WorkerSlot,
)

__all__ = [
    "KEPT_FLAGS", "BalancerSlot", "LayoutMismatch", "ProcState", "ProcessSlot", "Scoreboard",
    "SharedLock", "Status", "WorkerSlot", "status_string",
]
