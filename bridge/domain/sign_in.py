"""The sign-in decision as a pure function of loaded facts (SPEC "Sign-in").

:func:`decide` takes what the store knows about the person signing in — the user their
identity or address leads to, the account their address's domain is claimed by, the account
a directory door named — and returns a :class:`SignInPlan`: the :class:`Decision` every door
receives, and the effects the engine must apply with it (enrol a new user, let an unmanaged
user join an account, start a trial, drop a released user's identity link, replace the
user's groups with those the provider asserted). Nothing here reads or writes: the engine's
sign-in room loads the facts and applies the plan (authentik's ``matcher.py`` /
``flow_manager.py`` split), so every rule can be property-tested without a database.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from bridge.domain import (
    AccountType,
    Decision,
    DenyReason,
    DirectoryKind,
    Tier,
    UserStatus,
    account_type,
    email_domain,
    tier_for_groups,
    trial_tier,
)


@dataclass(frozen=True)
class UserFacts:
    """A stored user as the decision needs it. ``addresses``: the effective ones."""

    id: str
    account_id: str | None
    status: UserStatus
    tier: Tier | None
    addresses: frozenset[str]
    in_directory: bool = False
    directory_enabled: bool = True
    trial_started_at: datetime | None = None
    trial_ended_at: datetime | None = None
    # The tier is the one held since Okta was connected (no mapped group decided it yet).
    tier_held: bool = False


@dataclass(frozen=True)
class AccountFacts:
    """A stored account as the decision needs it."""

    id: str
    directory_kind: str | None
    verified_domains: frozenset[str]
    default_license: Tier = Tier.PRO
    # Group name -> tier (the account's mappings), for group claims (directory sign-ins).
    mappings: Mapping[str, Tier] = field(default_factory=dict)

    @property
    def type(self) -> AccountType:
        return account_type(self.directory_kind, bool(self.verified_domains))


@dataclass(frozen=True)
class DirectoryFacts:
    """A sign-in asserted by an account's own directory (AD password bind, Okta).

    ``user``: the user the identity link, Okta's SCIM ``externalId`` or the address in that
    account leads to (None: nobody). ``claimed_groups``: the names of the account's known
    groups the provider asserted, or None when it sent no (complete) group claim."""

    email: str
    account_id: str
    account: AccountFacts | None
    user: UserFacts | None
    linked: bool
    claimed_groups: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DefaultFacts:
    """A sign-in through the service-wide default provider (the guide's Login with Amazon).

    ``linked_user``: the user the identity link leads to (before any rule); ``address_user``:
    the user owning the address; ``claim``: the account whose verified domain the address is
    on; ``member_account``: the account of whichever user the rules settle on, when it has
    one (the loader reads both candidates' accounts: ``accounts``)."""

    email: str
    now: datetime
    linked_user: UserFacts | None
    address_user: UserFacts | None
    claim: AccountFacts | None
    accounts: Mapping[str, AccountFacts] = field(default_factory=dict)


class Enrolment(enum.StrEnum):
    """A new user the plan creates: in the claiming account, or unmanaged with a trial."""

    IN_ACCOUNT = "in_account"
    UNMANAGED = "unmanaged"


@dataclass(frozen=True)
class SignInPlan:
    """The decision and the effects to apply with it, in one transaction.

    When ``enrol`` is set the decision's ``user_id`` is None: the engine creates the user and
    fills it in. ``link``: remember (issuer, subject) on the user when allowed and not yet
    linked. ``join_account``: an unmanaged user joins that account (trial ends, the
    account's default tier). ``start_trial``: an unmanaged user's trial starts now.
    ``unlink``: drop a released user's identity link (they start over). ``sync_groups``:
    make the user's groups exactly the claimed ones (then the tier rule applies)."""

    decision: Decision
    enrol: Enrolment | None = None
    enrol_account_id: str | None = None
    enrol_tier: Tier | None = None
    join_account: str | None = None
    start_trial: bool = False
    unlink: bool = False
    sync_groups: bool = False
    link: bool = False


def status_denial(status: UserStatus) -> DenyReason | None:
    """The denial a user's own status implies (suspended, released), if any."""
    if status == UserStatus.SUSPENDED:
        return DenyReason.SUSPENDED
    if status == UserStatus.RELEASED:
        return DenyReason.RELEASED
    return None


def decide_directory(facts: DirectoryFacts) -> SignInPlan:
    """An identity from the account's own directory: the user must belong to that account,
    be in the directory and enabled there, reach it through an effective address (an
    address on an unclaimed domain never reaches the managed user: the guide's
    shirley.rodriguez example) and hold a tier from a mapped group (or the tier held since
    Okta was connected, until a mapped group decides it)."""
    account, user, email = facts.account, facts.user, facts.email
    if account is None or account.directory_kind is None:
        return SignInPlan(Decision.deny(DenyReason.WRONG_ACCOUNT, account_id=facts.account_id))
    if user is None:
        reason = (DenyReason.DOMAIN_NOT_CLAIMED
                  if email_domain(email) not in account.verified_domains
                  else DenyReason.NOT_IN_DIRECTORY)
        return SignInPlan(Decision.deny(reason, account_id=account.id))

    def deny(reason: DenyReason, *, sync_groups: bool = False) -> SignInPlan:
        return SignInPlan(Decision.deny(reason, user_id=user.id, account_id=account.id),
                          sync_groups=sync_groups)

    if user.account_id != account.id:
        return deny(DenyReason.WRONG_ACCOUNT)
    denial = status_denial(user.status)
    if denial is not None:
        return deny(denial)
    if not user.in_directory:
        return deny(DenyReason.NOT_IN_DIRECTORY)
    if not user.directory_enabled:
        return deny(DenyReason.DISABLED_IN_DIRECTORY)
    if not user.addresses or (email not in user.addresses
                              and email_domain(email) not in account.verified_domains):
        return deny(DenyReason.DOMAIN_NOT_CLAIMED)
    sync = facts.claimed_groups is not None
    tier = (tier_for_groups(facts.claimed_groups or (), account.mappings) if sync
            else user.tier)
    if tier is None and user.tier_held:
        tier = user.tier  # kept until a mapped group decides it (Okta just connected)
    if tier is None:
        return deny(DenyReason.NO_MAPPED_GROUP, sync_groups=sync)
    decision = Decision(allowed=True, reason="ok", user_id=user.id, account_id=account.id,
                        account_type=account.type, tier=tier, email=email)
    return SignInPlan(decision, sync_groups=sync, link=not facts.linked)


def decide_default(facts: DefaultFacts) -> SignInPlan:
    """The service-wide default provider: unmanaged users get (or keep) their 30-day Pro
    trial; an address on a verified claimed domain joins that (console-managed) account,
    enrolling a new user as needed (a user invited by another account, not yet
    registered, joins it too); users of directory-managed accounts must sign in
    through their directory."""
    email, now = facts.email, facts.now
    user = facts.linked_user
    unlink = user is not None and user.status == UserStatus.RELEASED
    if unlink:
        # A released user starts over as a new unmanaged user (SPEC: DeleteDomain).
        user = None
    if user is not None and email not in user.addresses:
        # The provider now reports another address: resolve by the address instead.
        user = None
    linked = user is not None
    if user is None:
        user = facts.address_user
    claim = facts.claim
    join: str | None = None
    if claim is not None:
        if claim.directory_kind is not None:
            return SignInPlan(Decision.deny(DenyReason.DIRECTORY_SIGN_IN_REQUIRED,
                                            account_id=claim.id), unlink=unlink)
        if user is None:
            decision = Decision(allowed=True, reason="ok", user_id=None, account_id=claim.id,
                                account_type=claim.type, tier=claim.default_license,
                                email=email)
            return SignInPlan(decision, enrol=Enrolment.IN_ACCOUNT, enrol_account_id=claim.id,
                              enrol_tier=claim.default_license, unlink=unlink, link=True)
        if user.account_id is None or (user.status == UserStatus.INVITED
                                       and user.account_id != claim.id):
            # Unmanaged, or only invited by another account (its invitation was withdrawn
            # when the domain was claimed: bridge.domain.invitations): joins the claim.
            join = claim.id
    if user is None:
        decision = Decision(allowed=True, reason="ok", user_id=None, account_id=None,
                            account_type=None, tier=trial_tier(now, None, now), email=email)
        return SignInPlan(decision, enrol=Enrolment.UNMANAGED, enrol_tier=Tier.PRO,
                          unlink=unlink, link=True)
    account_id = join or user.account_id
    status = UserStatus.REGISTERED if join else user.status
    denial = status_denial(status)
    if denial is not None:
        return SignInPlan(Decision.deny(denial, user_id=user.id, account_id=account_id),
                          join_account=join, unlink=unlink)
    member = claim if join else (facts.accounts.get(account_id) if account_id else None)
    if member is not None and member.directory_kind is not None:
        return SignInPlan(Decision.deny(DenyReason.DIRECTORY_SIGN_IN_REQUIRED, user_id=user.id,
                                        account_id=account_id), unlink=unlink)
    if account_id is None or status == UserStatus.INVITED:
        # Unmanaged (or invited, not yet accepted): the Pro trial decides the tier.
        start = user.trial_started_at is None and account_id is None
        started = now if start else user.trial_started_at
        tier = trial_tier(started, user.trial_ended_at, now)
        decision = Decision(allowed=True, reason="ok", user_id=user.id, account_id=None,
                            account_type=None, tier=tier, email=email)
        return SignInPlan(decision, start_trial=start, unlink=unlink, link=not linked)
    tier = (member.default_license if join and member is not None
            else (user.tier or Tier.PRO))
    decision = Decision(allowed=True, reason="ok", user_id=user.id, account_id=account_id,
                        account_type=member.type if member is not None else None, tier=tier,
                        email=email)
    return SignInPlan(decision, join_account=join, unlink=unlink, link=not linked)


class SignInRoute(enum.StrEnum):
    """Where a person signs in, by the account their address belongs to (home-realm
    discovery): the account's Okta, its Active Directory password form, or the service's
    default provider (Team and EnterpriseLWA accounts, unmanaged users)."""

    OKTA = "okta"
    DIRECTORY_PASSWORD = "directory_password"  # noqa: S105 - a route name, not a secret
    DEFAULT_PROVIDER = "default_provider"


def route_for(directory_kind: str | None) -> SignInRoute:
    """The sign-in route of an account with ``directory_kind`` (None: no account, or one
    without a directory)."""
    if directory_kind == DirectoryKind.OKTA.value:
        return SignInRoute.OKTA
    if directory_kind == DirectoryKind.ACTIVE_DIRECTORY.value:
        return SignInRoute.DIRECTORY_PASSWORD
    return SignInRoute.DEFAULT_PROVIDER


def provider_vouches_for_email(route: SignInRoute, email_verified: object) -> bool:
    """Whether the address an OpenID provider reports may be used: the account's own
    directory (Okta) is the authority for its users' addresses; the service's default
    provider vouches for an address only when it says it verified it (an unverified one
    must not join an enterprise account by its domain)."""
    if route is SignInRoute.DEFAULT_PROVIDER:
        return email_verified is True
    return True


def decide_accepted_invitation(user_id: str, account_id: str, account_kind: AccountType,
                               email: str, directory_kind: str | None = None) -> Decision:
    """Accepting an invitation is the invited person's first sign-in. The link reached the
    invited mailbox, works once, expires, and is used only by a form post from the
    bridge's own page (a mail scanner's GET accepts nothing): its holder has shown control
    of the address once, as a provider that vouches for an address does. The session it
    opens is the member's, with the Pro tier acceptance gives; later sign-ins go through
    the account's provider. An account that has since connected a directory (Okta, AD)
    signs its users in through it only: the invitation is accepted, no session opens."""
    if directory_kind is not None:
        return Decision.deny(DenyReason.DIRECTORY_SIGN_IN_REQUIRED, user_id=user_id,
                             account_id=account_id)
    return Decision(allowed=True, reason="invitation_accepted", user_id=user_id,
                    account_id=account_id, account_type=account_kind, tier=Tier.PRO,
                    email=email)
