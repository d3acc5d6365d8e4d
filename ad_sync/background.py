"""Runs of the AD sync on request (the admin API's SyncDirectory, the console's **Sync now**
and dry-run preview): :class:`BackgroundSyncs` is the :class:`DirectorySyncs` port the
composition root builds from this door and passes to the admin API and the console.

A run never holds the web request for its whole length: it runs in a thread of the serving
process, under the directory's sync lock (:mod:`ad_sync.locks`, taken by the request before
the thread starts, so a second request, the daemon or the CLI is refused or skips while it
runs, on SQLite and PostgreSQL alike), and at most ``max_runs`` runs at a time in the
process over all accounts (each holds a thread, and a full run a reader process). The
request waits at most ``wait_seconds`` (an incremental run takes well under a second, so
its report is usually there at once); a full run at 100k users (about a minute) goes on
while the page says it is in progress. A process that dies mid-run frees the lock with it;
the sync is made to be redone (pages commit with their records, the watermark with the last
page), so the next run completes it. A serving process that is asked to stop calls
:meth:`BackgroundSyncs.stop`: each run under way ends after the page it is applying, its
report saying ``interrupted`` (the next run completes it), and no new run starts.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable

from ad_sync.locks import directory_lock
from ad_sync.sync import DirectorySync
from bridge.engine.ad_sync_runs import StartedSync
from bridge.errors import Conflict, RateLimited, UpstreamUnavailable
from bridge.services import Services

log = logging.getLogger(__name__)
STOPPING = "This server is stopping; ask for the sync again in a moment."


class SyncUnderWay(Conflict):
    """A run of the account's directory is under way (one at a time)."""


class TooManySyncs(RateLimited):
    """This process already runs as many syncs on request as it allows (one request, or
    an administrator of many accounts, must not fill the server with runs)."""


class ServerStopping(UpstreamUnavailable):
    """This serving process is stopping: it starts no run (the request can go to another
    process, or to this one once it is back)."""


class BackgroundSyncs:
    """Start runs in background threads of this process, one per directory at a time and
    at most ``max_runs`` at a time in all."""

    def __init__(self, services: Services, *, wait_seconds: float = 2.0,
                 max_runs: int = 4) -> None:
        self._services = services
        self._wait = wait_seconds
        self._max_runs = max_runs
        self._slots = threading.BoundedSemaphore(max_runs)
        self._threads: set[threading.Thread] = set()
        self._threads_lock = threading.Lock()
        # Notified when a run ends and when a start() is done: stop() waits on it.
        self._changed = threading.Condition(self._threads_lock)
        # start() calls past their stopping check whose run is not yet registered.
        self._starting = 0
        # Set once, by stop(): every run started here watches it between pages.
        self._stopping = threading.Event()

    def start(self, account_id: str, *, dry_run: bool, full: bool, allow_mass_change: bool,
              requested_by: str | None, mass_change_max: int | None = None,
              accepted: Callable[[str], None] | None = None) -> StartedSync:
        with self._threads_lock:  # with stop()'s: a start refuses, or stop() waits for it
            if self._stopping.is_set():
                raise ServerStopping(STOPPING)
            self._starting += 1
        stack = contextlib.ExitStack()  # what the run holds: its slot, the directory's lock
        try:
            if not self._slots.acquire(blocking=False):
                raise TooManySyncs(f"This server already runs {self._max_runs} syncs at a "
                                   "time; try again when one ends.", retry_after=60)
            stack.callback(self._slots.release)
            if not stack.enter_context(directory_lock(self._services, account_id)):
                raise SyncUnderWay("A sync of this account's directory is under way; its "
                                   "report shows on the Active directory page when it ends.")
            run_id = str(uuid.uuid4())
            sync = DirectorySync(self._services, account_id, dry_run=dry_run,
                                 allow_mass_change=allow_mass_change,
                                 requested_by=requested_by, run_id=run_id,
                                 mass_change_max=mass_change_max, stop=self._stopping)
            if accepted is not None:
                accepted(run_id)  # e.g. the request's audit event, before any change
            done = threading.Event()
            thread = threading.Thread(target=self._run, args=(sync, full, stack, done),
                                      name=f"ad-sync-{account_id}", daemon=True)
            # Accepted (its event is in the trail): it runs even if stop() came meanwhile,
            # and ends at its first page ("interrupted"); stop() waits for it.
            with self._threads_lock:
                self._threads.add(thread)
                thread.start()
        except BaseException:
            stack.close()
            raise
        finally:
            with self._changed:
                self._starting -= 1
                self._changed.notify_all()
        return StartedSync(run_id, done.wait(self._wait))

    def _run(self, sync: DirectorySync, full: bool, stack: contextlib.ExitStack,
             done: threading.Event) -> None:
        try:
            sync.run(full=full)
        except Exception:  # the thread's last resort (the run reports its own errors)
            log.exception("AD sync %s of %s failed", sync.run_id, sync.account_id)
        finally:
            stack.close()
            with self._changed:
                self._threads.discard(threading.current_thread())
                self._changed.notify_all()
            done.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the runs under way have ended (each at most ``timeout`` seconds)."""
        with self._threads_lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)

    def stop(self, timeout: float) -> bool:
        """Stop: no start is accepted from now on, and each run under way (also one whose
        start was accepted just before) ends after the page it is applying (its report:
        ``interrupted``). Waits up to ``timeout`` seconds in all;
        True when every run has ended (a run blocked on its directory or its database
        longer than that is left to die with the process: the sync is made to be redone).
        Called again, it waits again."""
        with self._changed:
            self._stopping.set()
            # Runs under way, and those a start() accepted before the stop came.
            ended = self._changed.wait_for(
                lambda: not self._starting and not self._threads, timeout)
            left = sorted(t.name for t in self._threads)
        if not ended:
            log.warning("stopping: %d AD sync run(s) still under way after %.0f s: %s",
                        len(left), timeout, ", ".join(left))
        return ended

    def running(self, account_id: str) -> bool:
        with directory_lock(self._services, account_id) as held:
            return not held
