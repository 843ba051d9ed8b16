"""BalancerPersist: the manager's edits survive a restart.

After every edit, the process that made it writes the manager-editable fields of every
balancer and member to a JSON file under the runtime directory (written to a temporary file
and renamed, so a reader never sees half a file). When a configuration generation's
scoreboard is built and BalancerPersist is On, the saved values are applied to the members
and balancers that still exist. Graceful reloads need no file: the new scoreboard takes the
state over from the old one in shared memory.
"""

from __future__ import annotations

__all__ = ["FILE_NAME", "load", "restore", "save"]

import json
import logging
import os
import tempfile
from typing import Any

from portico.state.scoreboard import Scoreboard

log = logging.getLogger("portico.state")

FILE_NAME = "portico-balancers.json"
_VERSION = 1
_MEMBER_FIELDS = ("status", "lbfactor", "lbset", "route", "redirect")
_BALANCER_FIELDS = ("lbmethod", "sticky", "sticky_path", "nofailover", "timeout",
                    "maxattempts", "forcerecovery")


def save(board: Scoreboard, path: str) -> None:
    """Write the editable state of every balancer and member of ``board`` to ``path``."""
    data: dict[str, Any] = {"version": _VERSION, "balancers": {}}
    for name in board.balancer_names():
        record = board.balancer(name)
        entry = {field: getattr(record, field) for field in _BALANCER_FIELDS}
        entry["sticky_sep"] = record.sticky_sep
        entry["members"] = {
            slot.name: {field: getattr(slot, field) for field in _MEMBER_FIELDS}
            for slot in board.members(name) if slot.name}
        data["balancers"][name] = entry
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".portico-balancers.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load(path: str) -> dict[str, Any] | None:
    """The saved state, or None when there is none (or it cannot be read: logged)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.error("BalancerPersist: ignoring %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        log.error("BalancerPersist: ignoring %s: unknown format", path)
        return None
    return data


def restore(board: Scoreboard, data: dict[str, Any]) -> int:
    """Apply saved values to the balancers and members ``board`` has; returns how many
    members were restored. Names the board does not have are skipped."""
    restored = 0
    for name, entry in data.get("balancers", {}).items():
        try:
            record = board.balancer(name)
        except KeyError:
            continue
        for field in _BALANCER_FIELDS:
            if field in entry:
                try:
                    setattr(record, field, entry[field])
                except (TypeError, ValueError) as exc:
                    log.warning("BalancerPersist: %s %s not restored: %s", name, field, exc)
        if entry.get("sticky_sep"):
            record.sticky_sep = entry["sticky_sep"]
        for member, values in entry.get("members", {}).items():
            try:
                slot = board.worker(member, name)
            except KeyError:
                continue
            for field in _MEMBER_FIELDS:
                if field in values:
                    setattr(slot, field, values[field])
            restored += 1
    return restored
