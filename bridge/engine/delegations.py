"""Shared management of an account (the guide's AWS account delegation): which accounts an
organisation may see, and the delegation flow — the owner asks (CreateDelegation), the
other organisation validates (ValidateDelegation) and accepts (AcceptDelegation), the owner
lists the delegates (ListDelegates), either side ends it (DeleteDelegation). The rules are
:mod:`bridge.domain.delegation`'s; each change is one transaction with its one event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.domain import Actor
from bridge.domain.delegation import (
    AccountRole,
    DelegationStatus,
    validate_aws_account_id,
)
from bridge.engine.results import AccountView
from bridge.engine.room import Room
from bridge.errors import Conflict, NotFound, ValidationError
from bridge.store.models_delegation import AccountDelegation
from bridge.store.repository import Repository


@dataclass(frozen=True)
class AccountAccess:
    """What an organisation is to an account it may see."""

    account_id: str
    owner_organisation: str
    role: AccountRole


class OrganisationAccess:
    """What one organisation is to the accounts a request looks at, read once per account
    (the admin API's and the console's per-request cache)."""

    def __init__(self, rooms: Delegations, organisation: str) -> None:
        self._rooms = rooms
        self.organisation = organisation
        self._seen: dict[str, AccountAccess | None] = {}

    def to(self, account_id: str) -> AccountAccess | None:
        """Owner, delegate, or None (the account is not there for this organisation)."""
        if account_id not in self._seen:
            self._seen[account_id] = self._rooms.access(self.organisation, account_id)
        return self._seen[account_id]

    def note_visible(self, view: AccountView) -> None:
        """Remember an account a listing filtered for this organisation returned (owned or
        delegated): no second look-up."""
        owner = view.owner_organisation or ""
        self._seen[view.id] = AccountAccess(
            view.id, owner,
            AccountRole.OWNER if owner == self.organisation else AccountRole.DELEGATE)


@dataclass(frozen=True)
class DelegationView:
    """One delegation, with the names a validating administrator sees."""

    id: str
    account_id: str
    account_name: str
    owner_organisation: str
    owner_organisation_name: str
    delegate_organisation: str
    delegate_organisation_name: str
    status: DelegationStatus
    created_at: datetime
    accepted_at: datetime | None


def _organisation(actor: Actor) -> str:
    if actor.organisation is None:
        raise ValidationError("Shared management is an administrator's action: the caller "
                              "belongs to no organisation.")
    return actor.organisation


class Delegations(Room):
    """Visibility of accounts across organisations and the delegation flow."""

    # --- visibility --------------------------------------------------------------------

    def access(self, organisation: str, account_id: str) -> AccountAccess | None:
        """What ``organisation`` is to the account (owner, delegate), or None when the
        account does not exist or is neither owned by nor delegated to it (doors answer
        NotFound then, revealing nothing)."""

        def work(repo: Repository) -> AccountAccess | None:
            found = repo.account_role(organisation, account_id)
            return AccountAccess(account_id, *found) if found is not None else None

        return self._read(work, write_lock=False)

    # --- the flow ------------------------------------------------------------------------

    def create(self, actor: Actor, account_id: str, delegate: object) -> DelegationView:
        """The owner asks to share the account's management with the organisation
        ``delegate`` (pending until accepted). Raises ValidationError (not a 12-digit id,
        or the owner's own), NotFound (no such account for the caller, or no administrator
        belongs to ``delegate``), Forbidden (the caller's organisation is a delegate: it
        cannot share further), Conflict (already shared with, or asked of, ``delegate``)."""
        params = {"accountId": account_id, "delegateAwsAccountId": delegate}

        def work(repo: Repository) -> tuple[DelegationView, dict[str, Any]]:
            organisation = _organisation(actor)
            target = validate_aws_account_id(delegate)
            account = self._account(repo, account_id, lock=True)
            self._require_owner(account, actor, "CreateDelegation")
            if target == organisation:
                raise ValidationError("An account cannot be shared with the organisation "
                                      "that owns it.", field="AwsAccountId")
            if repo.organisation(target) is None:
                raise NotFound(f"No administrator belongs to AWS account {target}; it must "
                               "have one before it can be asked to share management.")
            if repo.delegation_to(account_id, target) is not None:
                raise Conflict(f"The account is already shared with, or asked of, AWS "
                               f"account {target}.")
            row = AccountDelegation(account_id=account_id, owner_organisation=organisation,
                                    delegate_organisation=target,
                                    status=DelegationStatus.PENDING.value,
                                    requested_by=actor.principal_id, created_at=self._now())
            repo.session.add(row)
            repo.session.flush()
            return self._view(repo, row), {"delegationId": row.id,
                                           "delegateAwsAccountId": target}

        return self._run(actor, "CreateDelegation", params, work, account_id=account_id)

    def validate(self, organisation: str, delegation_id: str) -> DelegationView:
        """ValidateDelegation: a request as the other organisation sees it before accepting
        (the owner organisation's name, the account's name). Only the two organisations
        see it (NotFound for anyone else)."""

        def work(repo: Repository) -> DelegationView:
            row = self._party_row(repo, organisation, delegation_id)
            return self._view(repo, row)

        return self._read(work)

    def requests_for(self, organisation: str) -> list[DelegationView]:
        """The pending requests addressed to ``organisation``, oldest first."""
        return self._read(lambda repo: [
            self._view(repo, row) for row in repo.delegations(
                delegate=organisation, status=DelegationStatus.PENDING)])

    def accept(self, actor: Actor, delegation_id: str) -> DelegationView:
        """AcceptDelegation by an administrator of the delegate organisation: from now on
        its administrators see and manage the account under their own policies. Raises
        NotFound (no such request addressed to the caller's organisation), Conflict
        (already accepted)."""

        def work(repo: Repository) -> tuple[DelegationView, dict[str, Any]]:
            organisation = _organisation(actor)
            row = repo.delegation(delegation_id, lock=True)
            if row is None or row.delegate_organisation != organisation:
                raise NotFound(f"No request {delegation_id} to share management is "
                               "addressed to your organisation.")
            if row.status == DelegationStatus.ACCEPTED.value:
                raise Conflict("This request was already accepted.")
            row.status = DelegationStatus.ACCEPTED.value
            row.accepted_by = actor.principal_id
            row.accepted_at = self._now()
            return self._view(repo, row), {"delegationId": row.id,
                                           "accountId": row.account_id}

        return self._run(actor, "AcceptDelegation", {"delegationId": delegation_id}, work,
                         account_id=self._account_of(delegation_id))

    def list_delegates(self, organisation: str, account_id: str) -> list[DelegationView]:
        """ListDelegates: the owner sees every delegation of the account (pending and
        accepted); a delegate sees its own only. NotFound for other organisations."""

        def work(repo: Repository) -> list[DelegationView]:
            found = repo.account_role(organisation, account_id)
            if found is None:
                raise NotFound(f"Account {account_id} was not found.")
            rows = repo.delegations(account_id=account_id,
                                    delegate=None if found[1] is AccountRole.OWNER
                                    else organisation)
            return [self._view(repo, row) for row in rows]

        return self._read(work)

    def delete(self, actor: Actor, delegation_id: str) -> None:
        """DeleteDelegation, by either side (a pending request too: withdrawn by the owner,
        declined by the other organisation). The delegate loses access at once. Raises
        NotFound for anyone else."""

        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            row = self._party_row(repo, _organisation(actor), delegation_id, lock=True)
            response = {"delegationId": row.id, "accountId": row.account_id,
                        "delegateAwsAccountId": row.delegate_organisation,
                        "status": row.status}
            repo.session.delete(row)
            return None, response

        self._run(actor, "DeleteDelegation", {"delegationId": delegation_id}, work,
                  account_id=self._account_of(delegation_id))

    # --- helpers -------------------------------------------------------------------------

    def _account_of(self, delegation_id: str) -> str | None:
        """The account a delegation is about (its events are filed under it), if any."""
        return self._read(lambda repo: getattr(repo.delegation(delegation_id),
                                               "account_id", None), write_lock=False)

    @staticmethod
    def _party_row(repo: Repository, organisation: str, delegation_id: str, *,
                   lock: bool = False) -> AccountDelegation:
        row = repo.delegation(delegation_id, lock=lock)
        if row is None or organisation not in (row.owner_organisation,
                                               row.delegate_organisation):
            raise NotFound(f"No request {delegation_id} to share management concerns your "
                           "organisation.")
        return row

    def _view(self, repo: Repository, row: AccountDelegation) -> DelegationView:
        account = self._account(repo, row.account_id)
        names = repo.organisation_names({row.owner_organisation, row.delegate_organisation})
        return DelegationView(
            row.id, row.account_id, account.name, row.owner_organisation,
            names.get(row.owner_organisation, row.owner_organisation),
            row.delegate_organisation,
            names.get(row.delegate_organisation, row.delegate_organisation),
            DelegationStatus(row.status), row.created_at, row.accepted_at)
