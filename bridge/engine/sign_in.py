"""Sign-in: one decision for every door, audited as a ``SignIn`` event."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import IntegrityError

from bridge.domain import (
    Actor,
    Decision,
    DenyReason,
    Identity,
    IdentitySource,
    Tier,
    UserStatus,
    email_domain,
    normalize_email,
    trial_tier,
)
from bridge.engine.room import Room
from bridge.errors import ValidationError
from bridge.store.models import (
    Account,
    User,
)
from bridge.store.repository import Repository

log = logging.getLogger(__name__)


class SignIn(Room):
    """Sign-in: one decision for every door, audited as a ``SignIn`` event."""

    def decide_sign_in(self, identity: Identity, actor: Actor) -> Decision:
        """The sign-in decision (SPEC "Sign-in"). Allow → (user, account, tier); deny → a
        reason code. Enrols new unmanaged users and auto-joins enterprise (console-managed)
        accounts as the rules say. Every decision is audited as a ``SignIn`` event."""
        params = {"source": identity.source.value, "issuer": identity.issuer,
                  "subject": identity.subject, "email": identity.email,
                  "accountId": identity.account_id}
        try:
            email = normalize_email(identity.email)
        except ValidationError:
            decision = Decision.deny(DenyReason.INVALID_EMAIL)
            self.record_event(actor, "SignIn", params=params,
                              error=ValidationError(decision.reason))
            return decision

        def work(repo: Repository) -> tuple[Decision, dict[str, Any]]:
            decision = self._decide(repo, identity, email)
            return decision, {
                "account_id": decision.account_id or identity.account_id,
                "response_elements": {
                    "allowed": decision.allowed, "reason": decision.reason,
                    "userId": decision.user_id, "accountId": decision.account_id,
                    "tier": decision.tier.value if decision.tier else None},
                # A denial is a decision, not a failure; its reason is the errorCode so
                # LookupEvents can find denials.
                "error_code": None if decision.allowed else decision.reason,
                "error_message": None if decision.allowed
                else f"sign-in denied: {decision.reason}",
            }

        for attempt in (1, 2):
            try:
                return self._uow.run_decision(actor, "SignIn", params, work,
                                              event_type="SignInDecision")
            except IntegrityError:
                # Two first sign-ins of the same person raced to enrol; the second one now
                # finds the user the first created.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _decide(self, repo: Repository, identity: Identity, email: str) -> Decision:
        if identity.account_id is not None:
            decision, linked = self._decide_directory(repo, identity, identity.account_id, email)
        else:
            decision, linked = self._decide_default(repo, identity, email)
        if decision.allowed and decision.user_id:
            user = repo.user(decision.user_id)
            if user is not None:
                now = self._now()
                user.last_active_at = now
                user.joined_at = user.joined_at or now
                if not linked:
                    # Found by address (or just enrolled): remember (issuer, subject) so the
                    # next sign-in resolves by the immutable id.
                    repo.link_identity(user.id, identity.source.value, identity.issuer,
                                       identity.subject)
        return decision

    def _allow(self, repo: Repository, user: User, email: str, tier: Tier,
               account: Account | None = None) -> Decision:
        account_type = None
        if user.account_id is not None:
            account = account or self._account(repo, user.account_id)
            account_type = self._account_view(repo, account).type
        return Decision(allowed=True, reason="ok", user_id=user.id, account_id=user.account_id,
                        account_type=account_type, tier=tier, email=email)

    def _decide_directory(self, repo: Repository, identity: Identity, account_id: str,
                          email: str) -> tuple[Decision, bool]:
        """The decision for an identity from the account's own directory; also returns
        whether the user was found through the identity link already."""
        account = repo.account(account_id)
        if account is None or account.directory_kind is None:
            return Decision.deny(DenyReason.WRONG_ACCOUNT, account_id=account_id), False
        user = repo.user_by_identity(identity.source.value, identity.issuer, identity.subject)
        linked = user is not None
        if user is None and identity.source == IdentitySource.OIDC:
            # Okta sends its user id as SCIM externalId and as the ID token's sub.
            user = repo.user_by_identity(IdentitySource.SCIM.value, account_id,
                                         identity.subject)
        if user is None:
            by_address = repo.user_by_address(email)
            if by_address is not None and by_address.account_id == account_id:
                user = by_address
        if user is None:
            if email_domain(email) not in repo.verified_domain_names(account_id):
                return Decision.deny(DenyReason.DOMAIN_NOT_CLAIMED, account_id=account_id), linked
            return Decision.deny(DenyReason.NOT_IN_DIRECTORY, account_id=account_id), linked
        if user.account_id != account_id:
            return Decision.deny(DenyReason.WRONG_ACCOUNT, user_id=user.id,
                                 account_id=account_id), linked
        deny = self._status_denial(user)
        if deny is not None:
            return Decision.deny(deny, user_id=user.id, account_id=account_id), linked
        if not user.in_directory:
            return Decision.deny(DenyReason.NOT_IN_DIRECTORY, user_id=user.id,
                                 account_id=account_id), linked
        if not user.directory_enabled:
            return Decision.deny(DenyReason.DISABLED_IN_DIRECTORY, user_id=user.id,
                                 account_id=account_id), linked
        addresses = {a.address for a in repo.addresses(user.id)}
        if not addresses or (email not in addresses and email_domain(email)
                             not in repo.verified_domain_names(account_id)):
            # An address on an unclaimed domain never reaches the managed user (the guide's
            # shirley.rodriguez example); neither does a user with no effective address.
            return Decision.deny(DenyReason.DOMAIN_NOT_CLAIMED, user_id=user.id,
                                 account_id=account_id), linked
        if identity.groups is not None and not identity.groups_truncated:
            groups = {g.id for g in repo.groups_by_names(account_id, identity.groups)}
            current = repo.user_group_ids(user.id)
            for gid in current - groups:
                repo.remove_membership(gid, user.id)
            for gid in groups - current:
                repo.add_membership(gid, user.id)
            self._refresh_tiers(repo, account_id, [user.id])
            repo.session.refresh(user)
        if user.tier is None:
            return Decision.deny(DenyReason.NO_MAPPED_GROUP, user_id=user.id,
                                 account_id=account_id), linked
        return self._allow(repo, user, email, Tier(user.tier), account), linked

    def _decide_default(self, repo: Repository, identity: Identity,
                        email: str) -> tuple[Decision, bool]:
        """The service-wide default provider (the guide's Login with Amazon role); also
        returns whether the user was found through the identity link already."""
        now = self._now()
        user = repo.user_by_identity(identity.source.value, identity.issuer, identity.subject)
        if user is not None and user.status == UserStatus.RELEASED.value:
            # A released user starts over as a new unmanaged user (SPEC: DeleteDomain).
            repo.unlink_identity(identity.source.value, identity.issuer, identity.subject)
            user = None
        if user is not None and email not in {a.address for a in repo.addresses(user.id)}:
            # The provider now reports another address: resolve by the address instead.
            user = None
        linked = user is not None
        if user is None:
            user = repo.user_by_address(email)
        claim = repo.verified_domain(email_domain(email))
        if claim is not None:
            account = self._account(repo, claim.account_id)
            if account.directory_kind is not None:
                return Decision.deny(DenyReason.DIRECTORY_SIGN_IN_REQUIRED,
                                     account_id=account.id), linked
            if user is None:
                user = self._new_user(repo, account_id=account.id, primary_email=email,
                                      status=UserStatus.REGISTERED,
                                      tier=Tier(account.default_license), joined_at=now,
                                      display_name=identity.display_name)
                repo.set_addresses(user, email, [])
            elif user.account_id is None:
                # An unmanaged user on a now-claimed domain joins the account; trial ends.
                user.account_id = account.id
                user.status = UserStatus.REGISTERED.value
                user.tier = account.default_license
                user.trial_ended_at = user.trial_ended_at or now
        if user is None:
            user = self._new_user(repo, account_id=None, primary_email=email,
                                  status=UserStatus.REGISTERED, tier=Tier.PRO,
                                  trial_started_at=now, joined_at=now,
                                  display_name=identity.display_name)
            repo.set_addresses(user, email, [])
        deny = self._status_denial(user)
        if deny is not None:
            return Decision.deny(deny, user_id=user.id, account_id=user.account_id), linked
        if user.account_id is not None:
            member_account = self._account(repo, user.account_id)
            if member_account.directory_kind is not None:
                return Decision.deny(DenyReason.DIRECTORY_SIGN_IN_REQUIRED, user_id=user.id,
                                     account_id=user.account_id), linked
        if user.account_id is None or user.status == UserStatus.INVITED.value:
            # Unmanaged (or invited, not yet accepted): the Pro trial decides the tier.
            if user.trial_started_at is None and user.account_id is None:
                user.trial_started_at = now
            tier = trial_tier(user.trial_started_at, user.trial_ended_at, now)
            return Decision(allowed=True, reason="ok", user_id=user.id, account_id=None,
                            account_type=None, tier=tier, email=email), linked
        return self._allow(repo, user, email, Tier(user.tier or Tier.PRO.value)), linked
