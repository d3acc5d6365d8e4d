"""Queries on pending invitations beyond one link (kept beside the repository, which is at
its size limit): withdrawing every pending invitation a change makes pointless, and
telling which invited users still hold a link they can accept.

A pending invitation is one not accepted whose ``expires_at`` is still ahead; withdrawing
sets ``expires_at`` to now, as a newer invitation or a removal does (the link then fails
like any expired one). Functions never commit: the engine owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from bridge.store.models import Invitation, User


def _pending(now: datetime) -> ColumnElement[bool]:
    return Invitation.accepted_at.is_(None) & (Invitation.expires_at > now)


def withdraw_for_account(session: Session, account_id: str, now: datetime) -> int:
    """Withdraw every pending invitation of the account; returns how many."""
    result = session.execute(
        update(Invitation)
        .where(Invitation.account_id == account_id, _pending(now))
        .values(expires_at=now)
        .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def withdraw_on_domain(session: Session, domain: str, claimed_by: str, now: datetime) -> int:
    """Withdraw the pending invitations of other accounts than ``claimed_by`` to addresses
    on ``domain`` (the invited user's primary address); returns how many."""
    suffix = "@" + domain
    on_domain = select(User.id).where(
        func.substr(User.primary_email, func.length(User.primary_email) - len(suffix) + 1)
        == suffix)
    result = session.execute(
        update(Invitation)
        .where(Invitation.account_id != claimed_by, Invitation.user_id.in_(on_domain),
               _pending(now))
        .values(expires_at=now)
        .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def count_pending(session: Session, account_id: str, now: datetime) -> int:
    """How many pending invitations the account has."""
    return int(session.scalar(select(func.count()).select_from(Invitation).where(
        Invitation.account_id == account_id, _pending(now))) or 0)


def users_with_pending(session: Session, user_ids: Sequence[str], now: datetime) -> set[str]:
    """Which of ``user_ids`` hold a pending invitation (to the account they are in)."""
    if not user_ids:
        return set()
    rows = session.scalars(
        select(Invitation.user_id).join(User, User.id == Invitation.user_id)
        .where(Invitation.user_id.in_(user_ids), Invitation.account_id == User.account_id,
               _pending(now)))
    return set(rows)
