"""Zero-copy relay of the rest of a response body from the backend's socket to the client's.

Why. Relayed through Python, every byte of a body is copied three times (kernel to the
loop's buffer, buffer to a bytes object, bytes to the kernel) and every read costs objects
and calls. splice(2) moves the pages from one socket to the other through a pipe inside the
kernel, so a large response costs two system calls instead (HAProxy's splice-response works
the same way). It is what lets one process keep up with nginx on large bodies.

When. ``HttpExchange`` starts a relay once the response head has been read and the rest of
the body goes to the client byte for byte: Content-Length framing, plain sockets at both ends
(no TLS), nothing waiting to be written to the client, and at least ``MIN_SPLICE`` bytes
left. The backend's transport stops reading for the duration, so the loop never reads any of
those bytes itself, and nothing else writes to the client until the relay is over.

The head rides along. The client's head (and the body bytes read with the backend's head) is
written into the pipe first, so it leaves in the same send as the body behind it: one trip
through the TCP stack and one wake-up of the client per response instead of two. When the
body is not there yet, the head goes out on its own before the relay waits.

How. Usually the body is already in the backend's socket and the client's send buffer has
room: the relay is done in the call that starts it. Otherwise it duplicates both descriptors
and waits for readiness of the one that blocked through its duplicate (uvloop refuses a
watcher on a descriptor that a transport owns, and a transport may close its own at any
time). The caller's timers bound every wait: ``waiting_for_client``
tells them which side the relay is waiting for.

The ACK. Before waiting for more of the body, the relay asks the kernel to acknowledge what
it has read at once (TCP_QUICKACK). Reads by splice do not hurry the ACK the way a read into
memory does, so on a request/response connection the kernel holds it back (delayed ACK,
about 40 ms) while a backend that filled its send buffer waits for exactly that ACK: one
response in a hundred took 40 ms longer, at four connections already.
"""

from __future__ import annotations

__all__ = ["MIN_SPLICE", "SPLICE_AVAILABLE", "SpliceRelay", "splice_fd"]

import asyncio
import fcntl
import os
import socket
from collections.abc import Callable

SPLICE_AVAILABLE = hasattr(os, "splice") and hasattr(fcntl, "F_SETPIPE_SZ")
MIN_SPLICE = 8192   # below this a read and a write cost no more than two splices
_FLAGS = (os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK) if SPLICE_AVAILABLE else 0
_PIPE_SIZE = 1 << 18   # a 256 KiB body moves in one round; the kernel default is 64 KiB
_MAX_IDLE_PIPES = 32
_idle_pipes: list[tuple[int, int, int]] = []


def splice_fd(transport: asyncio.BaseTransport) -> int:
    """The descriptor of a transport's socket when a body can be spliced to or from it:
    a plain TCP or Unix stream socket, no TLS layer in between. -1 otherwise."""
    if not SPLICE_AVAILABLE or transport.get_extra_info("ssl_object") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    if sock is None or sock.type != socket.SOCK_STREAM:
        return -1
    return sock.fileno()


def _take_pipe() -> tuple[int, int, int]:
    """An empty pipe: (read end, write end, capacity in bytes)."""
    if _idle_pipes:
        return _idle_pipes.pop()
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        size = fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except OSError:
        # Over the per-user pipe quota: the default size still works, in more rounds.
        size = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
    return r, w, size


def _give_back(pipe: tuple[int, int, int], empty: bool) -> None:
    """An empty pipe is kept for the next relay; one with bytes in it is closed (the
    connection it served is being cut, so those bytes go nowhere)."""
    if empty and len(_idle_pipes) < _MAX_IDLE_PIPES:
        _idle_pipes.append(pipe)
    else:
        os.close(pipe[0])
        os.close(pipe[1])


