"""The state of one directory sync run and the steps that full and incremental runs share:
the mass-change guard and the stop check, the closure of the mapped groups, applying a page
of users (one bulk engine operation and the sync records in one transaction), suspending
the users that left, and the watermark.

:class:`RunSteps` is the base of :class:`ad_sync.incremental.IncrementalRun`, itself the
base of :class:`ad_sync.sync.DirectorySync`, the class callers use (its docstring lists the
constructor's arguments; the rules of a run are in :mod:`ad_sync.sync`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from ldap3 import Connection

from ad_sync import decisions, groups
from ad_sync.records import KnownUser, SyncRecords, UserRecord
from ad_sync.report import SyncReport
from ad_sync.vendor import ms_ad
from bridge.domain import Actor, IdentitySource
from bridge.engine.ad_directories import DirectoryConnection
from bridge.engine.results import DirectoryUserInput, DirectoryUserOutcome
from bridge.errors import BridgeError
from bridge.services import Services

# Each run acts as this actor with its own request id: every audit event of one run
# carries the run's id as requestID (the report's runId), so a run can be traced.
ACTOR = Actor(type="System", principal_id="ad-sync", name="ad-sync")
# Fingerprint mark of a user whose addresses clashed: never "unchanged".
RETRY_PREFIX = "retry:"
# Users per transaction of a cold import (pages of an empty bridge's full run): measured in
# docs/performance.md (issue 17, fifth round).
TRANSACTION_USERS = 10_000
# How long, in all, a transaction of a cold import may wait for the directory's next pages
# before it commits what it has (a page normally arrives in well under 0.1 s).
TRANSACTION_WAIT_SECONDS = 1.0


class SyncInterrupted(Exception):
    """A stop was requested (SIGTERM); the pages already committed stay committed."""


class RunSteps:
    """One run's state (see :class:`ad_sync.sync.DirectorySync` for the arguments) and
    the steps both kinds of run share. Not thread-safe."""

    def __init__(self, services: Services, account_id: str, *, page_size: int = ms_ad.PAGE_SIZE,
                 dry_run: bool = False, allow_mass_change: bool = False,
                 on_page: Callable[[int], None] | None = None,
                 stop: threading.Event | None = None,
                 connection: Connection | None = None, requested_by: str | None = None,
                 run_id: str | None = None, mass_change_max: int | None = None,
                 transaction_users: int = TRANSACTION_USERS,
                 transaction_wait: float = TRANSACTION_WAIT_SECONDS) -> None:
        self.svc = services
        self.requested_by = requested_by
        self.run_id = run_id or str(uuid.uuid4())
        self.engine = services.engine
        self.records = SyncRecords(services.engine.uow)
        self.account_id = account_id
        self.page_size = page_size
        self.transaction_users = transaction_users
        self.transaction_wait = transaction_wait
        self.dry_run = dry_run
        self.allow_mass_change = allow_mass_change
        self.mass_change_max = mass_change_max  # bounds allow_mass_change (what was confirmed)
        self.on_page = on_page
        self.stop = stop or threading.Event()
        self.settings = services.settings
        self.actor = ACTOR
        self.shared_connection = connection
        # The closure and DirSync cookie this run read; saved with the watermark.
        self._group_state: groups.GroupState | None = None

    # --- decisions about the run ------------------------------------------------------------

    def _guard(self, count: int, known: int) -> None:
        decisions.mass_change_guard(
            count, known, max_users=self.settings.ad_mass_change_max_users,
            max_percent=self.settings.ad_mass_change_max_percent,
            allowed=self.allow_mass_change, allowed_up_to=self.mass_change_max)

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise SyncInterrupted()

    # --- group membership -------------------------------------------------------------------

    def _read_closure(self, conn: Connection, cfg: DirectoryConnection, dse: ms_ad.RootDse,
                      mappings: Sequence[str], report: SyncReport) -> groups.Closure:
        """Every group that counts as a mapped group (see :mod:`ad_sync.groups`: the DC
        resolves the nesting among the groups, never the in-chain rule per user)."""
        domain = dse.default_naming_context or cfg.base_dn
        return groups.read_closure(conn, cfg.group_base_dn or domain, domain, mappings,
                                   report.warnings)


    # --- applying ---------------------------------------------------------------------------

    def _apply_page(self, users: Sequence[ms_ad.DirectoryUser],
                    closure: Mapping[str, frozenset[str]], report: SyncReport, *,
                    run_id: str | None, known: Mapping[str, KnownUser] | None = None) -> None:
        """Classify and apply one page of users."""
        if known is None:
            known = self.records.known_users(self.account_id, [u.guid for u in users])
        changes, unchanged = decisions.classify(users, closure, known)
        report.unchanged += len(unchanged)
        report.pages += 1
        if self.dry_run:
            for ch in changes:
                self._count(ch, report, created=ch.known is None)
            return
        self._commit(changes, report, run_id=run_id, seen=unchanged)

    def _commit(self, changes: Sequence[decisions.Change], report: SyncReport, *,
                run_id: str | None,
                seen: Sequence[str] = (), pending: bool = False) -> None:
        """Engine changes (one bulk engine operation for the page), sync records, seen
        marks and (staged runs) the removal of the staged rows: one transaction (the
        page's own, or the open one of a cold import's group of pages)."""
        recreated = self._recreated([ch.user for ch in changes if ch.known is None])
        items = [DirectoryUserInput(
            external_id=ch.user.guid, primary_email=ch.user.mail,
            other_emails=ch.user.aliases, display_name=ch.user.display_name,
            enabled=ch.user.enabled, groups=ch.groups,
            # Unchanged groups of a known user are left alone (set only if it is created).
            replace_groups=ch.known is None or ch.known.groups != ch.groups,
            user_id=recreated[ch.user.guid][0] if ch.user.guid in recreated else None)
            for ch in changes]
        with self.engine.single_transaction() as session:  # joins a cold import's group
            outcomes = self.engine.apply_directory_users(
                self.actor, self.account_id, IdentitySource.ACTIVE_DIRECTORY, items,
                event_name="SyncDirectoryUser") if items else []
            records: list[UserRecord] = []
            forget: list[str] = []
            for ch, outcome in zip(changes, outcomes, strict=True):
                record = self._report_user(ch, outcome, recreated.get(ch.user.guid), report,
                                           forget)
                if record is not None:
                    records.append(record)
            SyncRecords.forget_users(session, self.account_id, forget)
            SyncRecords.record_users(session, self.account_id, records, run_id)
            if run_id is not None:
                SyncRecords.mark_seen(session, self.account_id, seen, run_id)
            if pending:
                SyncRecords.clear_pending(session, self.account_id,
                                             [ch.user.guid for ch in changes])
        if self.on_page is not None:
            self.on_page(report.pages)

    def _recreated(self, users: Sequence[ms_ad.DirectoryUser]
                   ) -> dict[str, tuple[str, list[str]]]:
        """New objectGUIDs that the engine says take back a profile deleted in the directory
        (``engine.relinkable_directory_profiles``: the account was recreated in AD). Returns
        GUID → (that user id, its old GUIDs, for this door's sync records) so the profile is
        re-linked, not duplicated. One engine query for the page."""
        relink = self.engine.relinkable_directory_profiles(
            self.account_id, [u.mail for u in users if u.mail])
        found: dict[str, tuple[str, list[str]]] = {}
        for user in users:
            user_id = relink.get(user.mail) if user.mail else None
            if user_id is not None:
                old = self.records.records_of_user(self.account_id, user_id)
                found[user.guid] = (user_id, [r.guid for r in old])
        return found

    def _report_user(self, ch: decisions.Change, outcome: DirectoryUserOutcome,
                     recreated: tuple[str, list[str]] | None, report: SyncReport,
                     forget: list[str]) -> UserRecord | None:
        """Count one applied (or refused) user in the report; its sync record or None."""
        user = ch.user
        result = outcome.result
        if result is None:
            assert outcome.error is not None  # noqa: S101 - an outcome is one or the other
            report.skipped.append({"objectGUID": user.guid, "dn": user.dn,
                                   "reason": outcome.error.code,
                                   "message": outcome.error.message})
            return None
        if result.skipped_addresses:
            report.conflicts.append({
                "objectGUID": user.guid, "dn": user.dn, "userId": result.user.id,
                "addresses": list(result.skipped_addresses),
                "reason": "address belongs to another user (not merged)"})
        if recreated:
            report.restored += 1
            report.warnings.append(f"{user.dn} was recreated in the directory (new objectGUID "
                                   f"{user.guid}); its profile {result.user.id} was re-linked")
            forget.extend(recreated[1])
        else:
            self._count(ch, report, created=result.created)
        # A user with a clash is applied (and reported) again on every run until it clears.
        fp = RETRY_PREFIX + ch.fingerprint[len(RETRY_PREFIX):] if result.skipped_addresses \
            else ch.fingerprint
        return UserRecord(user.guid, result.user.id, user.dn, fp, user.enabled, ch.groups,
                          retry=bool(result.skipped_addresses))

    @staticmethod
    def _count(ch: decisions.Change, report: SyncReport, *, created: bool) -> None:
        prior = ch.known
        if created or prior is None:
            report.added += 1
        elif not prior.present:
            report.restored += 1
        else:
            report.updated += 1
        if prior is not None and prior.present and prior.enabled and not ch.user.enabled:
            report.suspended += 1

    def _suspend_gone(self, gone: Sequence[KnownUser], report: SyncReport) -> None:
        """Suspend the users that left the directory (or its scope), in one transaction,
        before the run's other changes: a user deleted and recreated in the same window
        then finds the old profile suspended and is re-linked to it."""
        report.suspended += len(gone)
        if self.dry_run or not gone:
            return
        with self.engine.single_transaction() as session:
            self._mark_gone(session, gone, report)

    def _mark_gone(self, session: Any, gone: Sequence[KnownUser], report: SyncReport) -> None:
        for known in gone:
            if known.user_id is None:
                continue
            try:
                self.engine.mark_directory_user_deleted(
                    self.actor, self.account_id, known.user_id,
                    event_name="SyncDirectoryUserDeleted")
            except BridgeError as exc:  # the profile was removed meanwhile
                report.skipped.append({"objectGUID": known.guid, "dn": known.dn,
                                       "reason": exc.code, "message": exc.message})
        SyncRecords.mark_gone(session, self.account_id, [k.guid for k in gone])

    def _finish(self, gone: Sequence[KnownUser], dse: ms_ad.RootDse, map_fp: str,
                report: SyncReport, *, full: bool) -> None:
        """Suspend the users that left (if any are left to do) and advance the watermark,
        in one transaction."""
        report.suspended += len(gone)
        report.watermark = {"dcName": dse.dc_name, "invocationId": dse.invocation_id,
                            "highestCommittedUsn": dse.highest_usn}
        if self.dry_run:
            return
        with self.engine.single_transaction() as session:
            self._mark_gone(session, gone, report)
            SyncRecords.save_watermark(
                session, self.account_id, dc_name=dse.dc_name,
                invocation_id=dse.invocation_id, highest_usn=dse.highest_usn,
                mappings_fingerprint=map_fp, now=self.engine.now(), full=full, status="ok")
            if self._group_state is not None:
                groups.GroupStateStore.save(session, self.account_id, self._group_state)

    def _purge(self) -> int:
        grace = timedelta(days=self.settings.ad_deletion_grace_days)
        count = self.engine.purge_deleted_users(self.actor, self.account_id, grace)
        if count:
            self.records.forget_purged(self.account_id)
        return count



