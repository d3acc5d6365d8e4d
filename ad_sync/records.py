"""The AD sync's bookkeeping: the watermark, what the last run applied for each objectGUID,
the changes a full run staged, why the last run stopped, and the last report of each kind
(run, dry run) for the console and the admin API.

This is the AD door's own state (the engine decides nothing from it): it runs in the
engine's unit of work's transactions (:meth:`UnitOfWork.session` for bookkeeping of its own,
the session of :meth:`ResolutionEngine.single_transaction` for writes that must commit with
a page of engine changes) and writes no audit event. The connection settings it sits
beside are the engine's (:mod:`bridge.engine.ad_directories`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from bridge.engine import UnitOfWork
from bridge.errors import NotFound
from bridge.store.ad_models import AdDirectory, AdDirectoryUser, AdSyncPending
from bridge.store.ad_sync_report_models import DONE, DRY_RUN, RUN, RUNNING, AdSyncReport
from bridge.store.driver_insert import insert_rows
from bridge.store.models import User


@dataclass(frozen=True)
class SyncState:
    """The watermark and what the last runs left behind."""

    dc_name: str | None
    invocation_id: str | None
    highest_usn: int | None
    mappings_fingerprint: str | None
    last_full_sync_at: datetime | None
    last_sync_at: datetime | None
    full_run_started_usn: int | None


@dataclass(frozen=True)
class KnownUser:
    """What the last sync applied for one objectGUID."""

    guid: str
    user_id: str | None
    dn: str
    fingerprint: str
    enabled: bool
    present: bool
    groups: tuple[str, ...]


@dataclass(frozen=True)
class UserRecord:
    """A directory user as applied by the sync (written with the page's data)."""

    guid: str
    user_id: str | None
    dn: str
    fingerprint: str
    enabled: bool
    groups: tuple[str, ...]
    retry: bool = False  # an address clashed: apply it again on every run


def fingerprint(*facts: Any) -> str:
    """A stable hash of the facts the sync gave the engine for one user."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


# Users listed per list in a stored report (skipped, address conflicts, would suspend).
REPORT_LIST_MAX = 50


class SyncRecords:
    """The sync's records of every account with a directory (one instance per process)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    # --- sync state -----------------------------------------------------------------------

    def state(self, account_id: str) -> SyncState:
        with self._uow.session() as session:
            row = session.get(AdDirectory, account_id)
            if row is None:
                raise NotFound(f"Account {account_id} has no Active Directory connected.")
            return SyncState(row.dc_name, row.invocation_id, row.highest_usn,
                             row.mappings_fingerprint, row.last_full_sync_at, row.last_sync_at,
                             row.full_run_started_usn)

    def known_users(self, account_id: str, guids: Sequence[str]) -> dict[str, KnownUser]:
        """Sync records of these objectGUIDs (one query)."""
        if not guids:
            return {}
        t = cast(Table, AdDirectoryUser.__table__)
        # Core rows, not ORM objects: a full run asks this for every page (at 10k users
        # the ORM instances cost ~2 s of a ~3.5 s page loop).
        with self._uow.session() as session:
            rows = session.execute(select(
                t.c.guid, t.c.user_id, t.c.dn, t.c.fingerprint, t.c.enabled, t.c.present,
                t.c.groups).where(t.c.account_id == account_id, t.c.guid.in_(guids)))
            return {r.guid: KnownUser(r.guid, r.user_id, r.dn, r.fingerprint, r.enabled,
                                      r.present, tuple(r.groups or ()))
                    for r in rows}

    def present_users(self, account_id: str) -> dict[str, KnownUser]:
        """Every user the directory had at the last sync (for group and guard checks)."""
        with self._uow.session() as session:
            rows = session.scalars(select(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.present.is_(True)))
            return {r.guid: _known(r) for r in rows}

    def guid_for_user(self, account_id: str, user_id: str) -> str | None:
        """The objectGUID the sync linked to ``user_id`` (None when the user is not from the
        account's directory)."""
        with self._uow.session() as session:
            return session.scalars(select(AdDirectoryUser.guid).where(
                AdDirectoryUser.account_id == account_id,
                AdDirectoryUser.user_id == user_id).limit(1)).first()

    def records_of_user(self, account_id: str, user_id: str) -> list[KnownUser]:
        """Sync records linked to a user profile (normally one)."""
        with self._uow.session() as session:
            rows = session.scalars(select(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.user_id == user_id))
            return [_known(r) for r in rows]

    @staticmethod
    def forget_users(session: Session, account_id: str, guids: Sequence[str]) -> None:
        """Drop sync records of objectGUIDs that no longer exist (a recreated user's old
        GUID), in the transaction that re-links the profile."""
        if guids:
            session.execute(delete(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.guid.in_(guids)))

    def retry_guids(self, account_id: str) -> list[str]:
        """Users whose last apply skipped a clashing address (tried again every run)."""
        with self._uow.session() as session:
            return list(session.scalars(select(AdDirectoryUser.guid).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.retry.is_(True),
                AdDirectoryUser.present.is_(True))))

    def count_present(self, account_id: str) -> tuple[int, int]:
        """(users present at the last sync, of which enabled)."""
        with self._uow.session() as session:
            base = select(func.count()).select_from(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.present.is_(True))
            total = session.scalar(base) or 0
            enabled = session.scalar(base.where(AdDirectoryUser.enabled.is_(True))) or 0
            return int(total), int(enabled)

    def plan_page(self, account_id: str, run_id: str, seen: Sequence[str],
                  staged: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """A full run's reading pass over one page: note ``seen`` (sync bookkeeping) and
        stage the changed users' facts (nothing about users changes yet)."""
        with self._uow.session() as session:
            self.mark_seen(session, account_id, seen, run_id)
            for guid, facts in staged:
                session.merge(AdSyncPending(account_id=account_id, guid=guid, run_id=run_id,
                                            facts=facts))

    def drop_pending(self, account_id: str) -> None:
        """Forget changes staged by an earlier run that did not finish (it is redone)."""
        with self._uow.session() as session:
            session.execute(delete(AdSyncPending).where(AdSyncPending.account_id == account_id))

    def pending_pages(self, account_id: str, run_id: str, size: int
                      ) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """The staged changes of ``run_id`` in pages (keyset by objectGUID)."""
        after = ""
        while True:
            with self._uow.session() as session:
                rows = list(session.execute(
                    select(AdSyncPending.guid, AdSyncPending.facts).where(
                        AdSyncPending.account_id == account_id,
                        AdSyncPending.run_id == run_id, AdSyncPending.guid > after)
                    .order_by(AdSyncPending.guid).limit(size)))
            if not rows:
                return
            yield [(g, dict(f)) for g, f in rows]
            after = rows[-1][0]

    @staticmethod
    def clear_pending(session: Session, account_id: str, guids: Sequence[str]) -> None:
        """Remove applied staged changes (same transaction as the engine changes)."""
        if guids:
            session.execute(delete(AdSyncPending).where(
                AdSyncPending.account_id == account_id, AdSyncPending.guid.in_(guids)))

    def count_not_seen(self, account_id: str, run_id: str) -> int:
        with self._uow.session() as session:
            return int(session.scalar(select(func.count()).select_from(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.present.is_(True),
                (AdDirectoryUser.seen_run.is_(None)) | (AdDirectoryUser.seen_run != run_id)))
                or 0)

    def not_seen_sample(self, account_id: str, run_id: str, limit: int) -> list[KnownUser]:
        """Up to ``limit`` of :meth:`present_not_seen`, by DN (what a report shows)."""
        with self._uow.session() as session:
            rows = session.scalars(select(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.present.is_(True),
                (AdDirectoryUser.seen_run.is_(None)) | (AdDirectoryUser.seen_run != run_id))
                .order_by(AdDirectoryUser.dn).limit(limit))
            return [_known(r) for r in rows]

    def present_not_seen(self, account_id: str, run_id: str) -> list[KnownUser]:
        """Users present before a full run that the run did not see (gone or out of scope)."""
        with self._uow.session() as session:
            rows = session.scalars(select(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.present.is_(True),
                (AdDirectoryUser.seen_run.is_(None)) | (AdDirectoryUser.seen_run != run_id)))
            return [_known(r) for r in rows]

    @staticmethod
    def record_users(session: Session, account_id: str, records: Iterable[UserRecord],
                     run_id: str | None) -> None:
        """Write the sync records of applied users (same transaction as the page): one
        bulk INSERT for new objectGUIDs, one executemany UPDATE for known ones."""
        records = list(records)
        if not records:
            return
        table = cast(Table, AdDirectoryUser.__table__)
        existing = set(session.scalars(select(AdDirectoryUser.guid).where(
            AdDirectoryUser.account_id == account_id,
            AdDirectoryUser.guid.in_([rec.guid for rec in records]))))
        fresh = [{"account_id": account_id, "guid": rec.guid, "user_id": rec.user_id,
                  "dn": rec.dn, "fingerprint": rec.fingerprint, "enabled": rec.enabled,
                  "present": True, "groups": list(rec.groups), "seen_run": run_id,
                  "retry": rec.retry}
                 for rec in records if rec.guid not in existing]
        known = [{"b_guid": rec.guid, "b_user_id": rec.user_id, "b_dn": rec.dn,
                  "b_fingerprint": rec.fingerprint, "b_enabled": rec.enabled,
                  "b_groups": list(rec.groups), "b_retry": rec.retry}
                 for rec in records if rec.guid in existing]
        insert_rows(session, table, fresh)  # the driver's executemany (a cold import)
        if known:
            session.execute(
                update(table).where(table.c.account_id == account_id,
                                    table.c.guid == bindparam("b_guid"))
                .values(user_id=bindparam("b_user_id"), dn=bindparam("b_dn"),
                        fingerprint=bindparam("b_fingerprint"),
                        enabled=bindparam("b_enabled"), present=True,
                        retry=bindparam("b_retry"),
                        groups=bindparam("b_groups", type_=table.c.groups.type),
                        seen_run=run_id), known)

    @staticmethod
    def mark_seen(session: Session, account_id: str, guids: Sequence[str], run_id: str) -> None:
        if guids:
            session.execute(update(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.guid.in_(guids)
            ).values(seen_run=run_id))

    @staticmethod
    def mark_gone(session: Session, account_id: str, guids: Sequence[str]) -> None:
        if guids:
            session.execute(update(AdDirectoryUser).where(
                AdDirectoryUser.account_id == account_id, AdDirectoryUser.guid.in_(guids)
            ).values(present=False))

    @staticmethod
    def save_progress(session: Session, account_id: str, *, full_run_started_usn: int | None
                      ) -> None:
        """Note that a full run is under way (a crashed one makes the next run a full)."""
        row = session.get(AdDirectory, account_id)
        if row is not None:
            row.full_run_started_usn = full_run_started_usn

    @staticmethod
    def save_watermark(session: Session, account_id: str, *, dc_name: str, invocation_id: str,
                       highest_usn: int, mappings_fingerprint: str, now: datetime,
                       full: bool, status: str) -> None:
        """Advance the watermark in the transaction of the run's last page."""
        row = session.get(AdDirectory, account_id)
        if row is None:
            raise NotFound(f"Account {account_id} has no Active Directory connected.")
        row.dc_name, row.invocation_id, row.highest_usn = dc_name, invocation_id, highest_usn
        row.mappings_fingerprint = mappings_fingerprint
        row.last_sync_at, row.last_status, row.last_error = now, status, None
        if full:
            row.last_full_sync_at = now
            row.full_run_started_usn = None

    def record_failure_status(self, account_id: str, status: str, error: str | None) -> None:
        """Remember why the last run did not complete (no data changed)."""
        with self._uow.session() as session:
            row = session.get(AdDirectory, account_id)
            if row is not None:
                row.last_status, row.last_error = status, (error or "")[:2000] or None

    def start_report(self, account_id: str, *, run_id: str, mode: str, dry_run: bool,
                     allow_mass_change: bool, requested_by: str | None,
                     now: datetime) -> None:
        """Note that a run started (its kind's last report becomes this one, ``running``)."""
        kind = DRY_RUN if dry_run else RUN
        with self._uow.session() as session:
            row = session.get(AdSyncReport, (account_id, kind))
            if row is None:
                row = AdSyncReport(account_id=account_id, kind=kind)
                session.add(row)
            row.run_id, row.mode, row.state, row.status = run_id, mode, RUNNING, None
            row.allow_mass_change, row.requested_by = allow_mass_change, requested_by
            row.started_at, row.finished_at, row.report = now, None, {}

    def finish_report(self, account_id: str, *, run_id: str, dry_run: bool, mode: str,
                      status: str, report: dict[str, Any], now: datetime) -> None:
        """Store what the run did (or would have done): its report, user lists capped at
        :data:`REPORT_LIST_MAX` entries (their full counts kept beside them)."""
        kind = DRY_RUN if dry_run else RUN
        stored = dict(report)
        for name in ("skipped", "conflicts", "warnings", "wouldSuspendUsers"):
            items = list(stored.get(name) or [])
            stored[name], stored[f"{name}Count"] = items[:REPORT_LIST_MAX], len(items)
        with self._uow.session() as session:
            row = session.get(AdSyncReport, (account_id, kind))
            if row is None or row.run_id != run_id:
                return  # disconnected meanwhile (or a newer run took the row)
            row.mode, row.state, row.status = mode, DONE, status
            row.finished_at, row.report = now, stored

    def forget_purged(self, account_id: str) -> int:
        """Drop sync records whose user profile was purged after the grace period."""
        with self._uow.session() as session:
            gone = select(AdDirectoryUser.guid).where(
                AdDirectoryUser.account_id == account_id,
                AdDirectoryUser.present.is_(False),
                ~select(User.id).where(User.id == AdDirectoryUser.user_id).exists())
            guids = list(session.scalars(gone))
            if guids:
                session.execute(delete(AdDirectoryUser).where(
                    AdDirectoryUser.account_id == account_id, AdDirectoryUser.guid.in_(guids)))
            return len(guids)



def _known(row: AdDirectoryUser) -> KnownUser:
    return KnownUser(row.guid, row.user_id, row.dn, row.fingerprint, row.enabled, row.present,
                     tuple(row.groups or ()))
