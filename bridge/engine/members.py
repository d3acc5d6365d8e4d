"""Users of an account as administrators manage them: invite, accept, remove, suspend,
activate, tiers of console-managed accounts, personal PIN, sign-out."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from bridge.domain import (
    Actor,
    Decision,
    Tier,
    UserStatus,
    email_domain,
    normalize_email,
    split_invitation_emails,
    trial_tier,
)
from bridge.domain.invitations import link_state
from bridge.domain.sign_in import decide_accepted_invitation
from bridge.engine.results import (
    BatchResult,
    InvitationPreview,
    InvitationView,
    ItemError,
    UserView,
)
from bridge.engine.room import Room, hash_token
from bridge.errors import BridgeError, Conflict, Forbidden, NotFound, ValidationError
from bridge.store import invitations as pending_invitations
from bridge.store import licenses, user_pages
from bridge.store.models import (
    Account,
    Invitation,
    User,
)
from bridge.store.repository import Repository

log = logging.getLogger(__name__)
# How long an invitation link stays valid.
INVITATION_TTL = timedelta(days=14)


class Members(Room):
    """Users of an account as administrators manage them: invite, accept, remove, suspend,
    activate, tiers of console-managed accounts, personal PIN, sign-out."""

    def get_user(self, account_id: str, user_id: str) -> UserView:
        return self._read(lambda repo: self._with_invitations(
            repo, [self._user_view(repo, self._user(repo, account_id, user_id))])[0])

    def _with_invitations(self, repo: Repository, views: list[UserView]) -> list[UserView]:
        """``views`` with the state of each invited user's invitation (``pending`` while
        they hold a link they can accept, else ``expired``: past its date or withdrawn)."""
        invited = [v.id for v in views if v.status == UserStatus.INVITED.value]
        pending = pending_invitations.users_with_pending(repo.session, invited, self._now())
        return [replace(v, invitation="pending" if v.id in pending else "expired")
                if v.status == UserStatus.INVITED.value else v for v in views]

    def get_user_by_email(self, email: str,
                          account_ids: Sequence[str] | None = None) -> UserView:
        """GetUserByEmail: by primary address or any alias; NotFound outside ``account_ids``."""
        address = normalize_email(email)

        def work(repo: Repository) -> UserView:
            user = repo.user_by_address(address)
            if user is None or (account_ids is not None and user.account_id not in account_ids):
                raise NotFound(f"No user has the address {address}.")
            return self._with_invitations(repo, [self._user_view(repo, user)])[0]

        return self._read(work)

    def list_users(self, account_id: str, *, email: str | None = None,
                   after_id: str | None = None, limit: int = 100,
                   status: str | None = None) -> list[UserView]:
        """ListUsers: users of the account in id order (``after_id`` is the page cursor)."""
        needle = email.strip().lower() if email else None

        def work(repo: Repository) -> list[UserView]:
            self._account(repo, account_id)
            users = repo.list_users(account_id, email=needle, after_id=after_id, limit=limit,
                                    status=status)
            addresses = repo.addresses_for_users([u.id for u in users])
            return self._with_invitations(repo, [UserView.of(u, addresses[u.id])
                                                 for u in users])

        return self._read(work)

    def list_users_by_address(self, account_id: str, prefix: str, *,
                              after_address: str | None = None,
                              limit: int = 50) -> list[UserView]:
        """Users of the account whose primary address starts with ``prefix`` (any case),
        in address order; ``after_address`` is the page cursor (the last address shown).
        NotFound for an unknown account."""
        needle = prefix.strip().lower()

        def work(repo: Repository) -> list[UserView]:
            self._account(repo, account_id)
            users = user_pages.users_by_address_prefix(
                repo.session, account_id, needle, after_address=after_address, limit=limit)
            addresses = repo.addresses_for_users([u.id for u in users])
            return self._with_invitations(repo, [UserView.of(u, addresses[u.id])
                                                 for u in users])

        return self._read(work)

    def invite_users(self, actor: Actor, account_id: str,
                     emails: str | Sequence[str]) -> tuple[list[InvitationView], list[ItemError]]:
        """InviteUsers (team accounts): one invitation per address, each with a single-use
        token for the registration link. Addresses on a domain another account verified, or
        already registered in an account, are reported per item; the rest are invited."""
        addresses = split_invitation_emails(emails)

        def work(repo: Repository) -> tuple[tuple[list[InvitationView], list[ItemError]],
                                            dict[str, Any]]:
            account = self._account(repo, account_id, lock=True)
            if repo.has_verified_domain(account_id):
                raise Forbidden("Invitations are sent by team accounts. Users of an enterprise "
                                "account join by registering with an address on its claimed "
                                "domains.")
            now = self._now()
            invitations: list[InvitationView] = []
            errors: list[ItemError] = []
            for address in addresses:
                holder = repo.verified_domain(email_domain(address))
                if holder is not None and holder.account_id != account_id:
                    errors.append(ItemError(address, "Conflict",
                                            f"{email_domain(address)} is claimed by another "
                                            "account; its users join that account."))
                    continue
                user = repo.user_by_address(address)
                if user is not None and user.account_id is not None and (
                        user.account_id != account_id
                        or user.status != UserStatus.INVITED.value):
                    errors.append(ItemError(address, "Conflict",
                                            f"{address} is already a member of an account."))
                    continue
                if user is not None and user.status == UserStatus.SUSPENDED.value:
                    errors.append(ItemError(address, "Forbidden", f"{address} is suspended."))
                    continue
                if user is None:
                    user = self._new_user(repo, account_id=account_id, primary_email=address,
                                          status=UserStatus.INVITED, tier=Tier.PRO,
                                          invited_at=now)
                    repo.set_addresses(user, address, [])
                else:
                    licenses.invite(user, account_id)  # the license changes on acceptance
                    user.status = UserStatus.INVITED.value
                    user.invited_at = now
                repo.expire_invitations(user.id, now)
                token = secrets.token_urlsafe(32)
                invitation = Invitation(account_id=account_id, user_id=user.id,
                                        token_hash=hash_token(token), created_at=now,
                                        expires_at=now + INVITATION_TTL)
                repo.session.add(invitation)
                repo.session.flush()
                invitations.append(InvitationView(invitation.id, user.id, address, token,
                                                  account.name))
            response = {"invited": [i.email for i in invitations],
                        "errors": [e.item for e in errors]}
            return (invitations, errors), response

        return self._run(actor, "InviteUsers", {"accountId": account_id,
                                                "userEmailList": addresses},
                         work, account_id=account_id)

    def invitation_preview(self, token: str) -> InvitationPreview:
        """The invitation a link names, for its page: who is invited to which account and
        whether the link can still be accepted. A read: nothing changes, nothing is
        audited. Raises NotFound for a token no invitation has."""

        def work(repo: Repository) -> InvitationPreview:
            invitation = repo.invitation_by_hash(hash_token(token))
            user = repo.user(invitation.user_id) if invitation is not None else None
            account = repo.account(invitation.account_id) if invitation is not None else None
            if invitation is None or user is None or account is None:
                raise NotFound("This invitation link is not valid.")
            holder = repo.verified_domain(email_domain(user.primary_email))
            state = link_state(
                accepted=invitation.accepted_at is not None,
                expired=invitation.expires_at <= self._now(),
                still_invited=(user.account_id == account.id
                               and user.status == UserStatus.INVITED.value),
                directory_kind=account.directory_kind,
                claimed_elsewhere=holder is not None and holder.account_id != account.id)
            return InvitationPreview(user.primary_email, account.id, account.name,
                                     invitation.expires_at, state.value)

        return self._read(work)

    def accept_invitation(self, actor: Actor, token: str) -> UserView:
        """Accept an invitation link: the user becomes registered, Pro, and their trial ends.

        Raises NotFound for an unknown, used or expired token (one message for all three, so
        the link reveals nothing).
        """

        def work(repo: Repository) -> tuple[UserView, dict[str, Any]]:
            user = self._accept(repo, token)
            return self._user_view(repo, user), {"userId": user.id}

        return self._run(actor, "AcceptInvitation", {"token": token}, work)

    def accept_invitation_and_sign_in(self, actor: Actor,
                                      token: str) -> tuple[UserView, Decision]:
        """AcceptInvitation from the invitation page: as :meth:`accept_invitation`, and the
        acceptance is the person's first sign-in
        (:func:`bridge.domain.sign_in.decide_accepted_invitation`): when it allows, the
        user's last sign-in is now and the door opens a session for the returned decision;
        a denied one (the account now signs in through its directory) opens none. The link
        is locked while it is used, so it works once on every store. One transaction, one
        ``AcceptInvitation`` event (``signedIn``)."""

        def work(repo: Repository) -> tuple[tuple[UserView, Decision], dict[str, Any]]:
            user = self._accept(repo, token)
            account = self._account(repo, user.account_id or "")
            decision = decide_accepted_invitation(
                user.id, account.id, self._account_view(repo, account).type,
                user.primary_email, account.directory_kind)
            if decision.allowed:
                user.last_active_at = self._now()
            return (self._user_view(repo, user), decision), {"userId": user.id,
                                                             "signedIn": decision.allowed}

        return self._run(actor, "AcceptInvitation", {"token": token}, work)

    def _accept(self, repo: Repository, token: str) -> User:
        invitation = repo.invitation_by_hash(hash_token(token), lock=True)
        now = self._now()
        if invitation is None or invitation.accepted_at is not None or (
                invitation.expires_at <= now):
            raise NotFound("This invitation link is not valid any more. Ask your "
                           "administrator for a new invitation.")
        user = repo.user(invitation.user_id)
        if user is None or user.account_id != invitation.account_id or (
                user.status != UserStatus.INVITED.value):
            raise NotFound("This invitation link is not valid any more. Ask your "
                           "administrator for a new invitation.")
        invitation.accepted_at = now
        user.status = UserStatus.REGISTERED.value
        licenses.accept(repo.session, user, now)
        user.trial_ended_at = user.trial_ended_at or now
        user.joined_at = user.joined_at or now
        return user

    def remove_users(self, actor: Actor, account_id: str,
                     user_ids: Sequence[str]) -> BatchResult:
        """Remove users from a team account (the console's **Remove user**; the admin API's
        BatchSuspendUser on a Team account, as the AWS model documents): each becomes an
        unmanaged user with their own trial state and keeps using the service. One
        ``SuspendUsers`` event (the action the policies check), its response marked
        ``removedFromAccount``. Raises Forbidden for an enterprise account (suspend its
        users instead)."""

        def check(repo: Repository, account: Account) -> bool:
            if repo.has_verified_domain(account.id):
                raise Forbidden("Remove user is for team accounts; suspend users of an "
                                "enterprise account instead.")
            return True

        return self._batch(actor, "SuspendUsers", account_id, user_ids,
                           lambda repo, account, user, _: self._remove(repo, user), check)

    def _remove(self, repo: Repository, user: User) -> None:
        """Release ``user`` from a team account to unmanaged. Their trial is theirs: one
        ended by joining stays ended (Basic), one never started starts at their first
        sign-in; a pending invitation is withdrawn. Sessions are not revoked: the service
        checks each session against the user's current facts, which now name no account."""
        now = self._now()
        repo.expire_invitations(user.id, now)
        if user.status != UserStatus.RELEASED.value:
            # An explicit removal lets the person go: no team administrator can lift a
            # suspension (a former enterprise account's) once the user is unmanaged.
            user.status = UserStatus.REGISTERED.value
        licenses.assign(repo.session, user, now, account_id=None,
                        tier=trial_tier(user.trial_started_at, user.trial_ended_at, now))

    def _batch(self, actor: Actor, event: str, account_id: str, user_ids: Sequence[str],
               apply: Callable[[Repository, Account, User, bool], None],
               check_account: Callable[[Repository, Account], bool]) -> BatchResult:
        """Apply ``apply`` to each user of the account in one transaction with one event;
        a user not found or refused is reported per item. ``check_account`` refuses the
        whole batch or returns whether it removes the users from the account (passed on
        to ``apply`` and marked in the event's response)."""

        def work(repo: Repository) -> tuple[BatchResult, dict[str, Any]]:
            account = self._account(repo, account_id, lock=True)
            removes = check_account(repo, account)
            done: list[str] = []
            errors: list[ItemError] = []
            for user_id in user_ids:
                user = repo.user_in_account(account_id, user_id)
                if user is None:
                    errors.append(ItemError(user_id, "NotFound",
                                            f"User {user_id} was not found in the account."))
                    continue
                try:
                    with repo.session.begin_nested():
                        apply(repo, account, user, removes)
                except BridgeError as exc:
                    errors.append(ItemError(user_id, exc.code, exc.message))
                    continue
                done.append(user_id)
            response: dict[str, Any] = {"succeeded": done, "failed": [e.item for e in errors]}
            if removes:
                response["removedFromAccount"] = True
            return BatchResult(tuple(done), tuple(errors)), response

        return self._run(actor, event, {"accountId": account_id, "userIds": list(user_ids)},
                         work, account_id=account_id)

    def _require_console_managed_enterprise(self, repo: Repository, account: Account) -> bool:
        if not repo.has_verified_domain(account.id):
            raise Forbidden("Users of a team account are removed, not suspended "
                            "(BatchSuspendUser removes them); there is no one to activate.")
        self._require_console_managed(account)
        return False

    @staticmethod
    def _require_console_managed(account: Account) -> None:
        if account.directory_kind is not None:
            raise Forbidden("Users of this account are suspended in its directory (disable "
                            "them there, or remove them from every mapped group).")

    def suspend_users(self, actor: Actor, account_id: str, user_ids: Sequence[str]) -> BatchResult:
        """SuspendUsers. Enterprise, console-managed: the users cannot sign in and every
        session they hold is revoked at once. Team account: the users are removed, as
        :meth:`remove_users` (team administrators cannot suspend; AWS documents
        BatchSuspendUser on a Team account as removal). Directory-managed: Forbidden."""

        def check(repo: Repository, account: Account) -> bool:
            if not repo.has_verified_domain(account.id):
                return True
            self._require_console_managed(account)
            return False

        def apply(repo: Repository, account: Account, user: User, removes: bool) -> None:
            if removes:
                self._remove(repo, user)
                return
            if user.status == UserStatus.RELEASED.value:
                raise Conflict("A released user cannot be suspended.")
            user.status = UserStatus.SUSPENDED.value
            user.sessions_valid_after = self._now()

        return self._batch(actor, "SuspendUsers", account_id, user_ids, apply, check)

    def activate_users(self, actor: Actor, account_id: str,
                       user_ids: Sequence[str]) -> BatchResult:
        """ActivateUsers: a suspended user becomes registered again."""

        def apply(repo: Repository, account: Account, user: User, removes: bool) -> None:
            if user.status != UserStatus.SUSPENDED.value:
                raise Conflict("Only a suspended user can be activated.")
            user.status = UserStatus.REGISTERED.value

        return self._batch(actor, "ActivateUsers", account_id, user_ids, apply,
                           self._require_console_managed_enterprise)

    def update_user_licenses(self, actor: Actor, account_id: str,
                             changes: Mapping[str, Tier]) -> BatchResult:
        """UpdateUserLicenses: console-managed accounts (Team, EnterpriseLWA). In directory
        accounts tiers come from the directory groups (Forbidden), except the tier a user
        holds since Okta was connected, which the administrator may still change until a
        mapped group decides it (the change keeps it held)."""
        for tier in changes.values():
            if not isinstance(tier, Tier):
                raise ValidationError("LicenseType must be Pro or Basic.", field="LicenseType")
        refusal = ("Tiers of this account come from its directory groups; change the group "
                   "mappings or the users' memberships instead.")

        def check(repo: Repository, account: Account) -> bool:
            if account.directory_kind is not None and not repo.any_tier_held(
                    account.id, list(changes)):
                raise Forbidden(refusal)
            return False

        def apply(repo: Repository, account: Account, user: User, removes: bool) -> None:
            if account.directory_kind is not None and not user.tier_held:
                raise Forbidden(refusal)
            licenses.assign(repo.session, user, self._now(), tier=changes[user.id])

        return self._batch(actor, "UpdateUserLicenses", account_id, list(changes), apply, check)

    def reset_personal_pin(self, actor: Actor, account_id: str, user_id: str) -> UserView:
        """ResetPersonalPin: a new 10-digit PIN, unique across the service."""

        def work(repo: Repository) -> tuple[UserView, dict[str, Any]]:
            user = self._user(repo, account_id, user_id)
            user.personal_pin = repo.unique_pin()
            return self._user_view(repo, user), {"userId": user.id}

        return self._run(actor, "ResetPersonalPin", {"accountId": account_id,
                                                     "userId": user_id},
                         work, account_id=account_id)

    def logout_user(self, actor: Actor, account_id: str, user_id: str) -> None:
        """LogoutUser: every session and token of the user issued until now is revoked."""

        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            user = self._user(repo, account_id, user_id)
            user.sessions_valid_after = self._now()
            return None, {"userId": user.id}

        self._run(actor, "LogoutUser", {"accountId": account_id, "userId": user_id}, work,
                  account_id=account_id)
