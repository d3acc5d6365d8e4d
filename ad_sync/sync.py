"""The sync worker: keeps an account's users equal to its Active Directory.

One run (:meth:`DirectorySync.run`) is *full* or *incremental*:

* **full** — reads every user under ``BaseDn`` (paged, 1000 per page) with its direct groups
  (``memberOf``); the groups nested in each mapped group come from the DC's in-chain rule,
  so a user's mapped groups are known without a search per user. Applies what changed page
  by page, then suspends the users it did not see (deleted, moved out of scope, filtered
  out).
* **incremental** — reads what changed since the watermark (``uSNChanged`` of the DC whose
  ``invocationID`` is stored): users, tombstones (Show Deleted control) and groups (a
  membership change bumps the group's USN, not the user's: the member values added and
  removed since the stored DirSync cookie, see :mod:`ad_sync.groups`). A changed
  ``invocationID``, a changed set of mapped groups, or an interrupted full run make the run
  a full one.

Safety rules (``shared/notes/sync-and-signin-lessons.md``):

* anything that goes wrong while reading (bind, search error, an empty result where users
  existed) stops the run as *unknown*: no suspension, no deletion, watermark unchanged;
* a run that would suspend more users than ``ad_mass_change_max_users`` or
  ``ad_mass_change_max_percent`` % of them (the percentage counts from
  :data:`ad_sync.decisions.PERCENT_RULE_MIN` users on) stops before changing anything, audited as
  ``AdSyncMassChangeStopped``, unless ``allow_mass_change``;
* deleted in AD → suspended (``mark_directory_user_deleted``); the profile is purged after
  ``ad_deletion_grace_days``; a user that comes back with the same objectGUID is restored,
  and one recreated in AD (a new objectGUID with the primary address of a profile deleted
  in the directory and still in its grace period) is re-linked to that profile; suspensions
  are applied before the run's other changes so a delete-and-recreate in one window works;
* addresses another user owns are skipped and reported, never merged.

Each page's engine changes (one bulk engine operation, ``engine.apply_directory_users``) and
the sync records commit in one transaction (``engine.single_transaction``); a full run into
an empty bridge (the cold import) commits several pages together, up to
``transaction_users`` users per transaction (fewer, larger commits: on SQLite each commit
costs fsyncs and WAL checkpoints). The watermark commits with the run's last page, so it
never runs ahead of the data: a run killed half-way is simply redone (users keyed by
objectGUID, unchanged ones skipped), nothing is lost or doubled.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from ldap3 import Connection
from sqlalchemy.orm import Session

from ad_sync import client, decisions, groups, heap
from ad_sync.client import DirectoryError
from ad_sync.incremental import IncrementalRun
from ad_sync.reader import Search, UserReader
from ad_sync.records import REPORT_LIST_MAX, fingerprint
from ad_sync.report import DISABLED, GONE, SyncReport, note_suspensions
from ad_sync.run_steps import (
    ACTOR,
    RETRY_PREFIX,
    TRANSACTION_USERS,
    TRANSACTION_WAIT_SECONDS,
    SyncInterrupted,
)
from ad_sync.vendor import ms_ad
from bridge.engine.ad_directories import DirectoryConnection

__all__ = ["ACTOR", "RETRY_PREFIX", "TRANSACTION_USERS", "TRANSACTION_WAIT_SECONDS",
           "DirectorySync", "SyncInterrupted", "SyncReport"]

log = logging.getLogger(__name__)


class DirectorySync(IncrementalRun):
    """Runs for one account. Not thread-safe; one run at a time per directory (the daemon
    takes a lock; the CLI's ``--once`` relies on the operator).

    ``requested_by``: the administrator who asked for the run (Sync now), for its stored
    report; ``run_id``: the run's id when the caller chose it (else a new one);
    ``mass_change_max``: with ``allow_mass_change``, the most users the run may suspend (the
    count an administrator confirmed; more stops it again).

    ``connection``: a service-account connection already bound to the account's directory
    (the daemon binds once per registered directory and passes it to the run of every
    account connected to it); the run uses it and leaves it open. Without it the run binds
    on its own. A full run's reader helper process always binds for itself.

    ``transaction_users``: a cold import (a full run into an empty bridge) commits its pages
    in transactions of up to this many users (at least one page each), a transaction waiting
    at most ``transaction_wait`` seconds in all for the directory's next pages; every other
    run commits page by page. ``on_page(pages)`` is called after each page's changes are
    written (committed, unless in such a group: then before the group commits).

    The class adds the entry point and the full run to the incremental run
    (:class:`ad_sync.incremental.IncrementalRun`) and the steps every run shares
    (:class:`ad_sync.run_steps.RunSteps`, which holds the constructor)."""

    # --- entry point ----------------------------------------------------------------------

    def run(self, *, full: bool = False) -> SyncReport:
        """One run; never raises for directory trouble (the report says ``unknown``) nor,
        once its report is stored as started, for an unexpected error (``failed``, logged).
        Raises NotFound when the account has no directory connected. The run's report is
        stored as the account's last one of its kind (run or dry run) when it starts
        (``running``) and when it ends."""
        started = time.monotonic()
        cfg = self.engine.ad_directories.connection(self.account_id)
        state = self.records.state(self.account_id)
        mappings = self._mapped_names()
        map_fp = fingerprint(sorted(n.lower() for n in mappings))
        report = SyncReport(self.account_id, "full" if full else "incremental", self.dry_run,
                            run_id=self.run_id)
        self.actor = dataclasses.replace(ACTOR, request_id=report.run_id)
        self.records.start_report(self.account_id, run_id=report.run_id, mode=report.mode,
                                  dry_run=self.dry_run,
                                  allow_mass_change=self.allow_mass_change,
                                  requested_by=self.requested_by, now=self.engine.now())
        conn: Connection | None = None
        reader: UserReader | None = None
        try:
            reason = None if full else decisions.needs_full(state, map_fp)
            if full or reason:
                # Known to be full before the bind: the reader starts meanwhile.
                reader = self._reader(cfg).start()
            conn = self.shared_connection or client.open_connection(
                cfg, allow_insecure=self.settings.allow_insecure_ldap)
            dse = ms_ad.read_root_dse(conn)
            if not full:
                reason = reason or decisions.dc_changed(state, dse)
                if reason:
                    report.mode = "full"
                    report.warnings.append(f"full sync: {reason}")
            if report.mode == "full":
                reader = reader or self._reader(cfg).start()
                with heap.long_lived_frozen():  # full collections skip the app's objects
                    self._full(conn, cfg, dse, mappings, map_fp, report, reader)
            else:
                assert state.highest_usn is not None  # noqa: S101 - checked by _needs_full
                self._incremental(conn, cfg, dse, mappings, map_fp,
                                  state.highest_usn, report)
        except (DirectoryError, LookupError) as exc:
            report.status = "unknown"
            report.error = getattr(exc, "message", None) or str(exc)
            log.warning("AD sync of %s stopped, nothing suspended: %s", self.account_id,
                        report.error)
        except decisions.MassChangeStopped as exc:
            report.status = "mass_change_stopped"
            report.would_suspend = exc.count
            over = ("more than the mass change applied allowed" if self.allow_mass_change
                    else "over the mass-change limit")
            report.error = (f"The run would suspend {exc.count} of {exc.known} users, {over}"
                            "; nothing was changed. Check the directory and "
                            "the BaseDn/UserFilter, then run again with --allow-mass-change "
                            "(SyncDirectory's AllowMassChange, the console's Apply the mass "
                            "change) to apply it.")
            self.engine.record_event(
                self.actor, "AdSyncMassChangeStopped", account_id=self.account_id,
                params={"accountId": self.account_id, "mode": report.mode,
                        "dryRun": self.dry_run},  # a preview's stop changes nothing either
                response={"wouldSuspend": exc.count, "known": exc.known,
                          "maxUsers": self.settings.ad_mass_change_max_users,
                          "maxPercent": self.settings.ad_mass_change_max_percent})
        except SyncInterrupted:
            report.status = "interrupted"
        except Exception:  # a bug or a store error: the report must not stay "running"
            report.status = "failed"
            # Never the exception's text: the page and the API show this (the log has it).
            report.error = (f"The run stopped on an unexpected error (run {report.run_id}); "
                            "the server log has the details. The next sync completes it.")
            log.exception("AD sync %s of %s failed", report.run_id, self.account_id)
        finally:
            if reader is not None:
                reader.close()
                report.reader_peak_rss_mb = reader.peak_rss_mb
            if conn is not None and conn is not self.shared_connection:
                client.close(conn)
            report.duration_seconds = time.monotonic() - started
        if report.status != "ok" and not self.dry_run:
            self.records.record_failure_status(self.account_id, report.status, report.error)
        if report.status == "ok" and not self.dry_run:
            report.deleted = self._purge()
        if report.watermark is None:
            now_state = self.records.state(self.account_id)
            report.watermark = {"dcName": now_state.dc_name,
                                "invocationId": now_state.invocation_id,
                                "highestCommittedUsn": now_state.highest_usn}
        report.duration_seconds = time.monotonic() - started
        from bridge.observability.metrics import observe_sync_report  # see bridge.observability

        observe_sync_report(report)
        self.records.finish_report(self.account_id, run_id=report.run_id,
                                   dry_run=self.dry_run, mode=report.mode,
                                   status=report.status, report=report.as_json(),
                                   now=self.engine.now())
        return report

    # --- decisions about the run ------------------------------------------------------------

    def _reader(self, cfg: DirectoryConnection) -> UserReader:
        """The helper process that reads every user under BaseDn (full runs)."""
        return UserReader(cfg, Search(cfg.base_dn, cfg.user_filter or ms_ad.DEFAULT_USER_FILTER,
                                      ms_ad.USER_ATTRIBUTES, self.page_size),
                          allow_insecure=self.settings.allow_insecure_ldap)

    def _mapped_names(self) -> list[str]:
        return [m.name for m in self.engine.list_group_mappings(self.account_id)]


    # --- full run ---------------------------------------------------------------------------

    def _full(self, conn: Connection, cfg: DirectoryConnection, dse: ms_ad.RootDse,
              mappings: Sequence[str], map_fp: str, report: SyncReport,
              pages: UserReader) -> None:
        """One read of the directory. Into an empty bridge (nothing to suspend) pages are
        applied as they arrive; otherwise the changes are staged page by page, the
        mass-change guard looks at the whole run, and only then are they applied."""
        # The users are read and decoded by the helper process (``pages``, started before
        # the bind so its start overlaps the group reads here) while this process applies.
        # The DirSync cookie first: group changes made while the users are read are then
        # read again by the next incremental run (applying them twice changes nothing).
        cookie = groups.first_cookie(conn, dse.default_naming_context or cfg.base_dn)
        closure_groups = self._read_closure(conn, cfg, dse, mappings, report)
        self._group_state = groups.GroupState(closure_groups, cookie)
        closure = groups.lookup(closure_groups)
        known_total, _ = self.records.count_present(self.account_id)
        staged = known_total > 0
        run_id = report.run_id
        if not self.dry_run:
            self.records.drop_pending(self.account_id)
            with self.engine.single_transaction() as session:
                self.records.save_progress(session, self.account_id,
                                         full_run_started_usn=dse.highest_usn)
        seen = 0
        if staged:
            for users in pages:
                seen += self._full_page(users, closure, run_id, report)
                self._check_stop()
        else:
            seen = self._cold_pages(pages, closure, run_id, report)
        if staged:
            if not seen:
                raise DirectoryError("search", "the directory returned no users where "
                                               f"{known_total} existed; treated as unknown")
            not_seen = self.records.count_not_seen(self.account_id, run_id)
            report.would_suspend += not_seen
            if not_seen:
                note_suspensions(report, self.records.not_seen_sample(
                    self.account_id, run_id, REPORT_LIST_MAX), GONE)
            self._guard(report.would_suspend, known_total)
            if not self.dry_run:
                self._suspend_gone(self.records.present_not_seen(self.account_id, run_id), report)
                for batch in self.records.pending_pages(self.account_id, run_id, self.page_size):
                    known = self.records.known_users(self.account_id, [g for g, _ in batch])
                    self._commit([decisions.change_from_facts(g, f, known.get(g))
                                  for g, f in batch],
                                 report, run_id=run_id, pending=True)
                    self._check_stop()
        if self.dry_run:
            report.suspended = report.would_suspend
            self._finish([], dse, map_fp, report, full=True)
            return
        # Users present before and not seen now: gone, moved out of scope or filtered out.
        gone = self.records.present_not_seen(self.account_id, run_id)
        self._finish(gone, dse, map_fp, report, full=True)

    def _cold_pages(self, pages: UserReader,
                    closure: Mapping[str, frozenset[str]], run_id: str,
                    report: SyncReport) -> int:
        """Apply the pages of a full run into an empty bridge as they arrive, several pages
        per transaction (up to ``transaction_users`` users, at least one page); the number
        of users seen. A transaction never waits long for the directory: it takes the next
        page only if it comes within ``transaction_wait`` seconds (all its waits together),
        else it commits first and the run waits for the page outside it (on SQLite an open
        transaction holds the writers' lock of every door). Nothing is suspended in such a
        run, so there is no guard to wait for; the stop is checked after every page and
        ends the transaction there (what is applied commits, nothing of a page is
        half-applied)."""
        seen = 0
        remaining = iter(pages)
        for first in remaining:  # waited for outside any transaction
            with self._transaction():
                users: Sequence[ms_ad.DirectoryUser] | None = first
                in_transaction = 0
                budget = self.transaction_wait
                while users is not None:
                    self._apply_page(users, closure, report, run_id=run_id)
                    in_transaction += len(users)
                    if in_transaction >= self.transaction_users or self.stop.is_set():
                        break
                    waited = time.monotonic()
                    if not pages.page_ready(budget):
                        break
                    budget -= time.monotonic() - waited
                    users = next(remaining, None)
            seen += in_transaction
            self._check_stop()
        return seen

    @contextmanager
    def _transaction(self) -> Iterator[Session | None]:
        """One transaction for the pages applied inside (``engine.single_transaction``);
        in a dry run, none (nothing is written). Pages applied outside commit alone."""
        if self.dry_run:
            yield None
            return
        with self.engine.single_transaction() as session:
            yield session

    def _full_page(self, users: Sequence[ms_ad.DirectoryUser],
                   closure: Mapping[str, frozenset[str]], run_id: str,
                   report: SyncReport) -> int:
        """Stage one page of a full run over known users; the number of users in it."""
        known = self.records.known_users(self.account_id, [u.guid for u in users])
        changes, unchanged = decisions.classify(users, closure, known)
        report.unchanged += len(unchanged)
        report.pages += 1
        disabling = [ch for ch in changes if decisions.disables(ch)]
        report.would_suspend += len(disabling)
        note_suspensions(report, [ch.user for ch in disabling], DISABLED)
        if self.dry_run:
            for ch in changes:
                self._count(ch, report, created=ch.known is None)
        self.records.plan_page(self.account_id, run_id, [u.guid for u in users],
                             [] if self.dry_run else
                             [(ch.user.guid, decisions.facts(ch)) for ch in changes])
        return len(users)

