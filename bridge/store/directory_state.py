"""Queries about a directory connection's state: whether Okta is still in use by the
account, and the tiers users hold since Okta was connected (``User.tier_held``). A mixin of
:class:`bridge.store.repository.Repository` (same session)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from bridge.store.models import AccountOpenIdConfig, ApiKey, User


class DirectoryStateQueries:
    """Directory connection state; ``session`` is the repository's."""

    session: Session

    def okta_in_use(self, account_id: str) -> bool:
        """Whether the account still holds an OpenID configuration or a SCIM key."""
        return bool(self.session.scalar(select(
            exists().where(AccountOpenIdConfig.account_id == account_id)
            | exists().where(ApiKey.account_id == account_id))))

    def any_tier_held(self, account_id: str, user_ids: Sequence[str]) -> bool:
        """Whether one of ``user_ids`` in the account holds its tier (``User.tier_held``)."""
        return bool(user_ids) and bool(self.session.scalar(select(exists().where(
            User.account_id == account_id, User.id.in_(list(user_ids)),
            User.tier_held.is_(True)))))

    def hold_tiers(self, account_id: str) -> None:
        """Hold every current tier of the account's users (Okta was just connected)."""
        self.session.execute(
            update(User).where(User.account_id == account_id, User.tier.is_not(None))
            .values(tier_held=True, version=User.version + 1)
            .execution_options(synchronize_session=False))
        self.session.expire_all()
