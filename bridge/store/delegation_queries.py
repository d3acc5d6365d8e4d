"""Queries of shared management: organisations, delegations, and which accounts an
organisation may see (owned, or delegated to it and accepted). A mixin of
:class:`bridge.store.repository.Repository` (same session)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.domain.delegation import AccountRole, DelegationStatus
from bridge.store.models import Account
from bridge.store.models_delegation import AccountDelegation, Organisation


def visible_to(organisation: str) -> Any:
    """The SQL condition on ``Account``: owned by ``organisation`` or delegated to it
    (accepted)."""
    delegated = select(AccountDelegation.account_id).where(
        AccountDelegation.delegate_organisation == organisation,
        AccountDelegation.status == DelegationStatus.ACCEPTED.value)
    return (Account.owner_organisation == organisation) | Account.id.in_(delegated)


class DelegationQueries:
    """Organisations and delegations; ``session`` is the repository's."""

    session: Session

    def organisation(self, organisation_id: str) -> Organisation | None:
        return self.session.get(Organisation, organisation_id)

    def organisation_names(self, ids: set[str]) -> dict[str, str]:
        """Id → name of the known organisations among ``ids``."""
        if not ids:
            return {}
        rows = self.session.execute(select(Organisation.id, Organisation.name)
                                    .where(Organisation.id.in_(sorted(ids))))
        return dict(rows.tuples().all())

    def account_role(self, organisation: str, account_id: str
                     ) -> tuple[str, AccountRole] | None:
        """(the account's owner organisation, what ``organisation`` is to it), or None when
        the account does not exist or ``organisation`` may not see it."""
        owner = self.session.scalar(select(Account.owner_organisation)
                                    .where(Account.id == account_id))
        if owner is None:
            return None
        if owner == organisation:
            return owner, AccountRole.OWNER
        delegated = self.session.scalar(select(AccountDelegation.id).where(
            AccountDelegation.account_id == account_id,
            AccountDelegation.delegate_organisation == organisation,
            AccountDelegation.status == DelegationStatus.ACCEPTED.value))
        return (owner, AccountRole.DELEGATE) if delegated is not None else None

    def delegation(self, delegation_id: str, *, lock: bool = False
                   ) -> AccountDelegation | None:
        if not isinstance(delegation_id, str) or len(delegation_id) > 36:
            return None
        stmt = select(AccountDelegation).where(AccountDelegation.id == delegation_id)
        return self.session.scalar(stmt.with_for_update() if lock else stmt)

    def delegation_to(self, account_id: str, organisation: str) -> AccountDelegation | None:
        return self.session.scalar(select(AccountDelegation).where(
            AccountDelegation.account_id == account_id,
            AccountDelegation.delegate_organisation == organisation))

    def delegations(self, *, account_id: str | None = None,
                    delegate: str | None = None,
                    status: DelegationStatus | None = None) -> list[AccountDelegation]:
        """Delegations of an account and/or to an organisation, oldest first."""
        stmt = select(AccountDelegation).order_by(AccountDelegation.created_at,
                                                  AccountDelegation.id)
        if account_id is not None:
            stmt = stmt.where(AccountDelegation.account_id == account_id)
        if delegate is not None:
            stmt = stmt.where(AccountDelegation.delegate_organisation == delegate)
        if status is not None:
            stmt = stmt.where(AccountDelegation.status == status.value)
        return list(self.session.scalars(stmt))
