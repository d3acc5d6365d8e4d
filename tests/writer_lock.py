"""Whether the SQLite writers' lock (``<database>-writer.lock``, bridge.store.db) is held."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager


def held_by_someone(path: str) -> bool:
    """True while a writer holds the lock file ``path``: a second open file description
    of the same file conflicts with the holder's, in this process too."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextmanager
def holding(path: str) -> Iterator[None]:
    """Hold the writers' lock ``path`` for the block, as another writer would: every
    write of the store waits until the block ends."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
