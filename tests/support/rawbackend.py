"""A raw TCP backend for tests that need a misbehaving HTTP server: a thread accepts on
127.0.0.1 and hands each connection to ``serve`` (in its own thread), which subclasses write
byte by byte. ``connections`` counts what was accepted."""

from __future__ import annotations

__all__ = ["RawBackend"]

import socket
import threading


class RawBackend:
    def __init__(self) -> None:
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)   # so close() is noticed
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve_closing, args=(conn,), daemon=True).start()

    def _serve_closing(self, conn: socket.socket) -> None:
        conn.settimeout(5)   # bounds every wait of a serving thread
        with conn:
            try:
                self.serve(conn)
            except OSError:
                return

    def serve(self, conn: socket.socket) -> None:
        """Talk HTTP (or not) on one accepted connection; closed when this returns."""
        raise NotImplementedError

    def close(self) -> None:
        self._stop = True
        self.sock.close()
