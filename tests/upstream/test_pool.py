"""Unit tests of the connection pool's accounting (portico/upstream/pool.py, DESIGN rule 8).

The pool never touches a socket: it counts slots and keeps objects that have ``idle_since``,
``is_reusable()`` and ``close()``. So these tests hand it small fake connections and check
the promises that matter under load and cancellation: slots are never leaked, waiters are
served first in first out, a bound is a bound, idle connections age out, and a connection
that cannot be reused is closed rather than pooled.

Waiting tasks are observed by yielding to the loop a bounded number of times (``settle``),
never by sleeping for a guessed duration.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from portico.upstream.pool import Pool, PoolExhausted

_ids = itertools.count(1)


class FakeConn:
    """A pooled object that records being closed; ``reusable`` models the transport's health."""

    def __init__(self) -> None:
        self.id = next(_ids)
        self.idle_since = 0.0
        self.reusable = True
        self.closed = False

    def is_reusable(self) -> bool:
        return self.reusable and not self.closed

    def close(self) -> None:
        self.closed = True

    def __repr__(self) -> str:
        return f"FakeConn({self.id})"


class Opener:
    """An ``open_new`` callable that makes FakeConns and counts the calls."""

    def __init__(self) -> None:
        self.made: list[FakeConn] = []

    async def __call__(self) -> FakeConn:
        conn = FakeConn()
        self.made.append(conn)
        return conn


