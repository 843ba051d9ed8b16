"""server/heap.py: a settle after a reload collects the cycles the old configuration left
in the frozen generation, and freezes what is live."""

from __future__ import annotations

import gc
import weakref

import pytest

from portico.server import heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture(autouse=True)
def restore_gc():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_collects_cycles_frozen_by_the_previous_settle() -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a          # a cycle, like an old config's back references
    gone = weakref.ref(a)
    heap.settle()                    # the running config is frozen, the cycle with it
    del a, b
    gc.collect()
    assert gone() is not None, "a frozen cycle must survive ordinary collections"
    heap.settle()                    # the next reload unfreezes before collecting
    assert gone() is None
    assert gc.get_freeze_count() > 0


def test_tune_raises_only_the_young_threshold() -> None:
    _, middle, old = gc.get_threshold()
    heap.tune()
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, middle, old)
