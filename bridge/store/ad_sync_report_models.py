"""The AD sync's last reports, one row per account and kind: the last run that could change
the account (``run``: scheduled, CLI or **Sync now**) and the last preview (``dry_run``:
nothing applied). Written by the AD door (``ad_sync/records.py``) when a run starts and when
it ends; read by the engine's AD room for the console's **Active directory** page and the
admin API's GetAccountDirectory."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from bridge.store.models import Base

RUN, DRY_RUN = "run", "dry_run"
RUNNING, DONE = "running", "done"


class AdSyncReport(Base):
    """One account's last sync run of one kind (``run`` or ``dry_run``).

    ``state`` is ``running`` from the run's start until it ends (a run whose process died
    stays ``running``: the AD door's lock tells whether it still is); ``status`` is the
    run's outcome (``ok``, ``mass_change_stopped``, ``unknown``, ``interrupted``, ``failed``) and
    ``report`` what it did or would have done (the report's JSON, its user lists capped;
    no secret is ever in it). ``requested_by`` names the administrator who asked (Sync now),
    None for the schedule or the CLI."""

    __tablename__ = "ad_sync_reports"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(36))
    mode: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(32), default=None)
    allow_mass_change: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_by: Mapped[str | None] = mapped_column(String(256), default=None)
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
