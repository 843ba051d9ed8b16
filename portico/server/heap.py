"""How a serving process keeps Python's cycle collector off the request path.

Why. The collector runs after every few hundred net allocations of container objects and
then walks every object young enough to be looked at. Under load, the requests in flight
are exactly such objects: at 256 concurrent requests the collector cost about 5% of the
instructions per request (bench/instructions.py --conns 256), against under 1% at 8.

What. Objects that exist once the configuration is loaded (the model, compiled rules,
pipelines, pools) live as long as it does, so they are frozen out of collections; young
collections come after more allocations. Per-request objects are freed by reference
counting anyway; the collector only has the rare cycle to find, a little later.

When. ``settle()`` after a (re)load and after old pipelines are retired: unfreeze, collect
what the old configuration left behind, freeze what is live now.
"""

from __future__ import annotations

__all__ = ["settle", "tune"]

import gc

YOUNG_THRESHOLD = 5000   # CPython's default is 700


def tune() -> None:
    """Set the serving process's collection thresholds (once, at start)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def settle() -> None:
    """Collect what is garbage now and freeze what is left (see the module docstring)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
