"""Runs of an account's Active Directory sync asked for by an administrator (the admin API's
SyncDirectory, the console's **Sync now** and its dry-run preview), and the last reports.

The sync itself is the AD door's (``ad_sync``); the admin door and the console never import
it. The composition root builds a :class:`DirectorySyncs` from the AD door and passes it
in; :meth:`AdSyncRuns.start` checks the account's connection, hands the run to it and
records the ONE ``SyncDirectory`` event of the request (accepted, or refused: no directory,
a run already under way). The run's own changes are the sync's events (actor ``ad-sync``,
requestID the run's id, which the ``SyncDirectory`` event's response names).

Reports: the AD door stores each run's report as the account's last of its kind (a run
that may change the account, or a dry run) when the run starts and ends
(:mod:`bridge.store.ad_sync_report_models`); :meth:`AdSyncRuns.reports` reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select

from bridge.domain import Actor
from bridge.engine.room import Room
from bridge.errors import BridgeError, NotFound
from bridge.store.ad_models import AdDirectory
from bridge.store.ad_sync_report_models import DRY_RUN, RUN, RUNNING, AdSyncReport
from bridge.store.repository import Repository

EVENT = "SyncDirectory"


@dataclass(frozen=True)
class StartedSync:
    """A run handed to the AD door: its id, and whether it already finished (short runs
    finish while the request waits a moment; long ones go on in the background)."""

    run_id: str
    finished: bool


class DirectorySyncs(Protocol):
    """The AD door's runs on request (built by the composition root)."""

    def start(self, account_id: str, *, dry_run: bool, full: bool, allow_mass_change: bool,
              requested_by: str | None, mass_change_max: int | None = None,
              accepted: Callable[[str], None] | None = None) -> StartedSync:
        """Start one run in the background under the directory's sync lock
        (``mass_change_max`` bounds ``allow_mass_change``: a run that would suspend more
        users than that stops on the mass-change limit all the same). ``accepted(run_id)``
        is called once the run is sure to start and before it does (the request's audit
        event comes before the run's changes); if it raises, nothing runs. Raises
        Conflict when a run of the account's directory is under way (one at a time,
        whoever runs it: the daemon, the CLI, another request)."""
        ...

    def running(self, account_id: str) -> bool:
        """Whether a run of the account's directory is under way (in any process)."""
        ...


@dataclass(frozen=True)
class SyncRunView:
    """The last run of one kind: when, how, and what it did or would have done."""

    dry_run: bool
    run_id: str
    mode: str  # full | incremental
    state: str  # running | done
    status: str | None  # ok | mass_change_stopped | unknown | interrupted | failed (done)
    allow_mass_change: bool
    requested_by: str | None
    started_at: datetime
    finished_at: datetime | None
    report: dict[str, Any] = field(default_factory=dict)
    # ``state`` is ``running`` AND the run is under way (the directory's sync lock is held):
    # a run whose process died stays ``running`` in the store but is not in progress.
    in_progress: bool = False

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def as_json(self) -> dict[str, Any]:
        return {"RunId": self.run_id, "DryRun": self.dry_run, "Mode": self.mode,
                "State": self.state, "InProgress": self.in_progress, "Status": self.status,
                "AllowMassChange": self.allow_mass_change, "RequestedBy": self.requested_by,
                "StartedTimestamp": self.started_at, "FinishedTimestamp": self.finished_at,
                "Report": self.report}


@dataclass(frozen=True)
class SyncReports:
    """An account's last sync run and last dry run (None: none yet)."""

    last_run: SyncRunView | None
    last_dry_run: SyncRunView | None

    def as_json(self) -> dict[str, Any]:
        return {"LastSync": self.last_run.as_json() if self.last_run else None,
                "LastDryRun": self.last_dry_run.as_json() if self.last_dry_run else None}


class AdSyncRuns(Room):
    """Sync runs on request and the last reports of accounts' Active Directory syncs."""

    def reports(self, account_id: str, syncs: DirectorySyncs | None = None) -> SyncReports:
        """The account's last run and dry run (both None without a directory). With
        ``syncs``, a report still ``running`` is ``in_progress`` only while a run of the
        directory is under way, and only the later of two such (one run at a time: the
        other's process died); without it, none is."""

        def work(repo: Repository) -> dict[str, AdSyncReport]:
            return {row.kind: row for row in repo.session.scalars(select(AdSyncReport).where(
                AdSyncReport.account_id == account_id))}

        rows = self._read(work, write_lock=False)
        running = [row for row in rows.values() if row.state == RUNNING]
        live = (max(running, key=lambda row: row.started_at)
                if running and syncs is not None and syncs.running(account_id) else None)
        return SyncReports(_view(rows.get(RUN), live), _view(rows.get(DRY_RUN), live))

    def start(self, actor: Actor, account_id: str, syncs: DirectorySyncs, *,
              dry_run: bool = False, full: bool = False, allow_mass_change: bool = False,
              mass_change_max: int | None = None) -> StartedSync:
        """SyncDirectory: start a run (``dry_run``: report what it would change, apply
        nothing; ``allow_mass_change``: apply a run over the mass-change limit, suspending
        at most ``mass_change_max`` users when given — the count the administrator
        confirmed). One event,
        accepted or refused. Raises NotFound (the account, or no directory connected) or
        Conflict (a run is under way)."""
        params = {"accountId": account_id, "dryRun": dry_run, "full": full,
                  "allowMassChange": allow_mass_change, "massChangeMaxUsers": mass_change_max}
        try:
            connected = self._read(lambda repo: (
                self._account(repo, account_id),
                repo.session.get(AdDirectory, account_id) is not None)[1], write_lock=False)
            if not connected:
                raise NotFound(f"Account {account_id} has no Active Directory connected.")
            started = syncs.start(
                account_id, dry_run=dry_run, full=full, allow_mass_change=allow_mass_change,
                requested_by=actor.name, mass_change_max=mass_change_max,
                # Recorded before the run starts: its changes follow the request's event,
                # and a process dying mid-run still leaves who asked in the trail.
                accepted=lambda run_id: self.record_event(
                    actor, EVENT, account_id=account_id, params=params,
                    response={"runId": run_id}))
        except BridgeError as exc:
            if not exc.audited:
                self.record_event(actor, EVENT, account_id=account_id, params=params,
                                  error=exc)
            raise
        return started


def _view(row: AdSyncReport | None, live: AdSyncReport | None) -> SyncRunView | None:
    if row is None:
        return None
    return SyncRunView(dry_run=row.kind == DRY_RUN, run_id=row.run_id, mode=row.mode,
                       state=row.state, status=row.status,
                       allow_mass_change=row.allow_mass_change,
                       requested_by=row.requested_by, started_at=row.started_at,
                       finished_at=row.finished_at, report=dict(row.report or {}),
                       in_progress=row is live)
