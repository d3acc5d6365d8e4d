"""One sync per directory, however many daemons run.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a dedicated
connection, released when the run ends or the connection dies (a killed daemon frees it).
SQLite (one host): an exclusive ``flock`` on a file in the data directory, freed by the
kernel when the process dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from bridge.services import Services


def lock_key(account_id: str) -> int:
    """A signed 64-bit advisory-lock key for the account's directory."""
    digest = hashlib.sha256(f"ad-sync:{account_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def directory_lock(services: Services, account_id: str) -> Iterator[bool]:
    """Yield True when this process holds the directory's sync lock, False when another
    process does (the caller then skips the run)."""
    if services.db.dialect.name == "postgresql":
        with services.db.connect() as conn:
            key = lock_key(account_id)
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
                       .scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        return
    path = services.settings.data_dir / f"ad-sync-{lock_key(account_id) & 0xFFFFFFFF:08x}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
