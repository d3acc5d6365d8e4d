"""Accounts: create, rename, delete, list and their settings (the Policies page)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select

from bridge.domain import (
    Actor,
    normalize_email,
    validate_account_name,
)
from bridge.engine.results import (
    AccountSettingsView,
    AccountView,
)
from bridge.engine.room import Clock, Room
from bridge.engine.unit_of_work import UnitOfWork
from bridge.errors import Conflict, ValidationError
from bridge.store.models import (
    Account,
    DirectoryGroup,
    Domain,
    EmailAddress,
    ExternalIdentity,
    GroupMapping,
    GroupMembership,
    Invitation,
    User,
    new_id,
)
from bridge.store.repository import Repository

log = logging.getLogger(__name__)


class Accounts(Room):
    """Accounts: create, rename, delete, list and their settings (the Policies page).
    ``default_organisation`` owns the accounts created by callers outside any organisation
    (the operator, tests, the system)."""

    def __init__(self, uow: UnitOfWork, clock: Clock, default_organisation: str) -> None:
        super().__init__(uow, clock)
        self._default_organisation = default_organisation

    def create_account(self, actor: Actor, name: str) -> AccountView:
        """CreateAccount: a new Team account (it becomes enterprise by claiming a domain),
        owned by the caller's organisation."""
        clean = validate_account_name(name)
        owner = actor.organisation or self._default_organisation
        # Chosen here so the event is filed under the new account (only organisations that
        # see it see its creation in the audit trail).
        account_id = new_id()

        def work(repo: Repository) -> tuple[AccountView, dict[str, Any]]:
            account = Account(id=account_id, name=clean, name_lower=clean.lower(),
                              owner_principal=actor.principal_id, owner_organisation=owner,
                              created_at=self._now())
            repo.session.add(account)
            repo.session.flush()
            view = self._account_view(repo, account)
            return view, {"accountId": view.id, "name": view.name}

        return self._run(actor, "CreateAccount", {"name": name}, work, account_id=account_id)

    def rename_account(self, actor: Actor, account_id: str, name: str) -> AccountView:
        """RenameAccount: trimmed, non-empty, at most 100 characters."""

        def work(repo: Repository) -> tuple[AccountView, dict[str, Any]]:
            clean = validate_account_name(name)
            account = self._account(repo, account_id, lock=True)
            account.name, account.name_lower = clean, clean.lower()
            return self._account_view(repo, account), {"name": clean}

        return self._run(actor, "RenameAccount", {"accountId": account_id, "name": name}, work,
                         account_id=account_id)

    def delete_account(self, actor: Actor, account_id: str) -> None:
        """DeleteAccount: deletes every user and their data; the audit trail is kept.

        Raises Conflict while the account holds a verified domain (remove domains first),
        Forbidden when the caller's organisation is a delegate (only the owner deletes).
        """

        def work(repo: Repository) -> tuple[None, None]:
            account = self._account(repo, account_id, lock=True)
            self._require_owner(account, actor, "DeleteAccount")
            verified = sorted(repo.verified_domain_names(account_id))
            if verified:
                raise Conflict(
                    "Remove the account's claimed domains before deleting it: "
                    + ", ".join(verified) + "."
                )
            s = repo.session
            # Bulk deletes in dependency order (cascades would load rows one by one).
            user_ids = select(User.id).where(User.account_id == account_id)
            group_ids = select(DirectoryGroup.id).where(DirectoryGroup.account_id == account_id)
            s.execute(delete(GroupMembership).where(GroupMembership.group_id.in_(group_ids)))
            s.execute(delete(DirectoryGroup).where(DirectoryGroup.account_id == account_id))
            s.execute(delete(GroupMapping).where(GroupMapping.account_id == account_id))
            s.execute(delete(Invitation).where(Invitation.account_id == account_id))
            s.execute(delete(EmailAddress).where(EmailAddress.user_id.in_(user_ids)))
            s.execute(delete(ExternalIdentity).where(ExternalIdentity.user_id.in_(user_ids)))
            s.execute(delete(GroupMembership).where(GroupMembership.user_id.in_(user_ids)))
            s.execute(delete(User).where(User.account_id == account_id))
            s.execute(delete(Domain).where(Domain.account_id == account_id))
            s.delete(account)
            return None, None

        self._run(actor, "DeleteAccount", {"accountId": account_id}, work,
                  account_id=account_id)

    def get_account(self, account_id: str) -> AccountView:
        return self._read(lambda repo: self._account_view(repo, self._account(repo, account_id)))

    def list_accounts(self, *, name_prefix: str | None = None, user_email: str | None = None,
                      account_ids: Sequence[str] | None = None, after_id: str | None = None,
                      limit: int = 100, organisation: str | None = None) -> list[AccountView]:
        """ListAccounts: by name prefix (case-insensitive) or a user's address; id order.
        ``organisation``: only the accounts it owns or was delegated (None: all)."""
        email = normalize_email(user_email, field_name="UserEmail") if user_email else None

        def work(repo: Repository) -> list[AccountView]:
            accounts = repo.list_accounts(name_prefix=name_prefix, user_email=email,
                                          account_ids=account_ids, after_id=after_id,
                                          limit=limit, organisation=organisation)
            enterprise = repo.accounts_with_verified_domains([a.id for a in accounts])
            return [AccountView.of(a, a.id in enterprise) for a in accounts]

        return self._read(work)

    def get_account_settings(self, account_id: str) -> AccountSettingsView:
        def work(repo: Repository) -> AccountSettingsView:
            account = self._account(repo, account_id)
            return AccountSettingsView(account.remote_control_enabled, account.call_me_enabled)

        return self._read(work)

    def update_account_settings(self, actor: Actor, account_id: str, *,
                                remote_control_enabled: bool | None = None,
                                call_me_enabled: bool | None = None) -> AccountSettingsView:
        """UpdateAccountSettings (the Policies page)."""
        params = {"accountId": account_id, "remoteControlEnabled": remote_control_enabled,
                  "callMeEnabled": call_me_enabled}

        def work(repo: Repository) -> tuple[AccountSettingsView, dict[str, Any]]:
            for name, value in (("RemoteControl", remote_control_enabled),
                                ("CallMe", call_me_enabled)):
                if value is not None and not isinstance(value, bool):
                    raise ValidationError(f"{name} must be true or false.", field=name)
            account = self._account(repo, account_id, lock=True)
            if remote_control_enabled is not None:
                account.remote_control_enabled = remote_control_enabled
            if call_me_enabled is not None:
                account.call_me_enabled = call_me_enabled
            view = AccountSettingsView(account.remote_control_enabled, account.call_me_enabled)
            return view, {"remoteControlEnabled": view.remote_control_enabled,
                          "callMeEnabled": view.call_me_enabled}

        return self._run(actor, "UpdateAccountSettings", params, work, account_id=account_id)
