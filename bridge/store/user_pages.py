"""Pages of an account's users for the console's search box (kept beside the repository,
which is at its size limit)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.store.models import User


def users_by_address_prefix(session: Session, account_id: str, prefix: str, *,
                            after_address: str | None = None, limit: int = 50) -> list[User]:
    """Users of an account whose primary address starts with ``prefix`` (lower case), in
    address order, after ``after_address`` (the page cursor). One range of
    ``ix_users_account_primary`` serves both the filter and the order, so a page costs the
    same however many users match."""
    stmt = (select(User).where(User.account_id == account_id,
                               User.primary_email >= prefix,
                               User.primary_email < prefix + "\U0010ffff")
            .order_by(User.primary_email))
    if after_address:
        stmt = stmt.where(User.primary_email > after_address)
    return list(session.scalars(stmt.limit(limit)))
