"""The PidFile directive: this process's pid in a file, for ``portico -k`` and init scripts.

Written atomically (a temporary file renamed over it), so a reader never sees half a pid;
a reload that names another path moves it; removed when the server stops.
"""

from __future__ import annotations

__all__ = ["PidFile"]

import contextlib
import os

from portico.config.model import ServerConfig


class PidFile:
    """The pid file one serving process (the master, or ``-X``) owns."""

    __slots__ = ("path",)

    def __init__(self) -> None:
        self.path: str | None = None

    def write(self, config: ServerConfig) -> None:
        """Write this process's pid where ``config`` says (nothing without PidFile)."""
        if not config.pid_file:
            return
        path = (config.pid_file if os.path.isabs(config.pid_file)
                else os.path.join(config.server_root, config.pid_file))
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, path)
        if self.path and self.path != path:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self.path = path

    def remove(self) -> None:
        if self.path:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.path = None
