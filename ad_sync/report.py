"""What one AD sync run did (or, a dry run or a stopped one, would have done): the CLI
prints it as JSON, the AD door stores it as the account's last report of its kind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ad_sync.records import REPORT_LIST_MAX

# Why a user is in a report's ``wouldSuspendUsers`` (words an administrator reads).
GONE = "deleted from the directory, or no longer under BaseDn or the user filter"
DISABLED = "disabled in the directory"


@dataclass
class SyncReport:
    """What one run did (the CLI prints it as JSON)."""

    account_id: str
    mode: str
    dry_run: bool
    run_id: str = ""
    status: str = "ok"  # ok | mass_change_stopped | unknown | interrupted | failed
    added: int = 0
    updated: int = 0
    restored: int = 0
    suspended: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    would_suspend: int = 0
    # Some of the users the run suspends or would suspend (DN, objectGUID, why): what a
    # mass-change stop or a dry run shows an administrator; at most REPORT_LIST_MAX.
    would_suspend_users: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    duration_seconds: float = 0.0
    pages: int = 0
    reader_peak_rss_mb: float | None = None  # the helper process that read the users
    watermark: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_json(self) -> dict[str, Any]:
        return {
            "accountId": self.account_id, "runId": self.run_id, "mode": self.mode,
            "dryRun": self.dry_run,
            "status": self.status, "added": self.added, "updated": self.updated,
            "restored": self.restored, "suspended": self.suspended, "deleted": self.deleted,
            "unchanged": self.unchanged, "skipped": self.skipped, "conflicts": self.conflicts,
            "warnings": self.warnings, "wouldSuspend": self.would_suspend,
            "wouldSuspendUsers": self.would_suspend_users,
            "error": self.error, "durationSeconds": round(self.duration_seconds, 3),
            "pages": self.pages, "watermark": self.watermark,
            "readerPeakRssMb": self.reader_peak_rss_mb,
        }


def note_suspensions(report: SyncReport, users: Sequence[Any], reason: str) -> None:
    """Keep a few of the users a run suspends (or would), with why, for its report
    (``users``: anything with ``dn`` and ``guid``)."""
    room = REPORT_LIST_MAX - len(report.would_suspend_users)
    report.would_suspend_users.extend(
        {"dn": u.dn, "objectGUID": u.guid, "reason": reason} for u in users[:max(room, 0)])
