"""Data exports (the guide's "Request attachments", for what this service holds):
StartDataExport records a request, the ``data-export`` job builds the archive
(:mod:`bridge.data_export`), RetrieveDataExport reads the request back.

The rules: one request per account per 7 days (counted from the last request that did not
fail: a failed export may be requested again at once); an archive is served for 6 days
after it is ready, then it expires; deleting the account deletes its requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from bridge.domain import Actor
from bridge.engine.room import Room
from bridge.errors import NotFound, RateLimited
from bridge.store import export_reads
from bridge.store.export_models import (
    EXPIRED,
    FAILED,
    PENDING,
    READY,
    RUNNING,
    DataExport,
)
from bridge.store.repository import Repository

REQUEST_INTERVAL = timedelta(days=7)  # "You can submit a request one time every 7 days."
LINK_LIFETIME = timedelta(days=6)  # "Pre-signed URLs expire after 6 days."
# A request whose build started this many times without finishing (the runner died each
# time) is marked failed rather than retried for ever.
MAX_ATTEMPTS = 3
AUDIT_EVENTS_FILE = "audit_events.jsonl"
# Why an archive holds no audit events (its manifest says so).
AUDIT_EVENTS_WITHHELD = ("The principal that requested this export was not allowed "
                         "chime:LookupEvents on this account, so the archive holds no "
                         "audit events.")
SYSTEM = Actor.system("data-export")
__all__ = ["AUDIT_EVENTS_FILE", "AUDIT_EVENTS_WITHHELD", "READY", "WIRE_STATUS",
           "DataExportTooSoon", "DataExportView", "DataExports"]
WIRE_STATUS = {PENDING: "Pending", RUNNING: "InProgress", READY: "Completed",
               FAILED: "Failed", EXPIRED: "Expired"}


class DataExportTooSoon(RateLimited):
    """StartDataExport within 7 days of the account's last request (429, with
    ``Retry-After``; the message says when the next request is allowed)."""

    code = "DataExportTooSoon"


@dataclass(frozen=True)
class DataExportView:
    """One export request as the doors see it."""

    id: str
    account_id: str
    requested_by: str
    requested_at: datetime
    includes_audit_events: bool  # the requester was allowed LookupEvents on the account
    status: str  # pending, running, ready, failed, expired (WIRE_STATUS for the API's)
    next_allowed_at: datetime  # when StartDataExport accepts the account's next request
    completed_at: datetime | None
    expires_at: datetime | None
    archive_bytes: int | None
    archive_sha256: str | None
    manifest: dict[str, Any] | None
    failure: str | None

    @classmethod
    def of(cls, row: DataExport) -> DataExportView:
        next_allowed = (row.requested_at if row.status == FAILED
                        else row.requested_at + REQUEST_INTERVAL)
        return cls(row.id, row.account_id, row.requested_by, row.requested_at,
                   row.includes_audit_events, row.status, next_allowed, row.completed_at,
                   row.expires_at, row.archive_bytes, row.archive_sha256, row.manifest,
                   row.failure)


@dataclass(frozen=True)
class ExportSource:
    """An account's records in ONE read snapshot, file by file: each a generator of
    JSON-able dicts or of JSON text, streamed. Valid only inside
    :meth:`DataExports.snapshot`."""

    account: dict[str, Any]
    files: tuple[tuple[str, Callable[[], Iterator[dict[str, Any] | str]]], ...]


class DataExports(Room):
    """StartDataExport, RetrieveDataExport, and what the export job needs."""

    def start_data_export(self, actor: Actor, account_id: str, *,
                          include_audit_events: bool) -> DataExportView:
        """StartDataExport: record a request for the ``data-export`` job.

        ``include_audit_events``: whether ``actor`` may read the account's audit events
        (the admin API: allowed ``chime:LookupEvents`` on the account, now). Recorded on
        the request; the archive holds ``audit_events.jsonl`` only when it is true.

        Raises NotFound for an unknown account; DataExportTooSoon (429) when the account
        made a request that did not fail in the last 7 days.
        """

        def work(repo: Repository) -> tuple[DataExportView, dict[str, Any]]:
            # The account's lock serialises concurrent requests: one wins, one is refused.
            self._account(repo, account_id, lock=True)
            now = self._now()
            last = self._latest(repo, account_id, exclude_failed=True)
            if last is not None:
                allowed = DataExportView.of(last).next_allowed_at
                if allowed > now:
                    raise DataExportTooSoon(
                        f"A data export of this account was requested at "
                        f"{_iso(last.requested_at)}; one request is allowed every 7 days. "
                        f"The next can be made from {_iso(allowed)}.",
                        retry_after=max(1, int((allowed - now).total_seconds()) + 1))
            row = DataExport(account_id=account_id, requested_by=actor.principal_id,
                             requested_at=now, includes_audit_events=include_audit_events,
                             status=PENDING, attempts=0)
            repo.session.add(row)
            repo.session.flush()
            return DataExportView.of(row), {"exportId": row.id, "status": "Pending",
                                            "includesAuditEvents": include_audit_events}

        return self._run(actor, "StartDataExport", {"accountId": account_id}, work,
                         account_id=account_id)

    def latest_data_export(self, account_id: str) -> DataExportView:
        """RetrieveDataExport's subject: the account's most recent request. Raises NotFound
        for an unknown account or one that never requested an export."""

        def work(repo: Repository) -> DataExportView:
            self._account(repo, account_id)
            row = self._latest(repo, account_id, exclude_failed=False)
            if row is None:
                raise NotFound("No data export was requested for this account; request one "
                               "with StartDataExport.")
            view = DataExportView.of(row)
            if view.status == READY and view.expires_at and view.expires_at <= self._now():
                # Expired, whether or not the job's next pass has recorded it yet.
                view = replace(view, status=EXPIRED)
            return view

        return self._read(work, write_lock=False)

    def data_export(self, export_id: str) -> DataExportView | None:
        """The request ``export_id``; None when it does not exist (any more: the account
        was deleted)."""

        def work(repo: Repository) -> DataExportView | None:
            row = repo.session.get(DataExport, export_id)
            return DataExportView.of(row) if row is not None else None

        return self._read(work, write_lock=False)

    @staticmethod
    def _latest(repo: Repository, account_id: str, *,
                exclude_failed: bool) -> DataExport | None:
        query = select(DataExport).where(DataExport.account_id == account_id)
        if exclude_failed:
            query = query.where(DataExport.status != FAILED)
        return repo.session.scalars(
            query.order_by(DataExport.requested_at.desc(), DataExport.id.desc()).limit(1)
        ).first()

    # --- the export job's side ----------------------------------------------------------

    def claim_next_export(self) -> DataExportView | None:
        """Take the oldest request waiting to be built and mark it running (bookkeeping:
        only the job's lease holder calls it, so a request still marked running was left by
        a runner that died, and is built again). A request that already used
        :data:`MAX_ATTEMPTS` is failed instead (audited), and the next one is taken."""
        while True:
            def work(repo: Repository) -> DataExport | None:
                return repo.session.scalars(
                    select(DataExport).where(DataExport.status.in_((PENDING, RUNNING)))
                    .order_by(DataExport.requested_at, DataExport.id).limit(1)).first()

            row = self._uow.bookkeeping(work)
            if row is None:
                return None
            if row.attempts >= MAX_ATTEMPTS:
                self.fail_data_export(row.id, "The export could not be built (it was "
                                      "interrupted too often); request it again.")
                continue

            def start(repo: Repository, export_id: str = row.id) -> DataExportView:
                found = repo.session.get(DataExport, export_id)
                assert found is not None  # noqa: S101 - only the lease holder changes it
                found.status = RUNNING
                found.attempts += 1
                found.started_at = self._now()
                return DataExportView.of(found)

            return self._uow.bookkeeping(start)

    def complete_data_export(self, export_id: str, *, manifest: dict[str, Any],
                             archive_bytes: int, archive_sha256: str) -> DataExportView | None:
        """The archive of ``export_id`` is stored: mark it ready for :data:`LINK_LIFETIME`
        (audited as ``CompleteDataExport``). None when the request is gone (the account was
        deleted meanwhile): the caller then deletes the archive."""
        return self._finish(export_id, "CompleteDataExport", manifest=manifest,
                            archive_bytes=archive_bytes, archive_sha256=archive_sha256)

    def fail_data_export(self, export_id: str, reason: str) -> DataExportView | None:
        """Mark ``export_id`` failed with ``reason`` (words for the administrator; never
        an exception's text). Audited as ``CompleteDataExport`` with an error code."""
        return self._finish(export_id, "CompleteDataExport", failure=reason)

    def _finish(self, export_id: str, event: str, **values: Any) -> DataExportView | None:
        found = self.data_export(export_id)
        if found is None:
            return None

        def work(repo: Repository) -> tuple[DataExportView | None, dict[str, Any]]:
            row = repo.session.get(DataExport, export_id)
            if row is None:
                return None, {"exportId": export_id, "status": "Deleted"}
            now = self._now()
            row.completed_at = now
            if values.get("failure"):
                row.status, row.failure = FAILED, values["failure"]
            else:
                row.status, row.expires_at = READY, now + LINK_LIFETIME
                row.manifest = values["manifest"]
                row.archive_bytes = values["archive_bytes"]
                row.archive_sha256 = values["archive_sha256"]
            response = {"exportId": export_id, "status": WIRE_STATUS[row.status],
                        "failure": row.failure,
                        "files": {f["name"]: f["records"]
                                  for f in (row.manifest or {}).get("files", [])}}
            return DataExportView.of(row), response

        return self._run(SYSTEM, event, {"exportId": export_id}, work,
                         account_id=found.account_id, event_type="AwsServiceEvent")

    def expire_data_exports(self) -> int:
        """Mark ready exports whose links have expired as expired (bookkeeping: the links
        were already refused by their own expiry). Returns how many changed."""
        now = self._now()

        def work(repo: Repository) -> int:
            result = repo.session.execute(
                update(DataExport).where(DataExport.status == READY,
                                         DataExport.expires_at <= now)
                .values(status=EXPIRED).returning(DataExport.id))
            return len(result.all())

        return self._uow.bookkeeping(work)

    def servable_export_ids(self) -> set[str]:
        """Ids of the exports whose archive is still served (ready, not expired): every
        other stored archive may be deleted."""
        now = self._now()
        return set(self._read(lambda repo: repo.session.scalars(
            select(DataExport.id).where(DataExport.status.in_((READY, RUNNING, PENDING)),
                                        (DataExport.expires_at.is_(None))
                                        | (DataExport.expires_at > now))).all(),
            write_lock=False))

    @contextmanager
    def snapshot(self, account_id: str, *,
                 audit_events: bool) -> Iterator[ExportSource | None]:
        """The account's records in ONE read transaction (REPEATABLE READ on PostgreSQL,
        a WAL snapshot on SQLite), so the files agree with each other; None when the
        account no longer exists. Records stream: nothing is loaded whole. The audit
        events file is among them only when ``audit_events`` is true."""
        with self._uow.reading() as session:
            if session.get_bind().dialect.name == "postgresql":
                # Before the first statement: the whole export sees one snapshot.
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            account = export_reads.account_record(session, account_id)
            if account is None:
                yield None
                return
            files: tuple[tuple[str, Callable[[], Iterator[dict[str, Any] | str]]], ...] = (
                ("users.jsonl", lambda: export_reads.users(session, account_id)),
                ("groups.jsonl", lambda: export_reads.groups(session, account_id)),
                ("group_mappings.jsonl",
                 lambda: export_reads.group_mappings(session, account_id)),
                ("domains.jsonl", lambda: export_reads.domains(session, account_id)),
                ("directory.jsonl",
                 lambda: export_reads.directory_settings(session, account_id)),
            )
            if audit_events:
                files += ((AUDIT_EVENTS_FILE,
                           lambda: export_reads.audit_events(session, account_id)),)
            yield ExportSource(account, files)


def _iso(value: datetime) -> str:
    return export_reads.iso(value) or ""
