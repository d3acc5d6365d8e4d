"""Claimed domains: claim, verify (DNS results applied), remove with the guide's effects."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bridge.domain import (
    Actor,
    DomainStatus,
    UserStatus,
    effective_addresses,
    email_domain,
    new_verification_token,
    normalize_domain,
)
from bridge.engine.results import (
    DomainView,
)
from bridge.engine.room import Room
from bridge.errors import Conflict, NotFound
from bridge.store import invitations
from bridge.store.models import (
    Domain,
    User,
)
from bridge.store.repository import Repository

log = logging.getLogger(__name__)


class Domains(Room):
    """Claimed domains: claim, verify (DNS results applied), remove with the guide's effects."""

    def add_domain(self, actor: Actor, account_id: str, name: str) -> DomainView:
        """AddDomain: store the claim as pending with a random TXT token.

        Raises ValidationError for an invalid name, Conflict when another account has the
        domain verified or this account already claims it.
        """

        def work(repo: Repository) -> tuple[DomainView, dict[str, Any]]:
            domain_name = normalize_domain(name)
            self._account(repo, account_id, lock=True)
            holder = repo.verified_domain(domain_name)
            if holder is not None and holder.account_id != account_id:
                raise Conflict(f"The domain {domain_name} is already claimed and verified by "
                               "another account.")
            if repo.domain(account_id, domain_name) is not None:
                raise Conflict(f"The account already claims {domain_name}.")
            domain = Domain(account_id=account_id, name=domain_name,
                            status=DomainStatus.PENDING_VERIFICATION.value,
                            verification_token=new_verification_token(),
                            created_at=self._now())
            repo.session.add(domain)
            repo.session.flush()
            view = DomainView.of(domain)
            return view, {"domainName": view.name, "status": view.status}

        return self._run(actor, "AddDomain", {"accountId": account_id, "domainName": name},
                         work, account_id=account_id)

    def list_domains(self, account_id: str) -> list[DomainView]:
        def work(repo: Repository) -> list[DomainView]:
            self._account(repo, account_id)
            return [DomainView.of(d) for d in repo.domains(account_id)]

        return self._read(work)

    def get_domain(self, account_id: str, name: str) -> DomainView:
        domain_name = normalize_domain(name)

        def work(repo: Repository) -> DomainView:
            self._account(repo, account_id)
            domain = repo.domain(account_id, domain_name)
            if domain is None:
                raise NotFound(f"The account does not claim {domain_name}.")
            return DomainView.of(domain)

        return self._read(work)

    def record_domain_check(self, actor: Actor, account_id: str, name: str,
                            txt_values: Iterable[str] | None,
                            window: timedelta = timedelta(hours=24)) -> DomainView:
        """Apply the result of one DNS look-up of the domain's verification record.

        ``txt_values`` are the TXT strings found (None: the look-up itself failed, which
        counts as not found). Found → verified (the account's directory users gain the
        aliases they have on it; other accounts' pending invitations to addresses on it are
        withdrawn, :mod:`bridge.domain.invitations`); not found for longer than ``window``
        since the claim → failed. Raises Conflict when another account verified the domain first.
        """
        domain_name = normalize_domain(name)
        found = list(txt_values or [])

        def work(repo: Repository) -> tuple[DomainView, dict[str, Any]]:
            self._account(repo, account_id, lock=True)
            domain = repo.domain(account_id, domain_name)
            if domain is None:
                raise NotFound(f"The account does not claim {domain_name}.")
            now = self._now()
            domain.last_checked_at = now
            if domain.status == DomainStatus.VERIFIED.value:
                return DomainView.of(domain), {"status": domain.status}
            if domain.verification_token in found:
                holder = repo.verified_domain(domain_name)
                if holder is not None and holder.account_id != account_id:
                    raise Conflict(f"The domain {domain_name} was verified by another account.")
                domain.status = DomainStatus.VERIFIED.value
                domain.verified_at = now
                repo.session.flush()
                self._apply_new_verified_domain(repo, account_id, domain_name)
                # Other accounts' invitations to the domain's addresses no longer hold.
                return DomainView.of(domain), {
                    "status": domain.status, "invitationsWithdrawn":
                        invitations.withdraw_on_domain(repo.session, domain_name,
                                                       account_id, now)}
            if now - domain.created_at > window:
                domain.status = DomainStatus.FAILED.value
            return DomainView.of(domain), {"status": domain.status}

        return self._run(actor, "VerifyDomain", {"accountId": account_id,
                                                 "domainName": domain_name},
                         work, account_id=account_id)

    def _apply_new_verified_domain(self, repo: Repository, account_id: str, domain: str) -> None:
        """Directory users of the account whose source addresses are on the newly verified
        domain gain them as effective addresses (unless another user owns one)."""
        users = repo.session.scalars(
            select(User).where(User.account_id == account_id, User.in_directory.is_(True))
        )
        verified = repo.verified_domain_names(account_id)
        for user in users:
            if not any(email_domain(a) == domain for a in [user.primary_email,
                                                           *user.source_addresses]):
                continue
            primary, aliases = effective_addresses(
                user.primary_email, user.source_addresses, verified)
            free_aliases = [a for a in aliases if repo.address_owner_id(a) in (None, user.id)]
            if primary and repo.address_owner_id(primary) not in (None, user.id):
                primary = None
            repo.set_addresses(user, primary, free_aliases)

    def pending_domains(self) -> list[DomainView]:
        """Domains still waiting for verification (for the background re-check)."""
        return self._read(lambda repo: [DomainView.of(d) for d in repo.pending_domains()])

    def delete_domain(self, actor: Actor, account_id: str, name: str) -> None:
        """DeleteDomain with the guide's effects on users whose **primary** address is on it:
        signed out everywhere; suspended stays suspended (and keeps the address, so it cannot
        start over); registered becomes released (addresses freed: may start over as a new
        unmanaged user); in Active Directory and OIDC accounts the profile is deleted. Users
        for whom it was only an alias lose that alias and keep everything else.
        """
        domain_name = normalize_domain(name)

        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            account = self._account(repo, account_id, lock=True)
            self._require_owner(account, actor, "DeleteDomain")
            domain = repo.domain(account_id, domain_name)
            if domain is None:
                raise NotFound(f"The account does not claim {domain_name}.")
            now = self._now()
            released = suspended = deleted = aliases_removed = 0
            if domain.status == DomainStatus.VERIFIED.value:
                primaries = {u.id: u for u in repo.users_with_primary_on_domain(account_id,
                                                                                domain_name)}
                for user in primaries.values():
                    user.sessions_valid_after = now
                    if account.directory_kind is not None:
                        repo.session.delete(user)
                        deleted += 1
                    elif user.status == UserStatus.SUSPENDED.value:
                        suspended += 1
                    else:
                        user.status = UserStatus.RELEASED.value
                        repo.remove_addresses(user.id)
                        repo.expire_invitations(user.id, now)
                        released += 1
                repo.session.flush()
                for user, address in repo.account_addresses_on_domain(account_id, domain_name):
                    if user.id not in primaries:
                        repo.session.delete(address)
                        aliases_removed += 1
            repo.session.delete(domain)
            return None, {"released": released, "suspendedKept": suspended,
                          "profilesDeleted": deleted, "aliasesRemoved": aliases_removed}

        self._run(actor, "DeleteDomain", {"accountId": account_id, "domainName": domain_name},
                  work, account_id=account_id)
