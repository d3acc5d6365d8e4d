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
Objects the run creates are collected as usual. (A higher threshold for the youngest
generation, 20,000 instead of 700, was tried as well: the collector's time halved again
at 10k, but a warm run at 100k peaked 10 MB higher — garbage cycles wait longer in every
generation — so the thresholds are left alone.)
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_active = 0


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Within the block, the objects that existed when the first of the concurrent blocks
    entered are left out of every collection; when the last block exits they are returned
    to the oldest generation. Nesting and threads are counted: only the outermost entry
    freezes and only the last exit unfreezes. Only the collector's cost changes: no object
    lives longer than its references."""
    global _active
    with _lock:
        if _active == 0:
            gc.freeze()
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                gc.unfreeze()
