"""Runs of the AD sync on request (the admin API's SyncDirectory, the console's **Sync now**
and dry-run preview): :class:`BackgroundSyncs` is the :class:`DirectorySyncs` port the
composition root builds from this door and passes to the admin API and the console.

A run never holds the web request for its whole length: it runs in a thread of the serving
process, under the directory's sync lock (:mod:`ad_sync.locks`, taken by the request before
the thread starts, so a second request, the daemon or the CLI is refused or skips while it
runs, on SQLite and PostgreSQL alike). The request waits at most ``wait_seconds`` (an
incremental run takes well under a second, so its report is usually there at once); a full
run at 100k users (about a minute) goes on while the page says it is in progress. A
process that dies mid-run frees the lock with it; the sync is made to be redone (pages
commit with their records, the watermark with the last page), so the next run completes it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid

from ad_sync.locks import directory_lock
from ad_sync.sync import DirectorySync
from bridge.engine.ad_sync_runs import StartedSync
from bridge.errors import Conflict
from bridge.services import Services

log = logging.getLogger(__name__)


class SyncUnderWay(Conflict):
    """A run of the account's directory is under way (one at a time)."""


class BackgroundSyncs:
    """Start runs in background threads of this process, one per directory at a time."""

    def __init__(self, services: Services, *, wait_seconds: float = 2.0) -> None:
        self._services = services
        self._wait = wait_seconds

    def start(self, account_id: str, *, dry_run: bool, full: bool, allow_mass_change: bool,
              requested_by: str | None, mass_change_max: int | None = None) -> StartedSync:
        stack = contextlib.ExitStack()
        if not stack.enter_context(directory_lock(self._services, account_id)):
            stack.close()
            raise SyncUnderWay("A sync of this account's directory is under way; its report "
                               "shows on the Active directory page when it ends.")
        run_id = str(uuid.uuid4())
        sync = DirectorySync(self._services, account_id, dry_run=dry_run,
                             allow_mass_change=allow_mass_change, requested_by=requested_by,
                             run_id=run_id, mass_change_max=mass_change_max)
        done = threading.Event()

        def run() -> None:
            try:
                sync.run(full=full)
            except Exception:  # the thread's last resort: the report says nothing ran
                log.exception("AD sync %s of %s failed", run_id, account_id)
            finally:
                stack.close()
                done.set()

        try:
            threading.Thread(target=run, name=f"ad-sync-{account_id}", daemon=True).start()
        except BaseException:
            stack.close()
            raise
        return StartedSync(run_id, done.wait(self._wait))

    def running(self, account_id: str) -> bool:
        with directory_lock(self._services, account_id) as held:
            return not held
