"""Queries about a directory connection's state: whether Okta is still in use by the
account, and the tiers users hold since Okta was connected (``User.tier_held``). A mixin of
:class:`bridge.store.repository.Repository` (same session)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from bridge.domain import Tier
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

    def release_to_console(self, account_id: str, default_tier: str) -> None:
        """The account's users after its directory is disconnected: every hold ends, a
        user without a tier (no mapped group) gets ``default_tier``; the rest keep theirs."""
        self.session.execute(
            update(User).where(User.account_id == account_id,
                               User.tier.is_(None) | User.tier_held.is_(True))
            .values(tier=func.coalesce(User.tier, default_tier), tier_held=False,
                    version=User.version + 1)
            .execution_options(synchronize_session=False))
        self.session.expire_all()

    def set_tiers(self, tiers: dict[str, Tier | None]) -> None:
        """Write computed tiers, touching only rows whose tier changes. A held tier
        (``User.tier_held``: kept since Okta was connected) is never cleared: a tier from
        a mapped group replaces it and ends the hold, no group leaves it as it is."""
        by_value: dict[str | None, list[str]] = {}
        for user_id, tier in tiers.items():
            by_value.setdefault(tier.value if tier else None, []).append(user_id)
        for value, ids in by_value.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                if value is None:
                    stmt = (update(User).where(User.id.in_(chunk), User.tier.is_not(None),
                                               User.tier_held.is_(False))
                            .values(tier=None, version=User.version + 1))
                else:
                    stmt = (update(User).where(User.id.in_(chunk),
                                               User.tier.is_distinct_from(value)
                                               | User.tier_held.is_(True))
                            .values(tier=value, tier_held=False, version=User.version + 1))
                self.session.execute(stmt.execution_options(synchronize_session=False))
        self.session.expire_all()
