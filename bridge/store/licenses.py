"""The one place a user's license — their account and tier — is written.

Every door ends here: the admin API (UpdateUserLicenses, invitations, Team removal,
DisconnectDirectory), SCIM and the AD sync (group memberships and mappings, item by item or
a page in bulk), and sign-in (enrolment, joining an account, groups sent by the IdP). Each
write appends a ``tier_changes`` row with the engine's time in the caller's transaction, so
the history commits or rolls back with the change itself and the license held at any
instant is known (the Active Pro rule reads it: :func:`timelines`).
``tests/unit/test_import_graph.py`` fails if any other module assigns ``User.tier`` or
``User.account_id``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bridge.domain import Tier
from bridge.domain.usage import License
from bridge.store.driver_insert import insert_rows
from bridge.store.models import User
from bridge.store.usage_models import TierChange, table


class _Keep:
    """Marker: leave this part of the license as it is."""


KEEP: Final = _Keep()


def _value(tier: Tier | str | None) -> str | None:
    return tier.value if isinstance(tier, Tier) else tier


def assign(session: Session, user: User, at: datetime, *,
           tier: Tier | str | _Keep | None = KEEP,
           account_id: str | _Keep | None = KEEP) -> bool:
    """Set ``user``'s tier and/or account; record the change at ``at`` when either differs.
    Returns whether anything changed."""
    new_tier = user.tier if isinstance(tier, _Keep) else _value(tier)
    new_account = user.account_id if isinstance(account_id, _Keep) else account_id
    if (new_tier, new_account) == (user.tier, user.account_id):
        return False
    user.tier = new_tier
    user.account_id = new_account
    session.add(TierChange(user_id=user.id, account_id=new_account, tier=new_tier,
                           changed_at=at))
    return True


def invite(user: User, account_id: str) -> None:
    """An invitation names the account the user will join, but changes no license: until
    they accept, the user signs in as before (an unmanaged user keeps their trial), so no
    history row is written (:func:`accept` writes it)."""
    user.account_id = account_id


def accept(session: Session, user: User, at: datetime) -> None:
    """The invitation is accepted: from ``at`` the user holds Pro in their account."""
    user.tier = Tier.PRO.value
    session.add(TierChange(user_id=user.id, account_id=user.account_id, tier=user.tier,
                           changed_at=at))


def created(session: Session, rows: Iterable[tuple[str, str | None, str | None]],
            at: datetime) -> None:
    """Record the first license of users just inserted: (user id, account id, tier)."""
    record(session, [{"user_id": uid, "account_id": account, "tier": tier, "changed_at": at}
                     for uid, account, tier in rows])


def record(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert prepared history rows (``user_id``, ``account_id``, ``tier``, ``changed_at``):
    the bulk directory page, which writes users with set-based statements."""
    insert_rows(session, table(TierChange), rows)


def set_tiers(session: Session, tiers: Mapping[str, Tier | None], at: datetime) -> None:
    """Write computed tiers (the directory tier rule), touching only rows whose tier
    changes, and record each change. A held tier (``User.tier_held``: kept since Okta was
    connected) is never cleared: a tier from a mapped group replaces it and ends the hold,
    no group leaves it as it is."""
    by_value: dict[str | None, list[str]] = defaultdict(list)
    for user_id, tier in tiers.items():
        by_value[_value(tier)].append(user_id)
    history: list[dict[str, Any]] = []
    for value, ids in by_value.items():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            if value is None:
                stmt = update(User).where(User.id.in_(chunk), User.tier.is_not(None),
                                          User.tier_held.is_(False))
            else:
                # A group now decides a held tier that equals it: the hold ends, the tier
                # does not change (no history row).
                session.execute(
                    update(User).where(User.id.in_(chunk), User.tier == value,
                                       User.tier_held.is_(True))
                    .values(tier_held=False, version=User.version + 1)
                    .execution_options(synchronize_session=False))
                stmt = update(User).where(User.id.in_(chunk),
                                          User.tier.is_distinct_from(value))
            changed = session.execute(
                stmt.values(tier=value, tier_held=False, version=User.version + 1)
                .returning(User.id, User.account_id)
                .execution_options(synchronize_session=False)
            ).all()
            history.extend({"user_id": uid, "account_id": account, "tier": value,
                            "changed_at": at} for uid, account in changed)
    record(session, history)
    session.expire_all()


def release_to_console(session: Session, account_id: str, default_tier: str,
                       at: datetime) -> None:
    """The account's users after its directory is disconnected: every hold ends, a user
    without a tier (no mapped group) gets ``default_tier`` (recorded); the rest keep
    theirs."""
    changed = session.execute(
        update(User).where(User.account_id == account_id, User.tier.is_(None))
        .values(tier=default_tier, tier_held=False, version=User.version + 1)
        .returning(User.id).execution_options(synchronize_session=False)).scalars().all()
    session.execute(
        update(User).where(User.account_id == account_id, User.tier_held.is_(True))
        .values(tier_held=False, version=User.version + 1)
        .execution_options(synchronize_session=False))
    record(session, [{"user_id": uid, "account_id": account_id, "tier": default_tier,
                      "changed_at": at} for uid in changed])
    session.expire_all()


def timelines(session: Session, user_ids: Iterable[str],
              until: datetime) -> dict[str, list[License]]:
    """Each user's licenses from the first up to ``until`` (inclusive), oldest first."""
    out: dict[str, list[License]] = defaultdict(list)
    ids = sorted(set(user_ids))
    for start in range(0, len(ids), 500):
        stmt = (select(TierChange.user_id, TierChange.changed_at, TierChange.account_id,
                       TierChange.tier)
                .where(TierChange.user_id.in_(ids[start : start + 500]),
                       TierChange.changed_at <= until)
                .order_by(TierChange.user_id, TierChange.changed_at, TierChange.id))
        for uid, changed_at, account, tier in session.execute(stmt).tuples():
            out[uid].append(License(changed_at, account, Tier(tier) if tier else None))
    return dict(out)
