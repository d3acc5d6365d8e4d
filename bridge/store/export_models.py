"""The data export requests of accounts (StartDataExport / RetrieveDataExport).

One row per request. The archive itself lives in the export store (files under the data
directory, :mod:`bridge.data_export`), keyed by the row's id; the row holds its manifest.
Deleting the account deletes its rows (``ON DELETE CASCADE``), which is what makes every
download link of the account stop working at once; the stored archives without a row
are removed by the export job's next pass.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bridge.store.models import Base, new_id

# Statuses of a request (the wire names are the API's: Pending, InProgress, Completed,
# Failed, Expired).
PENDING = "pending"
RUNNING = "running"
READY = "ready"
FAILED = "failed"
EXPIRED = "expired"


class DataExport(Base):
    """One data export request of an account and, once built, its archive's manifest."""

    __tablename__ = "data_exports"
    __table_args__ = (Index("ix_data_exports_account_requested", "account_id", "requested_at"),
                      Index("ix_data_exports_status", "status"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    requested_by: Mapped[str] = mapped_column(String(128))  # the principal id
    requested_at: Mapped[datetime] = mapped_column()
    # Whether the archive holds the account's audit events: only when the requesting
    # principal was allowed chime:LookupEvents on the account when it asked (the export
    # must not be a way around LookupEvents).
    includes_audit_events: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # Passes that started building it (a runner that died mid-way leaves it running; the
    # next pass starts over, up to a bound).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    # The archive and its links stop being served at this time (completed_at + 6 days).
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    archive_bytes: Mapped[int | None] = mapped_column(default=None)
    archive_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    # {"files": [{"name", "records", "bytes", "sha256"}], ...}: what the manifest says.
    manifest: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # Why it failed, in words for the administrator (never a stack trace or a secret).
    failure: Mapped[str | None] = mapped_column(String(512), default=None)