async def settle(rounds: int = 5) -> None:
    """Let every ready task run until it blocks again (a bounded number of loop turns)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def waiter(pool: Pool, opener: Opener, wait: float | None = None,
                 order: list[str] | None = None, name: str = ""):
    """A task that acquires from ``pool`` and notes its name in ``order`` when served."""
    async def run():
        conn, reused = await pool.acquire(opener, wait)
        if order is not None:
            order.append(name)
        return conn, reused

    task = asyncio.get_running_loop().create_task(run())
    await settle()
    return task


# -- the basics ------------------------------------------------------------------------------

async def test_first_acquire_opens_a_connection_and_takes_a_slot():
    pool, opener = Pool(max=2), Opener()
    conn, reused = await pool.acquire(opener, wait=1.0)
    assert reused is False
    assert conn is opener.made[0]
    assert pool.in_use == 1
    assert pool.opened_total == 1
    assert pool.idle_count == 0


async def test_released_connection_is_reused_and_its_slot_accounted():
    pool, opener = Pool(max=2), Opener()
    conn, _ = await pool.acquire(opener, wait=1.0)
    pool.release(conn, reusable=True)
    assert pool.in_use == 0
    assert pool.idle_count == 1
    again, reused = await pool.acquire(opener, wait=1.0)
    assert again is conn
    assert reused is True
    assert pool.in_use == 1
    assert pool.idle_count == 0
    assert len(opener.made) == 1
    assert not conn.closed


async def test_most_recently_used_idle_connection_is_taken_first():
    pool, opener = Pool(), Opener()
    a, _ = await pool.acquire(opener, wait=1.0)
    b, _ = await pool.acquire(opener, wait=1.0)
    pool.release(a, reusable=True)
    pool.release(b, reusable=True)
    assert pool.take_idle() is b
    assert pool.take_idle() is a
    assert pool.take_idle() is None
    assert pool.in_use == 2


async def test_max_zero_means_no_bound_of_our_own():
    pool, opener = Pool(max=0), Opener()
    conns = [await pool.acquire(opener, wait=0.01) for _ in range(50)]
    assert pool.in_use == 50
    assert len({id(c) for c, _ in conns}) == 50


async def test_try_reserve_respects_max():
    pool = Pool(max=2)
    assert pool.try_reserve()
    assert pool.try_reserve()
    assert not pool.try_reserve()
    assert pool.in_use == 2
    pool.release(None, reusable=False)
    assert pool.in_use == 1
    assert pool.try_reserve()


# -- the bound and the queue ------------------------------------------------------------------

async def test_max_bounds_slots_and_a_waiter_gets_the_released_connection():
    pool, opener = Pool(max=2), Opener()
    a, _ = await pool.acquire(opener, wait=1.0)
    await pool.acquire(opener, wait=1.0)
    task = await waiter(pool, opener, wait=5.0)
    assert not task.done()
    assert pool.in_use == 2
    assert len(opener.made) == 2  # the waiter did not open a third connection
    pool.release(a, reusable=True)
    conn, reused = await asyncio.wait_for(task, 1.0)
    assert conn is a
    assert reused is True
    assert pool.in_use == 2
    assert pool.idle_count == 0
    assert len(opener.made) == 2


async def test_waiters_are_served_first_in_first_out():
    pool, opener = Pool(max=1), Opener()
    held, _ = await pool.acquire(opener, wait=1.0)
    order: list[str] = []
    tasks = [await waiter(pool, opener, 5.0, order, name) for name in ("w1", "w2", "w3")]
    assert order == []
    current = held
    for expected, task in zip(("w1", "w2", "w3"), tasks, strict=True):
        pool.release(current, reusable=True)
        current, reused = await asyncio.wait_for(task, 1.0)
        assert reused is True
        assert order[-1] == expected
        assert pool.in_use == 1
    assert order == ["w1", "w2", "w3"]
    assert current is held  # one connection served everybody in turn
    pool.release(current, reusable=True)
    assert pool.in_use == 0
    assert pool.idle_count == 1


async def test_unreusable_release_hands_the_slot_to_a_waiter_which_opens_anew():
    pool, opener = Pool(max=1), Opener()
    held, _ = await pool.acquire(opener, wait=1.0)
    task = await waiter(pool, opener, wait=5.0)
    pool.release(held, reusable=False)
    assert held.closed
    conn, reused = await asyncio.wait_for(task, 1.0)
    assert reused is False
    assert conn is not held
    assert conn is opener.made[-1]
    assert pool.in_use == 1
    assert pool.opened_total == 2


async def test_acquire_timeout_raises_pool_exhausted_and_leaves_no_trace():
    pool, opener = Pool(max=1), Opener()
    held, _ = await pool.acquire(opener, wait=1.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(PoolExhausted):
        await pool.acquire(opener, wait=0.05)
    assert 0.04 <= loop.time() - start < 2.0
    assert pool.in_use == 1
    # The timed-out waiter is gone: the released connection goes idle, not to a ghost.
    pool.release(held, reusable=True)
    assert pool.in_use == 0
    assert pool.idle_count == 1
    conn, reused = await pool.acquire(opener, wait=0.05)
    assert (conn, reused) == (held, True)


async def test_a_waiter_without_a_timeout_waits_until_served():
    pool, opener = Pool(max=1), Opener()
    held, _ = await pool.acquire(opener, wait=None)
    task = await waiter(pool, opener, wait=None)
    await settle(20)
    assert not task.done()
    pool.release(held, reusable=True)
    assert (await asyncio.wait_for(task, 1.0)) == (held, True)


# -- cancellation ----------------------------------------------------------------------------

async def test_cancelled_waiter_does_not_leak_a_slot():
    pool, opener = Pool(max=1), Opener()
    held, _ = await pool.acquire(opener, wait=1.0)
    task = await waiter(pool, opener, wait=5.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.in_use == 1
    pool.release(held, reusable=True)
    assert pool.in_use == 0
    assert pool.idle_count == 1
    assert not held.closed
    # The slot is really free: a new acquire succeeds at once.
    conn, reused = await pool.acquire(opener, wait=0.01)
    assert (conn, reused) == (held, True)


async def test_connection_handed_to_a_cancelled_waiter_goes_to_the_next_one():
    pool, opener = Pool(max=1), Opener()
    held, _ = await pool.acquire(opener, wait=1.0)
    first = await waiter(pool, opener, wait=5.0)
    second = await waiter(pool, opener, wait=5.0)
    # release() resolves the first waiter's future; the task is cancelled before it runs.
    pool.release(held, reusable=True)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    conn, reused = await asyncio.wait_for(second, 1.0)
    assert (conn, reused) == (held, True)
    assert pool.in_use == 1
    assert not held.closed
    pool.release(conn, reusable=True)
    assert pool.in_use == 0


async def test_open_permission_handed_to_a_cancelled_waiter_goes_to_the_next_one():
    pool, opener = Pool(max=1), Opener()
    held, _ = await pool.acquire(opener, wait=1.0)
    first = await waiter(pool, opener, wait=5.0)
    second = await waiter(pool, opener, wait=5.0)
    pool.release(held, reusable=False)   # the slot, without a connection
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    conn, reused = await asyncio.wait_for(second, 1.0)
    assert reused is False
    assert conn is opener.made[-1]
    assert pool.in_use == 1
    assert pool.opened_total == 2


async def test_cancelled_waiter_with_nobody_behind_returns_the_connection_to_idle():
    pool, opener = Pool(max=1), Opener()
    held, _ = await pool.acquire(opener, wait=1.0)
    task = await waiter(pool, opener, wait=5.0)
    pool.release(held, reusable=True)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.in_use == 0
    assert pool.idle_count == 1
    assert not held.closed


async def test_many_cancellations_keep_the_count_exact():
    pool, opener = Pool(max=3), Opener()
    held = [(await pool.acquire(opener, wait=1.0))[0] for _ in range(3)]
    tasks = [await waiter(pool, opener, wait=5.0) for _ in range(10)]
    for task in tasks[::2]:
        task.cancel()   # requested only: their futures may still be handed a connection
    for conn in held:
        pool.release(conn, reusable=True)
    await settle(20)
    cancelled = [t for t in tasks if t.cancelled()]
    served = [t.result() for t in tasks if t.done() and not t.cancelled()]
    pending = [t for t in tasks if not t.done()]
    assert len(cancelled) == 5
    assert len(served) == 3
    assert len(pending) == 2
    assert pool.in_use == 3   # exactly the served ones hold a slot
    for conn, _ in served:
        pool.release(conn, reusable=True)
    for task in pending:
        conn, reused = await asyncio.wait_for(task, 1.0)
        assert reused is True
        pool.release(conn, reusable=True)
    assert pool.in_use == 0
    assert pool.idle_count == 3
    assert len(opener.made) == 3


# -- what is kept idle ------------------------------------------------------------------------

async def test_ttl_expiry_closes_an_idle_connection_instead_of_reusing_it():
    pool, opener = Pool(max=2, ttl=5.0), Opener()
    old, _ = await pool.acquire(opener, wait=1.0)
    pool.release(old, reusable=True)
    old.idle_since -= 6.0   # it has been idle longer than ttl
    conn, reused = await pool.acquire(opener, wait=1.0)
    assert old.closed
    assert reused is False
    assert conn is not old
    assert pool.in_use == 1
    assert pool.idle_count == 0


async def test_young_idle_connection_survives_ttl():
    pool, opener = Pool(ttl=5.0), Opener()
    conn, _ = await pool.acquire(opener, wait=1.0)
    pool.release(conn, reusable=True)
    conn.idle_since -= 4.0
    assert pool.take_idle() is conn
    assert not conn.closed


async def test_expired_connections_are_skipped_for_a_younger_one():
    pool, opener = Pool(ttl=5.0), Opener()
    young, _ = await pool.acquire(opener, wait=1.0)
    old, _ = await pool.acquire(opener, wait=1.0)
    pool.release(young, reusable=True)
    pool.release(old, reusable=True)   # most recent, so looked at first
    old.idle_since -= 10.0
    assert pool.take_idle() is young
    assert old.closed
    assert pool.idle_count == 0
    assert pool.in_use == 1


async def test_release_not_reusable_closes_instead_of_pooling():
    pool, opener = Pool(), Opener()
    conn, _ = await pool.acquire(opener, wait=1.0)
    pool.release(conn, reusable=False)
    assert conn.closed
    assert pool.idle_count == 0
    assert pool.in_use == 0


async def test_connection_that_says_it_is_unusable_is_closed_on_release():
    pool, opener = Pool(), Opener()
    conn, _ = await pool.acquire(opener, wait=1.0)
    conn.reusable = False   # e.g. the transport is closing
    pool.release(conn, reusable=True)
    assert conn.closed
    assert pool.idle_count == 0


async def test_idle_connection_that_broke_while_idle_is_not_handed_out():
    pool, opener = Pool(), Opener()
    conn, _ = await pool.acquire(opener, wait=1.0)
    pool.release(conn, reusable=True)
    conn.reusable = False
    assert pool.take_idle() is None
    assert conn.closed
    assert pool.in_use == 0


async def test_enablereuse_off_closes_every_released_connection():
    pool, opener = Pool(reuse=False), Opener()
    conn, _ = await pool.acquire(opener, wait=1.0)
    pool.release(conn, reusable=True)
    assert conn.closed
    assert pool.idle_count == 0
    second, reused = await pool.acquire(opener, wait=1.0)
    assert reused is False
    assert second is not conn


async def test_connections_above_smax_with_a_ttl_are_closed_on_release():
    pool, opener = Pool(max=4, smax=1, ttl=60.0), Opener()
    a, _ = await pool.acquire(opener, wait=1.0)
    b, _ = await pool.acquire(opener, wait=1.0)
    pool.release(a, reusable=True)
    pool.release(b, reusable=True)
    assert pool.idle_count == 1
    assert not a.closed
    assert b.closed


async def test_smax_without_ttl_keeps_everything():
    pool, opener = Pool(max=4, smax=1), Opener()
    a, _ = await pool.acquire(opener, wait=1.0)
    b, _ = await pool.acquire(opener, wait=1.0)
    pool.release(a, reusable=True)
    pool.release(b, reusable=True)
    assert pool.idle_count == 2
    assert not (a.closed or b.closed)


async def test_forget_drops_an_idle_connection_and_close_idle_closes_the_rest():
    pool, opener = Pool(), Opener()
    conns = [(await pool.acquire(opener, wait=1.0))[0] for _ in range(3)]
    for conn in conns:
        pool.release(conn, reusable=True)
    pool.forget(conns[0])
    pool.forget(FakeConn())  # not in the pool: no error, no change
    assert pool.idle_count == 2
    pool.close_idle()
    assert pool.idle_count == 0
    assert conns[1].closed and conns[2].closed
    assert not conns[0].closed   # forgotten, so not the pool's to close


# -- open_new failures -----------------------------------------------------------------------

async def test_open_new_failure_releases_the_slot():
    pool = Pool(max=1)

    async def failing():
        raise OSError("connection refused")

    with pytest.raises(OSError):
        await pool.acquire(failing, wait=1.0)
    assert pool.in_use == 0
    assert pool.opened_total == 0
    opener = Opener()
    conn, reused = await pool.acquire(opener, wait=0.01)  # the slot is really free
    assert (conn, reused) == (opener.made[0], False)
    assert pool.in_use == 1


async def test_open_new_failure_passes_the_slot_to_a_waiter():
    pool = Pool(max=1)
    gate = asyncio.Event()

    async def failing():
        await gate.wait()
        raise OSError("connection refused")

    opener = Opener()
    doomed = asyncio.get_running_loop().create_task(pool.acquire(failing, 1.0))
    await settle()
    assert pool.in_use == 1   # the slot is held while connecting
    task = await waiter(pool, opener, wait=5.0)
    assert not task.done()
    gate.set()
    with pytest.raises(OSError):
        await doomed
    conn, reused = await asyncio.wait_for(task, 1.0)
    assert reused is False
    assert conn is opener.made[0]
    assert pool.in_use == 1


async def test_cancelled_while_opening_releases_the_slot():
    pool = Pool(max=1)
    started = asyncio.Event()

    async def slow_open():
        started.set()
        await asyncio.Event().wait()   # never completes by itself
        raise AssertionError("unreachable")

    task = asyncio.get_running_loop().create_task(pool.acquire(slow_open, 1.0))
    await asyncio.wait_for(started.wait(), 1.0)
    assert pool.in_use == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.in_use == 0
    assert pool.try_reserve()
