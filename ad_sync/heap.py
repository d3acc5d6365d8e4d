"""The garbage collector during a full run: the objects that exist before the run (the
application's modules, SQLAlchemy's mappers and compiled statements, the settings: a few
hundred thousand objects) are set aside from full collections while the run works.

Why: a full run of 10,000 users allocates millions of short-lived rows and dicts, and each
of the collector's full (generation 2) collections walks every object of the process. In a
cold import of 10,000 users (cProfile-free timing, ``bench.ad_sync`` child) that was 8 full
collections of ~90 ms, ~0.7 s of a 3.5 s run (docs/performance.md, issue 17, third round).
``gc.freeze`` moves the existing objects to the permanent generation, which no collection
walks; ``gc.unfreeze`` puts them back when the last run ends, so cyclic garbage among them
is collected afterwards as before (nothing is lost; reference counting is unaffected).
Objects the run creates are collected as usual, the youngest generation less often
(:data:`RUN_THRESHOLD0`); the thresholds are restored when the last run ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_active = 0
_saved_threshold: tuple[int, ...] = ()
# The youngest generation's threshold during a run (Python's default is 700 allocations):
# a page allocates ~100,000 container objects that live until the page is written, so
# collecting every 700 of them (and the older generations every 7,000 and 70,000) mostly
# walks rows that are still alive (1,145 collections, ~0.3 s of a cold import of 10,000
# users; 360 and ~0.13 s with this threshold). The older generations' thresholds are kept.
RUN_THRESHOLD0 = 20_000


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Within the block, the objects that existed when the first of the concurrent blocks
    entered are left out of every collection; when the last block exits they are returned
    to the oldest generation. The youngest generation's threshold is raised to
    :data:`RUN_THRESHOLD0` meanwhile and restored at the last exit. Nesting and threads
    are counted: only the outermost entry freezes and only the last exit unfreezes. Only
    the collector's cost changes: no object lives longer than its references."""
    global _active, _saved_threshold
    with _lock:
        if _active == 0:
            gc.freeze()
            _saved_threshold = gc.get_threshold()
            gc.set_threshold(max(RUN_THRESHOLD0, _saved_threshold[0]), *_saved_threshold[1:])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                gc.unfreeze()
                gc.set_threshold(*_saved_threshold)
