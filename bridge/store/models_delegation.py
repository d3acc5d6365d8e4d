"""Models of shared management: organisations (the guide's AWS accounts) and the
delegations of an account's management to another organisation. Their own module so the
tables stay apart from the core models (imported by the repository and the migrations)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bridge.store.models import Base, new_id, utcnow


class Organisation(Base):
    """An organisation administrators belong to: the guide's AWS account (12-digit id) and
    the name a delegate sees when it validates a request."""

    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccountDelegation(Base):
    """The management of ``account_id`` shared by its owner organisation with
    ``delegate_organisation``: ``pending`` until an administrator of the delegate accepts
    it, then ``accepted``. Deleted when either side ends it (the audit trail keeps it)."""

    __tablename__ = "account_delegations"
    __table_args__ = (
        UniqueConstraint("account_id", "delegate_organisation"),
        # "Accounts delegated to my organisation": ListAccounts and every access check.
        Index("ix_account_delegations_delegate", "delegate_organisation", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    owner_organisation: Mapped[str] = mapped_column(String(12))
    delegate_organisation: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_by: Mapped[str | None] = mapped_column(String(128), default=None)
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)