class SpliceRelay:
    """Moves exactly ``length`` bytes from ``src_fd`` to ``dst_fd`` (see the module docstring).

    Both sockets must be non-blocking, as a transport's are: SPLICE_F_NONBLOCK covers only
    the pipe's side of each call.

    Exactly one of ``on_done(moved)`` or ``on_fail(side, message, moved)`` is called, unless
    ``cancel()`` comes first; ``side`` is ``"backend"`` (the source closed early or failed) or
    ``"client"`` (the destination failed). ``on_wait_over`` is called each time a wait for
    readiness ends, so the caller can count it as activity.
    """

    __slots__ = ("_dst", "_in_pipe", "_loop", "_on_done", "_on_fail", "_on_wait_over",
                 "_owns_fds", "_pipe", "_prefix_left", "_src", "_src_socket", "_to_read",
                 "_watching", "moved")

    def __init__(self, loop: asyncio.AbstractEventLoop, src_fd: int, dst_fd: int, length: int,
                 on_done: Callable[[int], None], on_fail: Callable[[str, str, int], None],
                 on_wait_over: Callable[[], None]) -> None:
        self._loop = loop
        self._src = src_fd
        self._dst = dst_fd
        self._to_read = length
        self._in_pipe = 0   # bytes in the pipe, prefix included
        self._prefix_left = 0   # bytes of the prefix still in the pipe
        self._on_done = on_done
        self._on_fail = on_fail
        self._on_wait_over = on_wait_over
        self._pipe: tuple[int, int, int] | None = None
        self._watching: tuple[int, bool] | None = None   # (fd, for writing)
        self._owns_fds = False   # _src and _dst are our duplicates (after the first wait)
        self._src_socket: socket.socket | None = None   # owns the _src duplicate, for ACKs
        self.moved = 0   # bytes delivered to the client

    @property
    def waiting_for_client(self) -> bool:
        """True while the client's socket has no room (the client is slow to read)."""
        return self._watching is not None and self._watching[1]

    def start(self, prefix: bytes = b"") -> bool:
        """Begin; ``prefix`` (the response head and the body bytes read with it) goes to the
        client first, in the same send as the body that follows when that is already there.
        False, having done nothing, when the pipe cannot take the prefix whole: the caller
        then writes it itself."""
        pipe = _take_pipe()
        if prefix:
            if len(prefix) > pipe[2]:
                _give_back(pipe, empty=True)
                return False
            # An empty pipe takes a write up to its capacity whole, so n == len(prefix).
            self._in_pipe = self._prefix_left = os.write(pipe[1], prefix)
        self._pipe = pipe
        self._pump()
        return True

    def cancel(self) -> None:
        """Stop now; the caller cuts the connections involved."""
        self._finish(empty=self._in_pipe == 0)

    # -- the pump ---------------------------------------------------------------------------
    def _pump(self) -> None:
        pipe = self._pipe
        if pipe is None:
            return   # cancelled while a readiness callback was queued
        r, w, _ = pipe
        dry = False   # the backend's socket had nothing more this time
        while True:
            if self._to_read and not dry and self._in_pipe <= self._prefix_left:
                # No body in the pipe: bring some in first, so that one send to the client
                # carries it together with what is left of the prefix.
                try:
                    n = os.splice(self._src, w, self._to_read, flags=_FLAGS)
                except BlockingIOError:
                    dry = True   # what the pipe holds (the prefix) goes out before the wait
                except OSError as exc:
                    self._fail("backend", f"reading the body failed: {exc.strerror}")
                    return
                else:
                    if n == 0:
                        self._fail("backend", "backend closed the connection before the "
                                   f"body was complete ({self._to_read} bytes missing)")
                        return
                    self._to_read -= n
                    self._in_pipe += n
            if self._in_pipe:
                try:
                    n = os.splice(r, self._dst, self._in_pipe, flags=_FLAGS)
                except BlockingIOError:
                    self._wait(writing=True)
                    return
                except OSError as exc:
                    self._fail("client", f"writing to the client failed: {exc.strerror}")
                    return
                self._in_pipe -= n
                if self._prefix_left:   # the prefix leaves the pipe first
                    head = n if n < self._prefix_left else self._prefix_left
                    self._prefix_left -= head
                    n -= head
                self.moved += n
                continue
            if not self._to_read:
                break
            self._wait(writing=False)
            return
        moved = self.moved
        self._finish(empty=True)
        self._on_done(moved)

    def _woken(self) -> None:
        if self._pipe is not None:   # not cancelled while this callback was queued
            self._on_wait_over()
            self._pump()

    def _wait(self, writing: bool) -> None:
        if not self._owns_fds:
            # From the first wait on, both ends are our own duplicates: a transport closes
            # its descriptor as soon as its peer resets, before anyone tells us, and the
            # number can go to a new connection at once; a duplicate keeps naming this one.
            self._src = os.dup(self._src)
            self._dst = os.dup(self._dst)
            self._owns_fds = True
        if not writing:
            self._ack_now()
        fd = self._dst if writing else self._src
        if self._watching == (fd, writing):
            return
        self._unwatch()
        if writing:
            self._loop.add_writer(fd, self._woken)
        else:
            self._loop.add_reader(fd, self._woken)
        self._watching = (fd, writing)

    def _ack_now(self) -> None:
        """Acknowledge what was read without the kernel's delay (see "The ACK" above)."""
        sock = self._src_socket
        if sock is None:
            sock = self._src_socket = socket.socket(fileno=self._src)  # our duplicate
        if sock.family == socket.AF_UNIX:
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except OSError:
            pass   # the connection is going; the read that follows will say so

    def _unwatch(self) -> None:
        watching = self._watching
        if watching is not None:
            self._watching = None
            if watching[1]:
                self._loop.remove_writer(watching[0])
            else:
                self._loop.remove_reader(watching[0])

    def _fail(self, side: str, message: str) -> None:
        moved = self.moved
        self._finish(empty=False)
        self._on_fail(side, message, moved)

    def _finish(self, empty: bool) -> None:
        self._unwatch()
        if self._owns_fds:
            self._owns_fds = False
            if self._src_socket is not None:
                self._src_socket.close()   # closes the _src duplicate
                self._src_socket = None
            else:
                os.close(self._src)
            os.close(self._dst)
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            _give_back(pipe, empty)
