"""Sign-in: one decision for every door, audited as a ``SignIn`` event."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from bridge.domain import (
    DISPLAY_NAME_MAX,
    Actor,
    Decision,
    DenyReason,
    Identity,
    IdentitySource,
    Tier,
    UserStatus,
    email_domain,
    normalize_email,
)
from bridge.domain import sign_in as rules
from bridge.engine.room import Room
from bridge.errors import ValidationError
from bridge.store import licenses, throttle
from bridge.store.models import (
    Account,
    User,
)
from bridge.store.repository import Repository

log = logging.getLogger(__name__)


# Throttle scopes of password attempts (AD sign-in), per user and per source address.
USER_SCOPE = "ad-sign-in-user"
ADDRESS_SCOPE = "ad-sign-in-address"
CONSOLE_USER_SCOPE = "console-sign-in-user"
CONSOLE_ADDRESS_SCOPE = "console-sign-in-address"


@dataclass(frozen=True)
class PasswordAttempt:
    """A reserved password attempt (:meth:`SignIn.begin_password_attempt`). ``allowed``
    False: over a limit, nothing reserved, ``retry_after`` seconds until the window ends."""

    allowed: bool
    keys: tuple[str, str]
    window: timedelta
    window_starts: tuple[datetime, datetime]
    retry_after: int = 0
    scopes: tuple[str, str] = (USER_SCOPE, ADDRESS_SCOPE)


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

    # --- password attempts (brute-force throttle of directory sign-in) ------------------

    def begin_password_attempt(self, username: str, source_address: str | None, *,
                               max_per_user: int, max_per_address: int,
                               window: timedelta) -> PasswordAttempt:
        """Reserve one AD password attempt for ``username`` (the address typed) from
        ``source_address`` (the client's IP address, None when unknown), BEFORE the
        password is checked.

        The throttle keys are this room's choice: the user the address resolves to (any
        of a user's addresses counts against the same user), else the normalised address
        typed (an unknown address is throttled like a known one), and the source address.
        See :meth:`_reserve` for the counting. Close every allowed attempt with
        :meth:`end_password_attempt`."""
        try:
            typed = normalize_email(username)
        except ValidationError:
            typed = username.strip().lower()
        source_key = f"ip:{source_address or '-'}"

        def keys_of(repo: Repository) -> tuple[str, str]:
            user = repo.user_by_address(typed)
            return f"user:{user.id if user is not None else typed}", source_key

        return self._reserve(keys_of, (USER_SCOPE, ADDRESS_SCOPE), max_per_user,
                             max_per_address, window)

    def begin_console_password_attempt(self, admin_name: str, source_address: str | None, *,
                                       max_per_user: int, max_per_address: int,
                                       window: timedelta) -> PasswordAttempt:
        """Reserve one console sign-in attempt for the admin user name typed (compared
        case-insensitively, known or not: an unknown name is throttled like a known one)
        from ``source_address``, in the console's own counters (an AD user's failures
        never lock an admin out, nor the reverse). See :meth:`_reserve`."""
        keys = (f"admin:{admin_name.strip().lower()}", f"ip:{source_address or '-'}")
        return self._reserve(lambda repo: keys, (CONSOLE_USER_SCOPE, CONSOLE_ADDRESS_SCOPE),
                             max_per_user, max_per_address, window)

    def _reserve(self, keys_of: Callable[[Repository], tuple[str, str]],
                 scopes: tuple[str, str], max_per_user: int, max_per_address: int,
                 window: timedelta) -> PasswordAttempt:
        """One atomic count per key (:mod:`bridge.store.throttle`), so parallel guesses get
        distinct counts and at most ``max_per_user`` / ``max_per_address`` attempts a window
        can fail (0: no limit). Over either limit: nothing is reserved, ``allowed`` False."""
        user_scope, address_scope = scopes

        def work(repo: Repository) -> PasswordAttempt:
            keys = keys_of(repo)
            now = self._now()
            by_user = throttle.hit(repo.session, user_scope, keys[0], window=window, now=now)
            by_address = throttle.hit(repo.session, address_scope, keys[1], window=window,
                                      now=now)
            starts = (by_user.window_start, by_address.window_start)
            # Sliding windows (the previous window's attempts still count for the part of
            # it the last ``window`` covers): no burst of twice the limit at a boundary.
            user_total = throttle.sliding_count(repo.session, user_scope, keys[0], by_user,
                                                now=now)
            address_total = throttle.sliding_count(repo.session, address_scope, keys[1],
                                                   by_address, now=now)
            if (max_per_user > 0 and user_total > max_per_user) or (
                    max_per_address > 0 and address_total > max_per_address):
                # A refused attempt is not an attempt: take both hits back.
                self._release(repo, scopes, keys, window, starts)
                wait = max(by_user.retry_after(now), by_address.retry_after(now))
                return PasswordAttempt(False, keys, window, starts, wait, scopes)
            return PasswordAttempt(True, keys, window, starts, 0, scopes)

        return self._uow.bookkeeping(work)

    def end_password_attempt(self, attempt: PasswordAttempt, *, failed: bool) -> None:
        """Close a reserved attempt: a failed password keeps counting; anything else (the
        password was right, the directory could not be asked) is taken back."""
        if failed or not attempt.allowed:
            return
        self._uow.bookkeeping(lambda repo: self._release(
            repo, attempt.scopes, attempt.keys, attempt.window, attempt.window_starts))

    @staticmethod
    def _release(repo: Repository, scopes: tuple[str, str], keys: tuple[str, str],
                 window: timedelta, starts: tuple[datetime, datetime]) -> None:
        throttle.release(repo.session, scopes[0], keys[0], window=window, start=starts[0])
        throttle.release(repo.session, scopes[1], keys[1], window=window, start=starts[1])

    # --- facts in, plan out, effects applied ---------------------------------------------

    def _decide(self, repo: Repository, identity: Identity, email: str) -> Decision:
        """Load the facts, decide (:mod:`bridge.domain.sign_in`), apply the plan."""
        if identity.account_id is not None:
            facts, users = self._directory_facts(repo, identity, identity.account_id, email)
            plan = rules.decide_directory(facts)
        else:
            default, users = self._default_facts(repo, identity, email)
            plan = rules.decide_default(default)
        return self._apply(repo, identity, email, plan, users)

    def _user_facts(self, repo: Repository, user: User) -> rules.UserFacts:
        return rules.UserFacts(
            id=user.id, account_id=user.account_id, status=UserStatus(user.status),
            tier=Tier(user.tier) if user.tier else None,
            addresses=frozenset(a.address for a in repo.addresses(user.id)),
            in_directory=user.in_directory, directory_enabled=user.directory_enabled,
            trial_started_at=user.trial_started_at, trial_ended_at=user.trial_ended_at,
            tier_held=user.tier_held)

    @staticmethod
    def _account_facts(repo: Repository, account: Account, *,
                       with_mappings: bool = False) -> rules.AccountFacts:
        mappings = ({m.name: Tier(m.tier) for m in repo.mappings(account.id)}
                    if with_mappings else {})
        return rules.AccountFacts(
            id=account.id, directory_kind=account.directory_kind,
            verified_domains=frozenset(repo.verified_domain_names(account.id)),
            default_license=Tier(account.default_license or Tier.PRO.value),
            mappings=mappings)

    def _directory_facts(self, repo: Repository, identity: Identity, account_id: str,
                         email: str) -> tuple[rules.DirectoryFacts, dict[str, User]]:
        account = repo.account(account_id)
        if account is None or account.directory_kind is None:
            return rules.DirectoryFacts(email, account_id, None, None, False), {}
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
        claimed: tuple[str, ...] | None = None
        if identity.groups is not None and not identity.groups_truncated:
            claimed = tuple(g.name for g in repo.groups_by_names(account_id, identity.groups))
        facts = rules.DirectoryFacts(
            email=email, account_id=account_id,
            account=self._account_facts(repo, account, with_mappings=claimed is not None),
            user=self._user_facts(repo, user) if user is not None else None,
            linked=linked, claimed_groups=claimed)
        return facts, ({user.id: user} if user is not None else {})

    def _default_facts(self, repo: Repository, identity: Identity,
                       email: str) -> tuple[rules.DefaultFacts, dict[str, User]]:
        linked = repo.user_by_identity(identity.source.value, identity.issuer,
                                       identity.subject)
        by_address = repo.user_by_address(email)
        users = {u.id: u for u in (linked, by_address) if u is not None}
        accounts: dict[str, rules.AccountFacts] = {}
        for user in users.values():
            if user.account_id is not None and user.account_id not in accounts:
                accounts[user.account_id] = self._account_facts(
                    repo, self._account(repo, user.account_id))
        claim = repo.verified_domain(email_domain(email))
        facts = rules.DefaultFacts(
            email=email, now=self._now(),
            linked_user=self._user_facts(repo, linked) if linked is not None else None,
            address_user=self._user_facts(repo, by_address) if by_address is not None
            else None,
            claim=self._account_facts(repo, self._account(repo, claim.account_id))
            if claim is not None else None,
            accounts=accounts)
        return facts, users

    def _apply(self, repo: Repository, identity: Identity, email: str,
               plan: rules.SignInPlan, users: dict[str, User]) -> Decision:
        """Apply the plan's effects in the decision's transaction; returns the decision
        (with the id of a user the plan enrolled)."""
        now = self._now()
        decision = plan.decision
        # A provider's name claim has no length limit; the stored name has one.
        display_name = (identity.display_name[:DISPLAY_NAME_MAX]
                        if identity.display_name is not None else None)
        if plan.unlink:
            repo.unlink_identity(identity.source.value, identity.issuer, identity.subject)
        user = users.get(decision.user_id) if decision.user_id else None
        if plan.enrol is rules.Enrolment.IN_ACCOUNT:
            user = self._new_user(repo, account_id=plan.enrol_account_id, primary_email=email,
                                  status=UserStatus.REGISTERED, tier=plan.enrol_tier,
                                  joined_at=now, display_name=display_name)
            repo.set_addresses(user, email, [])
        elif plan.enrol is rules.Enrolment.UNMANAGED:
            user = self._new_user(repo, account_id=None, primary_email=email,
                                  status=UserStatus.REGISTERED, tier=plan.enrol_tier,
                                  trial_started_at=now, joined_at=now,
                                  display_name=display_name)
            repo.set_addresses(user, email, [])
        if user is None:
            return decision
        decision = replace(decision, user_id=user.id)
        if plan.join_account is not None:
            # An unmanaged user on a now-claimed domain joins the account; trial ends.
            licenses.assign(repo.session, user, now, account_id=plan.join_account,
                            tier=decision.tier)
            user.status = UserStatus.REGISTERED.value
            user.trial_ended_at = user.trial_ended_at or now
        if plan.start_trial:
            user.trial_started_at = now
        if plan.sync_groups and decision.account_id is not None:
            wanted = {g.id for g in repo.groups_by_names(decision.account_id,
                                                         identity.groups or [])}
            current = repo.user_group_ids(user.id)
            for gid in current - wanted:
                repo.remove_membership(gid, user.id)
            for gid in wanted - current:
                repo.add_membership(gid, user.id)
            self._refresh_tiers(repo, decision.account_id, [user.id])
        if decision.allowed:
            user.last_active_at = now
            user.joined_at = user.joined_at or now
            if plan.link:
                # Found by address (or just enrolled): remember (issuer, subject) so the
                # next sign-in resolves by the immutable id.
                repo.link_identity(user.id, identity.source.value, identity.issuer,
                                   identity.subject)
        return decision
